"""The ``peernode`` command. Each command's help is its documentation (docs/cli.md mirrors it)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from protocol import LogKey, node_id, parse_node_id

from . import __version__
from .backup import BackupError, backup, export_key, restore
from .bundles import (
    BundleError,
    export_bundle,
    import_bundle,
    peer_frontier,
    read_frontier,
    write_frontier,
)
from .catalog import import_catalog
from .check import check_store
from .db import DatabaseError, StorageFull
from .doctor import format_findings, run_checks
from .home import DEFAULT_LISTEN, Home, HomeError, init_home, parse_listen, resolve_home
from .importers import FORMATS, ImportFileError
from .logs import configure as configure_logging
from .peers import PeeringError, add_peer, create_invite, join, peer_keys
from .search import hits_json, search
from .service import ServiceError, install_service, uninstall_service
from .status import node_status, peer_rows
from .store import OwnHeadUnconfirmed

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


class _Errors(click.Group):
    """Turn known errors into one clear line and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (
            HomeError,
            DatabaseError,
            ImportFileError,
            PeeringError,
            BundleError,
            BackupError,
            OwnHeadUnconfirmed,
            ServiceError,
        ) as exc:
            if isinstance(exc, StorageFull):
                raise click.ClickException(
                    f"{exc}. Free some space, then run the same command again: it continues "
                    "where it stopped."
                ) from None
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Errors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    "home_dir",
    metavar="DIR",
    help="The node's directory (key, settings, database). Default: $PEERNODE_HOME, "
    "else the platform's data directory.",
)
@click.version_option(__version__, prog_name="peernode")
@click.pass_context
def cli(ctx: click.Context, home_dir: str | None) -> None:
    """peernode: share library catalogues peer to peer, with no central server.

    Each library runs a node. It signs every change to its catalogue and syncs the signed
    changes with its peers, keeping a local, searchable copy of every member's catalogue.
    """
    ctx.obj = Home(resolve_home(home_dir))


def _home(ctx: click.Context) -> Home:
    home: Home = ctx.obj
    return home.require()


@cli.command()
@click.option("--name", required=True, help="The library's name, as other libraries will see it.")
@click.option("--isil", default="", help="The library's ISIL code (ISO 15511), if it has one.")
@click.option("--contact", default="", help="How other libraries reach the staff.")
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where the daemon will listen; stored in the settings.",
)
@click.pass_context
def init(ctx: click.Context, name: str, isil: str, contact: str, listen: str) -> None:
    """Create this library's node: key pair, settings, database and signed profile."""
    home = init_home(ctx.obj.path, name=name, isil=isil, contact=contact, listen=listen)
    click.echo(f"Created node for {name!r} in {home.path}")
    click.echo(f"Node id: {home.node_id}")
    click.echo("Read this id to other libraries so they can check it is really you.")


@cli.command()
@click.option("--listen", metavar="HOST:PORT", help="Override the listen address from settings.")
@click.pass_context
def run(ctx: click.Context, listen: str | None) -> None:
    """Run the daemon in the foreground: sync with peers, serve the API. Stop with Ctrl-C."""
    from .daemon import run_daemon

    home = _home(ctx)
    config = home.config
    try:
        configure_logging(config.log_level, config.log_format)
    except ValueError as exc:
        _fail(f"{home.path / 'peernode.toml'}: {exc}")
    run_daemon(home, listen)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as /api/status).")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show this node: id, records in the replica, peers, rejected entries."""
    home = _home(ctx)
    running = home.daemon_running()
    connected = _connected_peers(home) if running else set()
    store = home.open_store()
    data = node_status(home, store, running=running, connected=connected)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"{data['name']}  ({data['node_id']})")
    click.echo(f"daemon:    {'running' if running else 'not running'} on {data['listen']}")
    records, own, libraries = data["records"], data["own_records"], data["libraries"]
    click.echo(f"records:   {records} ({own} ours) from {libraries} libraries")
    click.echo(f"entries:   {data['entries']} in {data['logs']} logs")
    click.echo(f"rejected:  {data['rejected']} {data['rejected_by_reason'] or ''}".rstrip())
    if data["forks"]:
        click.echo(f"FORKS:     {data['forks']} (a library signed two different histories)")
    click.echo(f"peers:     {len(data['peers'])}")
    for peer in data["peers"]:
        click.echo("  " + _peer_line(peer))


def _connected_peers(home: Home) -> set[bytes]:
    """Ask the running daemon which peers are connected (only it knows)."""
    import urllib.request

    try:
        url = f"http://{home.daemon_address() or home.config.listen}/api/status"
        with urllib.request.urlopen(url, timeout=2) as response:
            peers = json.load(response)["peers"]
        return {parse_node_id(p["node_id"]) for p in peers if p["connected"]}
    except (OSError, ValueError, KeyError):
        return set()


def _when(ms: int | None) -> str:
    if not ms:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _peer_line(peer: dict[str, Any]) -> str:
    state = "connected" if peer["connected"] else "offline"
    line = f"{peer['name']}  {peer['node_id']}  {peer['address'] or '-'}  {state}"
    line += f"  last sync {_when(peer['last_sync'])}"
    if peer["last_error"] and not peer["connected"]:
        line += f"\n      last error: {peer['last_error']}"
    return line


@cli.command("search")
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.pass_context
def search_cmd(ctx: click.Context, query: str, as_json: bool, limit: int) -> None:
    """Search every library's records in the local replica (words, or an ISBN)."""
    store = _home(ctx).open_store()
    hits = search(store.conn, query, limit)
    if as_json:
        click.echo(hits_json(hits))
        return
    if not hits:
        click.echo("No records found.")
    for number, hit in enumerate(hits, 1):
        authors = "; ".join(hit.authors)
        year = f" ({hit.year})" if hit.year else ""
        click.echo(f"{number}. {hit.title}{year}" + (f" — {authors}" if authors else ""))
        for holding in hit.holdings:
            call = f"  {holding.call_number}" if holding.call_number else ""
            click.echo(f"     held by {holding.library}{call}")


@cli.group()
def catalog() -> None:
    """This library's own catalogue."""


@catalog.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="The file's format; auto looks at the name and the first bytes.",
)
@click.option(
    "--source",
    help="Name for this file's records (default: the file name). Re-importing the same source "
    "deletes its records that are no longer in the file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def import_cmd(ctx: click.Context, file: Path, fmt: str, source: str | None, as_json: bool) -> None:
    """Import a catalogue file (MARC, MARCXML, MARC-in-JSON, CSV, JSON, SLiMS SQL) and publish
    the differences as signed entries. Broken records are reported and skipped."""
    home = _home(ctx)
    store = home.open_store()
    if sys.stderr.isatty() and not as_json:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(),
            TextColumn("importing {task.description}: {task.completed} records"),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task(file.name, total=None)
            summary = import_catalog(
                store, home.key, file, fmt, source=source, progress=lambda n: bar.advance(task, n)
            )
    else:
        summary = import_catalog(store, home.key, file, fmt, source=source)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(
        f"{file}: {summary.read} records read; {summary.added} added, {summary.changed} changed, "
        f"{summary.deleted} deleted, {summary.unchanged} unchanged, "
        f"{len(summary.rejected)} rejected; {summary.entries} signed entries"
    )
    if summary.deletions_skipped:
        click.echo(
            "  The file was not read to its end, so no records were deleted: fix the file and "
            "import it again to publish deletions."
        )
    for rejected in summary.rejected[:50]:
        click.echo(f"  rejected {rejected.position}: {rejected.reason}")
    if len(summary.rejected) > 50:
        click.echo(f"  ... and {len(summary.rejected) - 50} more (use --json for all)")


@cli.group()
def peer() -> None:
    """Peers: the libraries this node syncs with."""


@peer.command()
@click.pass_context
def invite(ctx: click.Context) -> None:
    """Make a one-time invite code for another library; the code is the last line printed."""
    home = _home(ctx)
    store = home.open_store()
    code = create_invite(home, store.conn)
    click.echo(
        f"Give this code to the other library; it is valid for {home.config.invite_hours} hours, "
        "once. Your daemon must be running when they join."
    )
    click.echo(f"Your node id: {home.node_id}")
    click.echo(code.code)


@peer.command("join")
@click.argument("code")
@click.pass_context
def join_cmd(ctx: click.Context, code: str) -> None:
    """Join the library whose invite CODE you were given; both become peers."""
    home = _home(ctx)
    store = home.open_store()
    accept = asyncio.run(join(home, store.conn, code))
    click.echo(f"Joined {accept.name} ({node_id(accept.key)}).")
    click.echo("Check that id with them. Your daemon will sync with it while it runs.")


@peer.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of peers.")
@click.pass_context
def peer_list(ctx: click.Context, as_json: bool) -> None:
    """List peers with their address, whether connected, and when they last synced."""
    home = _home(ctx)
    connected = _connected_peers(home) if home.daemon_running() else set()
    rows = peer_rows(home.open_store(), connected)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        click.echo("No peers yet: `peernode peer invite` here, or `peernode peer join CODE`.")
    else:
        for row in rows:
            click.echo(_peer_line(row))


@peer.command("add")
@click.argument("node_id_text", metavar="NODE_ID")
@click.option("--name", default="", help="The library's name, until its profile arrives.")
@click.option("--address", metavar="HOST:PORT", help="Where to reach it, if it has a link.")
@click.pass_context
def peer_add(ctx: click.Context, node_id_text: str, name: str, address: str | None) -> None:
    """Trust a library by its node id, read out by its staff (for libraries with no link,
    which cannot run `peer join`). Check every character: the id is the library's identity."""
    home = _home(ctx)
    try:
        key = parse_node_id(node_id_text)
    except ValueError as exc:
        _fail(str(exc))
    if key == home.public_key:
        _fail("that is this node's own id")
    if address is not None:
        parse_listen(address)
    add_peer(home.open_store().conn, key, name or node_id(key)[:9], address)
    click.echo(f"Added {name or 'the library'} ({node_id(key)}) as a peer.")


@cli.group()
def bundle() -> None:
    """Offline bundles: carry signed entries on a USB stick where there is no link."""


@bundle.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--for",
    "for_peer",
    metavar="NODE_ID",
    help="Only what that peer lacks, as far as this node knows from their last sync.",
)
@click.option(
    "--since",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Only what is newer than a frontier file written by `bundle frontier` at the far node.",
)
@click.pass_context
def bundle_export(ctx: click.Context, file: Path, for_peer: str | None, since: Path | None) -> None:
    """Write the signed entries another library lacks to FILE (everything by default)."""
    home = _home(ctx)
    store = home.open_store()
    if for_peer and since:
        _fail("use --for or --since, not both")
    base: dict[LogKey, int] = {}
    if for_peer:
        try:
            base = peer_frontier(store, parse_node_id(for_peer))
        except ValueError as exc:
            _fail(str(exc))
    elif since:
        base = read_frontier(since)
    summary = export_bundle(store, file, base)
    click.echo(
        f"Wrote {summary.entries} entries of {summary.logs} logs to {file} "
        f"({summary.bytes:,} bytes)."
    )


@bundle.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def bundle_import(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Verify every entry in a bundle as a sync would, and store the good ones. A running
    daemon passes them on to its peers."""
    home = _home(ctx)
    store = home.open_store()
    peers = peer_keys(store.conn)
    summary = import_bundle(store, file, lambda a: a == home.public_key or a in peers)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(
        f"{file}: {summary.entries} entries of {summary.logs} logs; {summary.applied} new, "
        f"{summary.duplicates} already here, {len(summary.rejected)} rejected."
    )
    for line in summary.rejected[:50]:
        click.echo(f"  rejected {line}")


@bundle.command("frontier")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_context
def bundle_frontier(ctx: click.Context, file: Path) -> None:
    """Write what this node holds to FILE, for the library that will export a bundle for you
    (`bundle export --since FILE`)."""
    count = write_frontier(_home(ctx).open_store(), file)
    click.echo(f"Wrote the heads of {count} logs to {file}.")


@cli.command("backup")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_context
def backup_cmd(ctx: click.Context, file: Path) -> None:
    """Save this node (key, settings, a consistent copy of the database) to FILE. Safe while
    the daemon runs. FILE holds the private key: keep it as safe as the node itself."""
    summary = backup(_home(ctx), file)
    click.echo(f"Saved node {summary.node_id} ({summary.entries} entries) to {file}.")


@cli.command("restore")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--latest",
    is_flag=True,
    help="The backup is this node's latest state (nothing was imported or changed after it), "
    "so it may sign at once. Only for libraries that never sync online; be sure.",
)
@click.pass_context
def restore_cmd(ctx: click.Context, file: Path, latest: bool) -> None:
    """Recreate a node from a backup FILE into --home (which must be empty). Until it has synced
    with a peer, the restored node signs nothing, so it cannot fork its own log."""
    home = restore(file, ctx.obj.path, latest=latest)
    click.echo(f"Restored node {home.node_id} into {home.path}.")
    if home.open_store().restored_note() is not None:
        click.echo("Start it (`peernode run`); it signs again once it has synced with a peer.")


@cli.group()
def key() -> None:
    """The node's private key: the library's identity."""


@key.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--passphrase",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="PEERNODE_KEY_PASSPHRASE",
    help="Encrypts the exported key (asked for when not given; or set PEERNODE_KEY_PASSPHRASE).",
)
@click.pass_context
def key_export(ctx: click.Context, file: Path, passphrase: str) -> None:
    """Write the private key alone to FILE, encrypted with a passphrase, for safekeeping."""
    try:
        export_key(_home(ctx), file, passphrase)
    except FileExistsError:
        _fail(f"{file} already exists; choose another name")
    click.echo(f"Wrote the encrypted key to {file}. Keep it and the passphrase apart.")


@cli.group()
def service() -> None:
    """Run the daemon as a systemd service that starts on boot."""


_MODE = click.option(
    "--user/--system",
    "user_mode",
    default=True,
    show_default=True,
    help="A user service (no root needed; see `loginctl enable-linger`) or a system service.",
)


@service.command("install")
@_MODE
@click.option("--dry-run", is_flag=True, help="Show the unit file and the steps; change nothing.")
@click.pass_context
def service_install(ctx: click.Context, user_mode: bool, dry_run: bool) -> None:
    """Write a systemd unit for this node, enable it and start it now; logs go to the journal
    (`journalctl --user -u peernode`)."""
    home: Home = ctx.obj
    for line in install_service(home.path, user_mode=user_mode, dry_run=dry_run):
        click.echo(line)


@service.command("uninstall")
@_MODE
@click.pass_context
def service_uninstall(ctx: click.Context, user_mode: bool) -> None:
    """Stop and disable the service and remove its unit file. The node's data stays."""
    for line in uninstall_service(user_mode=user_mode):
        click.echo(line)


@cli.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check this node's set-up and explain each problem in plain words, with what to do: key
    file, port, peers, clock, disk space, database. Exit 1 when something needs fixing."""
    findings = run_checks(ctx.obj)
    click.echo(format_findings(findings))
    if not all(f.ok for f in findings):
        sys.exit(1)


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check the database: SQLite integrity, every signature and hash chain. Exit 1 on a problem."""
    report = check_store(_home(ctx).open_store())
    click.echo(f"integrity: {report.integrity}")
    click.echo(f"entries:   {report.entries} in {report.logs} logs re-verified")
    for problem in report.problems:
        click.echo(f"problem:   {problem}")
    if not report.ok:
        sys.exit(1)


def main() -> None:
    cli(prog_name="peernode")
