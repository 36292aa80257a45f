"""CLI for the union list of serials, the cooperation reports and purchase intents
(``peernode serials``, ``peernode report ...``, ``peernode intent ...``)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from .home import Home
from .intents import IntentError, announce, list_intents, withdraw
from .reports import new_acquisitions, overlap, unique_titles
from .serials import union_list
from .store import Store
from .union import UnknownLibrary, find_library


def _store(ctx: click.Context) -> tuple[Home, Store]:
    home: Home = ctx.obj
    home = home.require()
    return home, home.open_store()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _author(store: Store, text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return find_library(store.conn, text).author
    except UnknownLibrary as exc:
        raise click.ClickException(str(exc)) from None


@click.command("serials")
@click.argument("query", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of serials.")
@click.pass_context
def serials(ctx: click.Context, query: str, as_json: bool) -> None:
    """The union list of serials: each journal or magazine (ISSN, or format serial) with every
    library's holdings statement, read into volumes and years and merged across the network,
    gaps shown. QUERY keeps those whose title has these words, or this ISSN. A statement that
    cannot be read is shown as written and flagged with "!"."""
    _, store = _store(ctx)
    entries = union_list(store.conn, query)
    if as_json:
        _echo_json([e.as_dict() for e in entries])
        return
    if not entries:
        click.echo("No serials" + (f" matching {query!r}." if query else " in the replica."))
    for entry in entries:
        for line in entry.lines():
            click.echo(line)


@click.group()
def report() -> None:
    """Cooperation reports over every member's catalogue: new acquisitions, collection
    overlap, titles held by only one library."""


@report.command("new")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 36_500))
@click.option("--library", "library_text", metavar="NAME_OR_ID", help="Only this library.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def report_new(
    ctx: click.Context, days: int, library_text: str | None, limit: int, as_json: bool
) -> None:
    """New acquisitions (daftar buku baru): records each library added in the last DAYS days,
    dated by the signed entry that first published them; an edit does not make a record new."""
    _, store = _store(ctx)
    author = _author(store, library_text)
    data = new_acquisitions(store.conn, int(time.time() * 1000), days, author, limit)
    if as_json:
        _echo_json(data)
        return
    click.echo(f"New in the last {days} days: {data['total']} records")
    for row in data["libraries"]:
        click.echo(f"  {row['library']}: {row['added']}")
    for row in data["records"]:
        by = f" / {'; '.join(row['authors'][:2])}" if row["authors"] else ""
        year = f" ({row['year']})" if row["year"] else ""
        click.echo(f"{row['added_at'][:10]}  {row['library']}  {row['title']}{by}{year}")
    if data["total"] > len(data["records"]):
        click.echo(f"... {data['total'] - len(data['records'])} more (--limit)")


@report.command("overlap")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
@click.pass_context
def report_overlap(ctx: click.Context, as_json: bool) -> None:
    """Collection overlap: for each library its titles and the titles no other library holds,
    and for each pair of libraries the titles they have in common."""
    _, store = _store(ctx)
    data = overlap(store.conn).as_dict(store.conn)
    if as_json:
        _echo_json(data)
        return
    rows = data["libraries"]
    click.echo(f"Union entries (distinct titles) in the network: {data['union_entries']:,}")
    width = max([len(r["library"][:30]) for r in rows] + [7])
    click.echo(f"{'library':<{width}}  {'titles':>9}  {'unique':>9}  {'unique %':>8}")
    for row in rows:
        click.echo(
            f"{row['library'][:30]:<{width}}  {row['titles']:>9,}  {row['unique']:>9,}  "
            f"{row['unique_share']:>8.1%}"
        )
    if len(rows) > 1:
        click.echo("\nTitles in common:")
        marks = [str(i + 1) for i in range(len(rows))]
        click.echo(" " * (width + 4) + "".join(f"{m:>9}" for m in marks))
        for number, row in enumerate(rows, start=1):
            cells = [
                "-" if other is row else f"{row['in_common'][other['node_id']]:,}" for other in rows
            ]
            name = f"{number}. {row['library'][:30]}"
            click.echo(f"{name:<{width + 4}}" + "".join(f"{c:>9}" for c in cells))


@report.command("unique")
@click.option("--library", "library_text", metavar="NAME_OR_ID", help="Only this library's.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def report_unique(
    ctx: click.Context, library_text: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """Titles held by only one library (preservation priority, and where a second copy in
    the network is worth buying), by title."""
    _, store = _store(ctx)
    author = _author(store, library_text)
    data = unique_titles(store.conn, author, limit, offset)
    if as_json:
        _echo_json(data)
        return
    click.echo(f"Titles held by one library only: {data['total']:,}")
    for row in data["titles"]:
        by = f" / {'; '.join(row['authors'][:2])}" if row["authors"] else ""
        year = f" ({row['year']})" if row["year"] else ""
        click.echo(f"  {row['library']}: {row['title']}{by}{year}")
    shown = offset + len(data["titles"])
    if data["total"] > shown:
        click.echo(f"... {data['total'] - shown} more (--offset {shown})")


@click.group()
def intent() -> None:
    """Intent to purchase: announce a title this library plans to buy (signed, replicated to
    every member), and see who already holds it or also plans to buy it."""


@intent.command("add")
@click.option("--isbn", "isbns", multiple=True, help="ISBN-10 or -13; repeat for several.")
@click.option("--title", default="", help="The title (needed when there is no ISBN).")
@click.option("--author", "authors", multiple=True, help="An author; repeat for several.")
@click.option("--note", default="", help="A note for the other libraries (price, copies...).")
@click.option("--planned", default="", metavar="YYYY-MM[-DD]", help="When you plan to buy it.")
@click.pass_context
def intent_add(
    ctx: click.Context,
    isbns: tuple[str, ...],
    title: str,
    authors: tuple[str, ...],
    note: str,
    planned: str,
) -> None:
    """Announce a title this library plans to buy; prints its id and who already holds it."""
    home, store = _store(ctx)
    try:
        intent_id = announce(
            store,
            home.key,
            isbn=isbns,
            title=title,
            authors=authors,
            note=note,
            planned=planned,
        )
    except IntentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Announced intent {intent_id}; it reaches the members at the next sync.")
    mine = [i for i in list_intents(store.conn, store.own_key) if i["mine"]]
    for row in mine:
        if row["id"] == intent_id:
            for line in _intent_lines(row)[1:]:
                click.echo(line)


@intent.command("withdraw")
@click.argument("intent_id", metavar="ID")
@click.option("--reason", default="", help="Why, for the other libraries.")
@click.pass_context
def intent_withdraw(ctx: click.Context, intent_id: str, reason: str) -> None:
    """Withdraw one of this library's intents (bought, or no longer planned)."""
    home, store = _store(ctx)
    try:
        withdraw(store, home.key, intent_id, reason)
    except IntentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Withdrew intent {intent_id}.")


@intent.command("list")
@click.option("--all", "every", is_flag=True, help="Include withdrawn intents.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of intents.")
@click.pass_context
def intent_list(ctx: click.Context, every: bool, as_json: bool) -> None:
    """Every library's intents (this library's first), each with the libraries that already
    hold the title and those that also plan to buy it."""
    _, store = _store(ctx)
    rows = list_intents(store.conn, store.own_key, withdrawn=every)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No intents to purchase.")
    for row in rows:
        for line in _intent_lines(row):
            click.echo(line)


def _intent_lines(row: dict[str, Any]) -> list[str]:
    who = f"{row['library']} (this library)" if row["mine"] else row["library"]
    planned = f"  planned {row['planned']}" if row["planned"] else ""
    status = "" if row["status"] == "active" else f"  [{row['status']}]"
    lines = [f"[{row['id']}] {who}{planned}{status}"]
    what = row["title"] or "(no title)"
    if row["authors"]:
        what += f" / {'; '.join(row['authors'])}"
    if row["isbn"]:
        what += f"  ISBN {', '.join(row['isbn'])}"
    lines.append(f"   {what}")
    if row["note"]:
        lines.append(f"   note: {row['note']}")
    held = ", ".join(
        h["library"] + (f" ({h['copies']} copies)" if h["copies"] > 1 else "")
        for h in row["held_by"]
    )
    lines.append(f"   held by: {held or 'no library in the network'}")
    if row["also_intended_by"]:
        others = ", ".join(
            o["library"] + (f" (planned {o['planned']})" if o["planned"] else "")
            for o in row["also_intended_by"]
        )
        lines.append(f"   also intended by: {others}")
    return lines


COMMANDS = (serials, report, intent)
