"""The commands of the shared bibliography: ``catalog show``, ``catalog copy`` and ``cluster``.

Registered on the main command by :func:`register` (peernode/cli.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from protocol import node_id

from . import clusters
from .clusters import ClusterError, union_members
from .copying import CopyError, Located, copy_record, locate
from .db import transaction
from .exporters import Holder, marc_bytes, to_marc
from .home import Home
from .originals import load as load_original
from .store import Store


def _home(ctx: click.Context) -> Home:
    home: Home = ctx.obj
    return home.require()


def _locate(store: Store, ref: str) -> Located:
    try:
        return locate(store.conn, ref)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None


def record_json(conn: Any, found: Located) -> dict[str, Any]:
    """A record as ``catalog show --json`` and the API give it: the record map, where it is
    from, its union entry and the other libraries' records in it."""
    members = union_members(conn, found.id)
    return {
        "ref": found.ref,
        "node_id": node_id(found.author),
        "record_id": found.rid,
        "entry_seq": found.seq,
        "union_entry": clusters.cluster_of(conn, found.id),
        "record": found.record.to_wire(),
        "members": [
            {
                "ref": f"{node_id(m.author)}/{m.rid}",
                "library": m.library,
                "title": m.title,
                "split": m.split,
            }
            for m in members
        ],
    }


@click.command("show")
@click.argument("ref", metavar="RECORD_REF")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the record and its union entry as JSON."
)
@click.option("--marc", "as_marc", is_flag=True, help="Print the record as MARC 21 (ISO 2709).")
@click.pass_context
def show_cmd(ctx: click.Context, ref: str, as_json: bool, as_marc: bool) -> None:
    """Show one record: ours or a partner's. RECORD_REF is NODE_ID/RECORD_ID (as `search --json`
    shows them) or a union entry number. A copied record shows where it came from."""
    store = _home(ctx).open_store()
    found = _locate(store, ref)
    if as_marc:
        original = load_original(store.conn, found.author, found.rid)
        isil = store.conn.execute(
            "SELECT isil FROM libraries WHERE author = ?", (found.author,)
        ).fetchone()
        holder = Holder(isil[0] if isil and isil[0] else "", None, original)
        sys.stdout.buffer.write(marc_bytes(to_marc(found.record, holder)))
        return
    data = record_json(store.conn, found)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    record = found.record
    click.echo(f"{record.title}")
    click.echo(f"  record:      {found.ref}  (union entry {data['union_entry']})")
    for name, value in sorted(data["record"].items()):
        if name in ("title", "holdings", "copied_from"):
            continue
        shown = "; ".join(value) if isinstance(value, list) else value
        click.echo(f"  {name + ':':12} {shown}")
    for holding in record.holdings:
        click.echo(f"  holding:     {holding.call_number} {holding.barcode} {holding.location}")
    if record.copied_from:
        source = dict(record.copied_from)
        click.echo(
            f"  copied from: {source.get('library')}/{source.get('record')} "
            f"(entry {source.get('seq')}, {source.get('date')})"
        )
    others = [m for m in data["members"] if m["ref"] != found.ref]
    for member in others:
        click.echo(f"  also held:   {member['library'] or '?'}  {member['ref']}")


@click.command("copy")
@click.argument("ref", metavar="RECORD_REF")
@click.option("--as", "new_id", metavar="NEW_ID", help="Our id for the copy (default: theirs).")
@click.option("--json", "as_json", is_flag=True, help="Print the new record as JSON.")
@click.pass_context
def copy_cmd(ctx: click.Context, ref: str, new_id: str | None, as_json: bool) -> None:
    """Copy a partner's record into our catalogue (copy cataloguing), signed like an import,
    with its source kept: library, record id, the entry it came from, the date. RECORD_REF is
    NODE_ID/RECORD_ID or a union entry number (then a partner's record of that entry)."""
    home = _home(ctx)
    store = home.open_store()
    try:
        copy = copy_record(store, home.key, ref, new_id)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"record_id": copy.rid, "record": copy.to_wire()}, indent=2))
        return
    click.echo(f"Copied {ref} into our catalogue as {copy.rid!r}: {copy.title}")


@click.group()
def cluster() -> None:
    """Union entries: records of one edition held by several libraries, grouped by ISBN, ISSN
    and an edition key. Corrections here are this node's own and survive re-clustering."""


@cluster.command("show")
@click.argument("ref", metavar="RECORD_REF")
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON.")
@click.pass_context
def cluster_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """List every library's record in the union entry of RECORD_REF."""
    store = _home(ctx).open_store()
    found = _locate(store, ref)
    data = record_json(store.conn, found)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"Union entry {data['union_entry']}: {len(data['members'])} records")
    for member in data["members"]:
        mark = "  (split here)" if member["split"] else ""
        click.echo(f"  {member['library'] or '?':30} {member['ref']}  {member['title']}{mark}")


@cluster.command("split")
@click.argument("ref", metavar="RECORD_REF")
@click.option("--undo", is_flag=True, help="Link the record by its keys again.")
@click.pass_context
def cluster_split(ctx: click.Context, ref: str, undo: bool) -> None:
    """Take a wrongly grouped record out of its union entry, on this node: it stands alone from
    now on, whatever records arrive later (`cluster join` can still link it by hand)."""
    store = _home(ctx).open_store()
    found = _locate(store, ref)
    try:
        with transaction(store.conn) as conn:
            if undo:
                clusters.unsplit(conn, found.id)
            else:
                clusters.split(conn, found.id)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    entry = clusters.cluster_of(store.conn, found.id)
    click.echo(f"{found.ref} is now in union entry {entry}.")


@cluster.command("join")
@click.argument("ref", metavar="RECORD_REF")
@click.argument("other", metavar="OTHER_REF")
@click.option("--undo", is_flag=True, help="Remove a join made earlier.")
@click.pass_context
def cluster_join(ctx: click.Context, ref: str, other: str, undo: bool) -> None:
    """Put two records into one union entry although their keys differ (the same edition
    catalogued too differently to match), on this node."""
    store = _home(ctx).open_store()
    one, two = _locate(store, ref), _locate(store, other)
    try:
        with transaction(store.conn) as conn:
            if undo:
                if not clusters.unjoin(conn, one.id, two.id):
                    raise ClusterError(f"{one.ref} and {two.ref} were not joined by hand")
            else:
                clusters.join(conn, one.id, two.id)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{one.ref} is in union entry {clusters.cluster_of(store.conn, one.id)}, "
        f"{two.ref} in {clusters.cluster_of(store.conn, two.id)}."
    )


def register(cli: click.Group, catalog: click.Group) -> None:
    """Add these commands to the ``peernode`` command."""
    catalog.add_command(show_cmd)
    catalog.add_command(copy_cmd)
    cli.add_command(cluster)
