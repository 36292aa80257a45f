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
from protocol.membership import ADMIT, REMOVE, REVOKE

from . import __version__, members
from .backup import BackupError, backup, export_key, restore
from .bibliography_cli import register as register_bibliography
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
from .coop_cli import COMMANDS as COOP_COMMANDS
from .db import DatabaseError, StorageFull
from .doctor import format_findings, run_checks
from .exporters import EXPORT_FORMATS, ExportError, export_catalog
from .home import DEFAULT_LISTEN, Home, HomeError, init_home, parse_listen, resolve_home
from .importers import FORMATS, ImportFileError
from .loan_cli import COMMANDS as LOAN_COMMANDS
from .logs import configure as configure_logging
from .peers import PeeringError, add_peer, admit_peer, create_invite, join
from .search import (
    MAX_PER_PAGE,
    QueryError,
    facets_text,
    hits_json,
    parse_query,
    results_json,
    run_query,
    search_query,
)
from .service import ServiceError, install_service, uninstall_service
from .snapshots import SnapshotError, export_snapshot, import_snapshot
from .status import discovered_address, discovered_rows, node_status, peer_rows
from .store import OwnHeadUnconfirmed, now_ms
from .webui.commands import read_password_file, store_password
from .webui.commands import staff as staff_commands

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
            SnapshotError,
            BackupError,
            OwnHeadUnconfirmed,
            ServiceError,
            ExportError,
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
@click.option(
    "--staff-password-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Set the web page's staff password from the first line of this file "
    "(or later: `peernode staff password`).",
)
@click.pass_context
def init(
    ctx: click.Context,
    name: str,
    isil: str,
    contact: str,
    listen: str,
    staff_password_file: Path | None,
) -> None:
    """Create this library's node: key pair, settings, database and signed profile."""
    # Read (and check) the password before creating anything, so a bad one leaves no half node.
    password = read_password_file(staff_password_file) if staff_password_file else None
    if password is not None:
        from .webui.auth import PasswordError, check_new_password

        try:
            check_new_password(password)
        except PasswordError as exc:
            _fail(str(exc))
    home = init_home(ctx.obj.path, name=name, isil=isil, contact=contact, listen=listen)
    if password is not None:
        store_password(home, password)
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
    # A running daemon knows more than its file: who is connected, lag now, counts not yet
    # written. Ask it; read the file when it is not running or does not answer.
    data = _daemon_status(home) if running else None
    if data is None:
        data = node_status(home, home.open_store(), running=running, connected=set())
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
    if data["discovered"]:
        click.echo(
            f"seen:      {data['discovered']} other node(s) on this network, not peers "
            "(`peernode peer list`)"
        )


def _daemon_status(home: Home) -> dict[str, Any] | None:
    """The running daemon's /api/status, or None when it does not answer."""
    import urllib.request

    try:
        url = f"http://{home.daemon_address() or home.config.listen}/api/status"
        with urllib.request.urlopen(url, timeout=2) as response:
            data = json.load(response)
        return data if isinstance(data, dict) and "peers" in data else None
    except (OSError, ValueError):
        return None


def _daemon_peers(home: Home) -> dict[str, dict[str, Any]]:
    """The running daemon's peer rows: only it knows who is connected, and its liveness
    values are newer than the table's (written once per heartbeat interval)."""
    data = _daemon_status(home)
    return {str(p["node_id"]): p for p in data["peers"]} if data else {}


def _connected(live: dict[str, dict[str, Any]]) -> set[bytes]:
    return {parse_node_id(nid) for nid, p in live.items() if p.get("connected")}


_LIVE_FIELDS = ("last_seen", "last_heartbeat", "behind", "behind_since")


def _overlay_live(rows: list[dict[str, Any]], live: dict[str, dict[str, Any]]) -> None:
    for row in rows:
        row.update({k: v for k, v in live.get(row["node_id"], {}).items() if k in _LIVE_FIELDS})


def _when(ms: int | None) -> str:
    if not ms:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _peer_line(peer: dict[str, Any]) -> str:
    state = "connected" if peer["connected"] else "offline"
    line = f"{peer['name']}  {peer['node_id']}  {peer['address'] or '-'}  {state}"
    line += f"  last sync {_when(peer['last_sync'])}"
    line += f"\n      last seen {_when(peer.get('last_seen'))}"
    if peer.get("behind"):
        line += f", behind by {peer['behind']} entries since {_when(peer['behind_since'])}"
    if peer["last_error"] and not peer["connected"]:
        line += f"\n      last error: {peer['last_error']}"
    return line


@cli.command("search")
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--page", type=click.IntRange(1, 50), help="Show this page of --limit hits (at most 100)."
)
@click.option(
    "--facets",
    is_flag=True,
    help="Also print the total and the counts per library, language, "
    "format and decade (with --json: one object with hits, total and facets).",
)
@click.option("--library", help="Only records of this library (name or node id).")
@click.option("--language", help="Only records in this language, e.g. ind or eng.")
@click.option("--format", "fmt", help="Only records of this format, e.g. book.")
@click.option("--year-from", type=int, help="Only records published in or after this year.")
@click.option("--year-to", type=int, help="Only records published in or before this year.")
@click.pass_context
def search_cmd(
    ctx: click.Context,
    query: str,
    as_json: bool,
    limit: int,
    page: int | None,
    facets: bool,
    library: str | None,
    language: str | None,
    fmt: str | None,
    year_from: int | None,
    year_to: int | None,
) -> None:
    """Search every library's records in the local replica.

    Words, "a phrase", an ISBN or ISSN, and fields: title:, author:, subject:, series:,
    publisher:, isbn:, issn:, year:2010-2015, library:, language:, format: — for example
    author:"tere liye" subject:novel year:2005-2015 laskar
    """
    store = _home(ctx).open_store()
    try:
        parsed = parse_query(
            query,
            page=page or 1,
            per_page=min(limit, MAX_PER_PAGE),
            library=library,
            language=language,
            format=fmt,
            year_from=year_from,
            year_to=year_to,
        )
        if page or facets:
            results = run_query(store.conn, parsed)
            hits = results.hits
        else:
            hits = search_query(store.conn, parsed, limit)
    except QueryError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(results_json(results) if facets else hits_json(hits))
        return
    if not hits:
        click.echo("No records found.")
    first = (parsed.page - 1) * parsed.per_page
    for number, hit in enumerate(hits, first + 1):
        authors = "; ".join(hit.authors)
        year = f" ({hit.year})" if hit.year else ""
        click.echo(f"{number}. {hit.title}{year}" + (f" — {authors}" if authors else ""))
        for holding in hit.holdings:
            call = f"  {holding.call_number}" if holding.call_number else ""
            click.echo(f"     held by {holding.library}{call}")
    if facets:
        click.echo(facets_text(results))


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


@catalog.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    help="marc (MARC 21, ISO 2709, UTF-8) or marcxml. Default: marcxml for a .xml file, else marc.",
)
@click.option(
    "--library",
    metavar="NODE_ID",
    help="Export that library's catalogue from this node's replica instead of our own.",
)
@click.option("--record", "rid", metavar="ID", help="Export only the record with this id.")
@click.pass_context
def export_cmd(
    ctx: click.Context, file: Path, fmt: str | None, library: str | None, rid: str | None
) -> None:
    """Write our catalogue (or another library's, or one record) to FILE as MARC 21 or
    MARCXML, for copy cataloguing in any library system."""
    home = _home(ctx)
    author = home.public_key
    if library:
        try:
            author = parse_node_id(library)
        except ValueError as exc:
            _fail(str(exc))
    fmt = fmt or ("marcxml" if file.suffix.lower() == ".xml" else "marc")
    store = home.open_store()
    try:
        summary = export_catalog(store.conn, file, fmt, author=author, rid=rid)
    finally:
        store.conn.close()
    click.echo(f"Wrote {summary.records} records to {file} ({fmt}, {summary.bytes:,} bytes).")


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
    """Join the library whose invite CODE you were given; both become peers and admit each
    other as members. A new node joins the inviter's network (it learns its founders)."""
    home = _home(ctx)
    store = home.open_store()
    fresh = members.is_fresh(store)
    accept = asyncio.run(join(home, store, code))
    click.echo(f"Joined {accept.name} ({node_id(accept.key)}).")
    click.echo("Check that id with them. Your daemon will sync with it while it runs.")
    if not fresh:
        click.echo(
            "This node had admitted libraries of its own, so it keeps its own founders: to merge "
            "the two networks, see docs/security.md (Founders)."
        )


@peer.command("list")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print a JSON array: the peers, then the nodes seen on this network ("peer": false).',
)
@click.pass_context
def peer_list(ctx: click.Context, as_json: bool) -> None:
    """List peers with their address, whether connected, when they last synced, when they were
    last seen (directly, or by a heartbeat other members passed on) and how far this node is
    behind them; then the nodes seen on this network (mDNS) that are not peers, with which
    nothing is exchanged."""
    home = _home(ctx)
    live = _daemon_peers(home) if home.daemon_running() else {}
    store = home.open_store()
    rows = peer_rows(store, _connected(live))
    _overlay_live(rows, live)
    seen = discovered_rows(store.conn, now_ms())
    if as_json:
        listed = [{**row, "peer": True} for row in rows] + seen
        click.echo(json.dumps(listed, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("No peers yet: `peernode peer invite` here, or `peernode peer join CODE`.")
    for row in rows:
        click.echo(_peer_line(row))
    if seen:
        click.echo("")
        click.echo(
            "Seen on this network, not a peer (nothing is exchanged): invite it with "
            "`peernode peer invite`, after checking its id with its staff."
        )
        for row in seen:
            click.echo(f"{row['name']}  {row['node_id']}  {row['address']}")
            click.echo(f"      last seen {_when(row['last_seen'])}")


@peer.command("add")
@click.argument("node_id_text", metavar="NODE_ID")
@click.option("--name", default="", help="The library's name, until its profile arrives.")
@click.option(
    "--address",
    metavar="HOST:PORT",
    help="Where to reach it, if it has a link. Default: where it announced itself on this "
    "network, if it did (the daemon still checks that the node there holds NODE_ID's key).",
)
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
    store = home.open_store()
    if address is not None:
        parse_listen(address)
    else:
        address = discovered_address(store.conn, key)
        if address is not None:
            click.echo(f"Using the address it announced on this network: {address}.")
    add_peer(store.conn, key, name or node_id(key)[:9], address)
    admit_peer(store, home, key, name)
    click.echo(f"Added {name or 'the library'} ({node_id(key)}) as a peer, and admitted it.")


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
    store = _home(ctx).open_store()
    summary = import_bundle(store, file, members.TrustView(store))
    members.save(store)  # statements the bundle carried
    _report(
        as_json,
        summary.as_dict(),
        f"{file}: {summary.entries} entries of {summary.logs} logs; {summary.applied} new, "
        f"{summary.duplicates} already here, {len(summary.rejected)} rejected.",
        [f"rejected {line}" for line in summary.rejected],
    )


def _report(as_json: bool, data: dict[str, Any], headline: str, details: list[str]) -> None:
    """An import's summary: JSON, or a line and the first 50 details."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(headline)
    for line in details[:50]:
        click.echo(f"  {line}")


@bundle.command("frontier")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_context
def bundle_frontier(ctx: click.Context, file: Path) -> None:
    """Write what this node holds to FILE, for the library that will export a bundle for you
    (`bundle export --since FILE`)."""
    count = write_frontier(_home(ctx).open_store(), file)
    click.echo(f"Wrote the heads of {count} logs to {file}.")


@cli.group()
def snapshot() -> None:
    """Start a new node from each catalogue's latest signed checkpoint instead of its history.

    Every `import` ends with a checkpoint: the library's signed statement of its whole
    catalogue. A snapshot carries that state with the checkpoint, so the new node checks it
    against the author's signature and skips the edits that led there.
    """


@snapshot.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_context
def snapshot_export(ctx: click.Context, file: Path) -> None:
    """Write every log this node holds to FILE, catalogues as their checkpointed state."""
    summary = export_snapshot(_home(ctx).open_store(), file)
    click.echo(
        f"Wrote {summary.records:,} records and {summary.entries:,} entries of {summary.logs} "
        f"logs to {file} ({summary.bytes:,} bytes)."
    )
    for line in summary.skipped:
        click.echo(f"  left out {line}")


@snapshot.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def snapshot_import(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Load the logs of FILE that this node trusts and does not hold yet. Each catalogue's
    records must match its author's signed checkpoint, or that catalogue is left out whole.
    Best run before the first `peernode run`; the daemon then fetches only what is newer."""
    store = _home(ctx).open_store()
    summary = import_snapshot(store, file, members.TrustView(store))
    members.save(store)  # statements the snapshot carried
    _report(
        as_json,
        summary.as_dict(),
        f"{file}: {summary.records:,} records and {summary.entries:,} entries of "
        f"{summary.logs} logs loaded{'' if summary.complete else ' (the file is damaged)'}.",
        [f"left out {line}" for line in summary.skipped],
    )


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


@key.command("revoke")
@click.option("--reason", default="", help="Why, for the other libraries (e.g. 'PC stolen').")
@click.option(
    "--successor",
    metavar="NODE_ID",
    help="This library's new node: admitted (in this key's role) just before the revoke, so "
    "it keeps the old key's place in the network.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def key_revoke(ctx: click.Context, reason: str, successor: str | None, yes: bool) -> None:
    """Declare this node's key compromised (stolen or copied): sign a revoke that every member
    honours once it arrives. The key is never trusted again, here or anywhere; what it signed
    before stays. Then carry on with a new node (docs/security.md, "A stolen key")."""
    home = _home(ctx)
    store = home.open_store()
    new_key = None
    if successor:
        try:
            new_key = parse_node_id(successor)
        except ValueError as exc:
            _fail(str(exc))
        if new_key == home.public_key:
            _fail("the successor must be a new node, not this one")
    if not yes:
        click.confirm(
            f"Revoke {home.node_id} for good? This node will not be trusted by any member again.",
            abort=True,
        )
    membership = members.load(store)
    if new_key is not None:
        me = membership.members.get(home.public_key)
        role = "admin" if me is not None and me.admin else None
        members.sign(store, home.key, ADMIT, new_key, f"{home.config.name} (new key)", role=role)
        click.echo(f"Admitted the successor {node_id(new_key)}.")
    members.sign(store, home.key, REVOKE, home.public_key, home.config.name, reason=reason)
    click.echo(f"Revoked {home.node_id}.")
    click.echo(
        "Keep the daemon running until a peer has synced (`peernode status`), or carry the revoke "
        "to a member in a bundle (`peernode bundle export`). Then retire this node."
    )


def _member_key(home: Home, text: str) -> bytes:
    try:
        key = parse_node_id(text)
    except ValueError as exc:
        _fail(str(exc))
    if key == home.public_key:
        _fail("that is this node's own id")
    return key


@cli.group()
def member() -> None:
    """Members: the libraries of this network, admitted by signed statements that replicate."""


@member.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of members.")
@click.pass_context
def member_list(ctx: click.Context, as_json: bool) -> None:
    """List every library named in membership statements: name, id, who admitted it, role and
    status (member, pending = not admitted by a current member, removed, revoked, blocked)."""
    store = _home(ctx).open_store()
    rows = members.member_rows(store, members.load(store))
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        marks = ", ".join(
            m
            for m in (
                "founder" if row["founder"] else "",
                "this node" if row["self"] else "",
                "pinned" if row["pinned"] else "",
            )
            if m
        )
        click.echo(f"{row['name']}  {row['node_id']}  {row['status']}  {row['role']}")
        by = ", ".join(row["admitted_by"]) or ("-" if not row["founder"] else "founder")
        click.echo(f"      admitted by: {by}" + (f"  ({marks})" if marks else ""))
        if row["reason"] or row["removed_by"]:
            click.echo(f"      {row['status']}: {row['reason'] or '-'}")


@member.command("admit")
@click.argument("node_id_text", metavar="NODE_ID")
@click.option("--name", default="", help="The library's name, until its profile arrives.")
@click.option("--admin", is_flag=True, help="Admit it as an admin (it may remove any member).")
@click.pass_context
def member_admit(ctx: click.Context, node_id_text: str, name: str, admin: bool) -> None:
    """Vouch for a library: admit it (again, after a removal you made), or make it an admin.
    It needs a link too: `peer join`, `peer add`, or a member that syncs with it."""
    home = _home(ctx)
    key = _member_key(home, node_id_text)
    store = home.open_store()
    members.sign(store, home.key, ADMIT, key, name, role="admin" if admin else "member")
    status = members.load(store).status(key)
    click.echo(
        f"Admitted {node_id(key)}{' as an admin' if admin else ''}; its status here: {status}."
    )


@member.command("remove")
@click.argument("node_id_text", metavar="NODE_ID")
@click.option("--reason", default="", help="Why, for the other libraries.")
@click.pass_context
def member_remove(ctx: click.Context, node_id_text: str, reason: str) -> None:
    """Remove a member from the network: signed, it reaches every member, which then stops
    replicating that library and refuses its sessions. Valid from an admin, or from the library
    that admitted it; members only it vouched for drop out with it."""
    home = _home(ctx)
    key = _member_key(home, node_id_text)
    store = home.open_store()
    membership = members.load(store)
    target = membership.members.get(key)
    me = membership.members.get(home.public_key)
    if target is not None and target.founder:
        _fail(f"{node_id(key)} is a founder of this network: founders cannot be removed")
    if not (me is not None and me.admin) and (
        target is None or home.public_key not in target.admitted_by
    ):
        _fail(
            "only an admin, or the library that admitted it, may remove a member: this node is "
            "neither for that id, so its statement would not count"
        )
    name = target.name if target is not None else ""
    members.sign(store, home.key, REMOVE, key, name, reason=reason)
    status = members.load(store).status(key)
    click.echo(f"Removed {node_id(key)}; its status here: {status}.")


@cli.group()
def block() -> None:
    """This node's own block list: keys it never syncs with nor replicates (not replicated)."""


@block.command("add")
@click.argument("node_id_text", metavar="NODE_ID")
@click.option("--reason", default="", help="A note for yourself.")
@click.pass_context
def block_add(ctx: click.Context, node_id_text: str, reason: str) -> None:
    """Block a key here: its sessions are refused at the handshake and its logs not fetched,
    whatever the network says. The running daemon applies it within a second."""
    home = _home(ctx)
    key = _member_key(home, node_id_text)
    members.block(home.open_store().conn, key, reason)
    click.echo(f"Blocked {node_id(key)}.")


@block.command("remove")
@click.argument("node_id_text", metavar="NODE_ID")
@click.pass_context
def block_remove(ctx: click.Context, node_id_text: str) -> None:
    """Take a key off the block list."""
    home = _home(ctx)
    key = _member_key(home, node_id_text)
    if not members.unblock(home.open_store().conn, key):
        _fail(f"{node_id(key)} is not blocked here")
    click.echo(f"Unblocked {node_id(key)}.")


@block.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def block_list(ctx: click.Context, as_json: bool) -> None:
    """List the keys blocked on this node."""
    rows = members.block_rows(_home(ctx).open_store().conn)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        click.echo("Nothing is blocked.")
    for row in rows if not as_json else []:
        note = f"  ({row['reason']})" if row["reason"] else ""
        click.echo(f"{row['name'] or '-'}  {row['node_id']}  since {_when(row['added_at'])}{note}")


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


for _command in LOAN_COMMANDS:  # loan, agreement, policy, offer (issue 4)
    cli.add_command(_command)
cli.add_command(staff_commands)  # the web page's staff password (issue 5)
for _coop_command in COOP_COMMANDS:  # serials, report, intent (issue 8)
    cli.add_command(_coop_command)
register_bibliography(cli, catalog)  # catalog show/copy, cluster (issue 8)


def main() -> None:
    cli(prog_name="peernode")
