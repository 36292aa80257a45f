"""``peernode loan``, ``agreement``, ``policy`` and ``offer``: interlibrary loan from the shell.

Every command signs into this node's own logs (the daemon, running or not, sends the entries
on when it next syncs: a request made offline waits, queued, in the log). Errors name the
request and its state and exit with status 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from protocol import parse_node_id
from protocol.cooperation import OFFER_SERVICES, PAYERS, SCOPES, SERVES
from protocol.loans import Action, Service, is_date

from . import cooperation, loans
from .cooperation import CooperationError, today
from .home import Home
from .store import Store

F = TypeVar("F", bound=Callable[..., Any])


def _clear(fn: F) -> F:
    """Loan and cooperation errors become one line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (loans.LoanError, CooperationError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _open(ctx: click.Context) -> tuple[Home, Store]:
    home: Home = ctx.obj
    home.require()
    return home, home.open_store()


def _key(text: str) -> bytes:
    try:
        return parse_node_id(text)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not is_date(value):
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD")
    return value


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


# --- loan ---------------------------------------------------------------------------------------


@click.group()
def loan() -> None:
    """Interlibrary loan (silang layan): requests through their whole life, ISO 18626 steps.

    Each step is signed by the library that takes it and reaches every member; both parties
    derive the same state. A request's notes are sealed to the parties: other libraries relay
    them unread. ID is a request id as `loan list` shows it (6 or more hex digits)."""


@loan.command("request")
@click.argument("record_id")
@click.option("--holder", metavar="NODE_ID", help="Whose record RECORD_ID is, if ambiguous.")
@click.option("--copy", "copy_", is_flag=True, help="A copy (document delivery), not a loan.")
@click.option(
    "--copyright",
    default=None,
    help="For a copy: the copyright conditions the requester declares (e.g. 'one chapter, "
    "private study, UU 28/2014 pasal 44').",
)
@click.option("--note", default="", help="Details for the lenders (sealed: only they read it).")
@click.option("--needed-by", callback=_date, metavar="YYYY-MM-DD", help="Not needed after this.")
@click.option(
    "--lender",
    "lenders",
    multiple=True,
    metavar="NODE_ID",
    help="Ask these libraries, in this order (repeatable); default: every holder whose "
    "policy serves this library, those offering the title first, then the most recently seen.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@click.pass_context
@_clear
def loan_request(
    ctx: click.Context,
    record_id: str,
    holder: str | None,
    copy_: bool,
    copyright: str | None,
    note: str,
    needed_by: str | None,
    lenders: tuple[str, ...],
    as_json: bool,
) -> None:
    """Request the title of RECORD_ID (any holder's record id, from `peernode search`).

    The rota of lenders is fixed in the signed request: when a lender answers Unfilled, the
    next one has it at once, without this library acting."""
    home, store = _open(ctx)
    record = loans.find_record(store.conn, record_id, _key(holder) if holder else None)
    entry = loans.request(
        store,
        home.key,
        record,
        service=Service.COPY if copy_ else Service.LOAN,
        note=note,
        needed_by=needed_by,
        copyright=copyright,
        lenders=[_key(x) for x in lenders] or None,
    )
    _show(store, home, entry.hash, as_json, headline="Requested")


@loan.command("list")
@click.option("--all", "everything", is_flag=True, help="Every request this node holds.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def loan_list(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """List the requests this library takes part in, most recently changed first."""
    home, store = _open(ctx)
    rows = loans.list_loans(store.conn, home.public_key, mine=not everything)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No requests.")
    for row in rows:
        due = f"  due {row['due']}" if row["due"] else ""
        click.echo(
            f"{row['id'][:12]}  {row['state']:<15} {row['service']}  {row['title'][:50]!r}  "
            f"{row['requester']} -> {row['lender']}{due}"
        )


@loan.command("show")
@click.argument("request_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as /api/loans/ID).")
@click.pass_context
@_clear
def loan_show(ctx: click.Context, request_id: str, as_json: bool) -> None:
    """Show one request: state, parties, rota, every signed step, and the sealed details this
    library may read."""
    home, store = _open(ctx)
    found = loans.find(store.conn, request_id)
    _show(store, home, found.id, as_json)


def _show(store: Store, home: Home, request_id: bytes, as_json: bool, headline: str = "") -> None:
    found = loans.load(store.conn, request_id)
    assert found is not None
    data = loans.loan_json(store.conn, found, home.public_key, loans.own_box(home.key))
    if as_json:
        _echo_json(data)
        return
    if headline:
        click.echo(f"{headline} {data['id'][:12]}.")
    click.echo(f"request {data['id']}  {data['service']}  {data['state']}")
    click.echo(f"  title:     {data['title']}")
    click.echo(f"  requester: {data['requester']['name']}  {data['requester']['node_id']}")
    click.echo(f"  lender:    {data['lender']['name']}  {data['lender']['node_id']}")
    rota = ", ".join(r["name"] + (" (declined)" if r["declined"] else "") for r in data["rota"])
    click.echo(f"  rota:      {rota}")
    for name in ("due", "needed_by", "copyright", "details"):
        if data.get(name):
            click.echo(f"  {name + ':':<11}{data[name]}")
    for item in data["history"]:
        extra = "".join(
            f"  {k}: {item[k]}" for k in ("reason", "terms", "due", "details") if item.get(k)
        )
        click.echo(f"  {item['at_text']}  {item['by']['name']}: {item['action']}{extra}")
    for item in data["superseded"]:
        click.echo(f"  superseded: {item['by']['name']}: {item['action']} (take it again)")


def _step_command(name: str, action: Action, help_text: str, *, due: bool = False) -> None:
    @click.argument("request_id", metavar="ID")
    @click.option("--note", default="", help="Details for the other party (sealed).")
    @click.pass_context
    @_clear
    def command(ctx: click.Context, /, request_id: str, note: str, **options: Any) -> None:
        _take(ctx, request_id, action, note=note, due=options.get("due"))

    if due:
        command = click.option(
            "--due", callback=_date, metavar="YYYY-MM-DD", help="Due back (default: by policy)."
        )(command)
    loan.command(name, help=help_text)(command)


def _take(
    ctx: click.Context,
    request_id: str,
    action: Action,
    *,
    note: str = "",
    reason: str = "",
    terms: str = "",
    due: str | None = None,
) -> None:
    home, store = _open(ctx)
    found = loans.find(store.conn, request_id)
    entry = loans.step(
        store, home.key, found, str(action), reason=reason, terms=terms, due=due, note=note
    )
    after = loans.load(store.conn, found.id)
    assert after is not None
    short = found.id.hex()[:12]
    if entry is None:
        click.echo(
            f"request {short}: {action} was already signed by this library; now {after.state}."
        )
    else:
        click.echo(f"request {short}: {action}; now {after.state}.")


_ANSWERS = {
    "supply": Action.WILL_SUPPLY,
    "conditional": Action.CONDITIONAL,
    "unfilled": Action.UNFILLED,
}


@loan.command("answer")
@click.argument("request_id", metavar="ID")
@click.argument("answer", type=click.Choice(list(_ANSWERS)))
@click.option("--reason", default="", help="Why unfilled (e.g. 'on loan', 'not lendable').")
@click.option("--terms", default="", help="The conditions of a conditional answer (costs).")
@click.option("--note", default="", help="Details for the requester (sealed).")
@click.pass_context
@_clear
def loan_answer(
    ctx: click.Context, request_id: str, answer: str, reason: str, terms: str, note: str
) -> None:
    """As the current lender, answer a request: supply (WillSupply), conditional (on --terms the
    requester must accept) or unfilled (with --reason; the next lender of the rota gets it)."""
    if answer == "conditional" and not terms:
        raise click.ClickException("a conditional answer states its --terms")
    _take(ctx, request_id, _ANSWERS[answer], note=note, reason=reason, terms=terms)


@loan.command("renew-answer")
@click.argument("request_id", metavar="ID")
@click.argument("answer", type=click.Choice(["yes", "no"]))
@click.option("--due", callback=_date, metavar="YYYY-MM-DD", help="New due date (yes).")
@click.option("--reason", default="", help="Why not (no).")
@click.pass_context
@_clear
def loan_renew_answer(
    ctx: click.Context, request_id: str, answer: str, due: str | None, reason: str
) -> None:
    """As the lender, answer a renewal request (RenewAccepted with a new due date, or
    RenewRejected)."""
    action = Action.RENEW_ACCEPTED if answer == "yes" else Action.RENEW_REJECTED
    _take(ctx, request_id, action, due=due, reason=reason)


_step_command(
    "accept",
    Action.ACCEPT_CONDITIONS,
    "As the requester, accept a conditional answer's terms (then WillSupply).",
)
_step_command(
    "ship", Action.SHIPPED, "As the lender, record that the item was shipped (Loaned).", due=True
)
_step_command(
    "copy-done",
    Action.COPY_COMPLETED,
    "As the lender, record that the copy was sent (CopyCompleted; copy requests).",
)
_step_command("receive", Action.RECEIVED, "As the requester, record that the item arrived.")
_step_command("renew", Action.RENEW, "As the requester, ask the lender to renew the loan.")
_step_command(
    "overdue",
    Action.OVERDUE,
    "As the lender, mark a loan overdue (the daemon does it itself after the due date).",
)
_step_command("recall", Action.RECALL, "As the lender, recall the item before its due date.")
_step_command(
    "ship-back",
    Action.SHIPPED_RETURN,
    "As the requester, record that the item was shipped back (ShippedReturn).",
)
_step_command(
    "return", Action.CHECKED_IN, "As the lender, record that the item came back (CheckedIn)."
)
_step_command("complete", Action.LOAN_COMPLETED, "As the lender, close the loan (LoanCompleted).")
_step_command(
    "cancel", Action.CANCEL, "As the requester, cancel a request that was not shipped yet."
)


@loan.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as /api/loans/stats).")
@click.pass_context
def loan_stats(ctx: click.Context, as_json: bool) -> None:
    """Per library: items lent and borrowed, requests declined, fill rate and turnaround (hours
    from request to supply, median); and this library's balance with each partner."""
    home, store = _open(ctx)
    data = loans.statistics(store.conn, home.public_key)
    if as_json:
        _echo_json(data)
        return
    click.echo(
        f"{'library':<30} {'lent':>5} {'borrowed':>8} {'declined':>8} {'fill':>6} {'hours':>6}"
    )
    for row in data["libraries"]:
        fill = "-" if row["fill_rate"] is None else f"{row['fill_rate']:.0%}"
        hours = "-" if row["turnaround_hours"] is None else f"{row['turnaround_hours']:.1f}"
        click.echo(
            f"{row['name'][:30]:<30} {row['lent']:>5} {row['borrowed']:>8} {row['declined']:>8} "
            f"{fill:>6} {hours:>6}"
        )
    for p in data["partners"]:
        click.echo(
            f"with {p['name']}: lent {p['lent_to']}, borrowed {p['borrowed_from']}, declined "
            f"{p['declined_to']} of theirs, {p['declined_by']} of ours declined"
        )


# --- agreement ----------------------------------------------------------------------------------


@click.group()
def agreement() -> None:
    """Cooperation agreements (perjanjian kerja sama): proposed by one library, signed by each
    party, in force only when all have signed, ended by expiry or withdrawal. ID: an agreement
    id as `agreement list` shows it."""


@agreement.command("propose")
@click.option("--title", required=True, help="What the agreement is, in a line.")
@click.option(
    "--partner",
    "partners",
    multiple=True,
    required=True,
    metavar="NODE_ID",
    help="Another party (repeatable).",
)
@click.option(
    "--scope",
    "scope",
    multiple=True,
    type=click.Choice(SCOPES),
    required=True,
    help="What it covers (repeatable).",
)
@click.option("--start", callback=_date, required=True, metavar="YYYY-MM-DD")
@click.option("--end", callback=_date, required=True, metavar="YYYY-MM-DD")
@click.option("--terms", default="", help="Cost terms: who pays shipping and copying, how.")
@click.pass_context
@_clear
def agreement_propose(
    ctx: click.Context,
    title: str,
    partners: tuple[str, ...],
    scope: tuple[str, ...],
    start: str,
    end: str,
    terms: str,
) -> None:
    """Propose an agreement; proposing signs it for this library."""
    home, store = _open(ctx)
    entry = cooperation.propose(
        store,
        home.key,
        title=title,
        partners=[_key(p) for p in partners],
        scope=list(dict.fromkeys(scope)),
        start=start,
        end=end,
        terms=terms,
    )
    click.echo(
        f"Proposed agreement {entry.hash.hex()[:12]}; each partner signs it with "
        f"`peernode agreement sign {entry.hash.hex()[:12]}`."
    )


@agreement.command("sign")
@click.argument("agreement_id", metavar="ID")
@click.pass_context
@_clear
def agreement_sign(ctx: click.Context, agreement_id: str) -> None:
    """Sign an agreement this library is a party to (not one that expired or was withdrawn)."""
    home, store = _open(ctx)
    found = cooperation.find_agreement(store.conn, agreement_id)
    cooperation.sign_agreement(store, home.key, found, today())
    now = cooperation.find_agreement(store.conn, agreement_id)
    click.echo(f"Signed agreement {found.id.hex()[:12]}; it is {now.status(today())}.")


@agreement.command("withdraw")
@click.argument("agreement_id", metavar="ID")
@click.option("--reason", default="", help="Why, for the partners.")
@click.pass_context
@_clear
def agreement_withdraw(ctx: click.Context, agreement_id: str, reason: str) -> None:
    """Withdraw from an agreement: it ends for every party."""
    home, store = _open(ctx)
    found = cooperation.find_agreement(store.conn, agreement_id)
    cooperation.withdraw_agreement(store, home.key, found, reason)
    click.echo(f"Withdrew from agreement {found.id.hex()[:12]}.")


@agreement.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as /api/agreements).")
@click.pass_context
def agreement_list(ctx: click.Context, as_json: bool) -> None:
    """List the agreements among members: parties, who signed, scope, dates, standing today."""
    _, store = _open(ctx)
    day = today()
    rows = [
        cooperation.agreement_json(store.conn, a, day)
        for a in cooperation.agreements(store.conn).values()
    ]
    rows.sort(key=lambda r: (r["start"], r["id"]))
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No agreements.")
    for row in rows:
        parties = ", ".join(
            p["name"] + ("" if p["signed"] else " (not signed)") for p in row["parties"]
        )
        click.echo(
            f"{row['id'][:12]}  {row['status']:<11} {row['title']!r}  "
            f"{row['start']}..{row['end']}  {'/'.join(row['scope'])}"
        )
        click.echo(f"      parties: {parties}")


# --- policy -------------------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """This library's lending policy, signed and replicated: what it lends, to whom, on what
    terms. A library that published none lends and copies for every member."""


@policy.command("set")
@click.option("--lends/--no-lends", default=True, show_default=True, help="Lends items at all.")
@click.option("--copies/--no-copies", default=True, show_default=True, help="Sends copies.")
@click.option(
    "--serves",
    type=click.Choice(SERVES),
    default="all",
    show_default=True,
    help="Whom: every member, the --partner libraries, or agreement partners (an "
    "agreement in force covering loans or copies).",
)
@click.option(
    "--partner",
    "partners",
    multiple=True,
    metavar="NODE_ID",
    help="A library served with --serves listed (repeatable).",
)
@click.option("--format", "formats", multiple=True, help="A format it lends (repeatable).")
@click.option("--loan-days", type=click.IntRange(1, 366), default=28, show_default=True)
@click.option("--max-items", type=click.IntRange(0, 100_000), help="Items out per partner.")
@click.option("--renewals", type=click.IntRange(0, 100), help="Renewals allowed per loan.")
@click.option("--shipping", type=click.Choice(PAYERS), help="Who pays shipping.")
@click.option("--copying", type=click.Choice(PAYERS), help="Who pays copying.")
@click.option(
    "--closed",
    "closed",
    multiple=True,
    metavar="FROM:TO",
    help="A closed period, YYYY-MM-DD:YYYY-MM-DD (repeatable).",
)
@click.option("--contact", default="", help="Who handles loans (email, phone).")
@click.pass_context
@_clear
def policy_set(ctx: click.Context, /, **options: Any) -> None:
    """Publish this library's lending policy (replaces the previous one as a whole)."""
    home, store = _open(ctx)
    body: dict[str, Any] = {
        "lends": options["lends"],
        "copies": options["copies"],
        "serves": options["serves"],
        "loan_days": options["loan_days"],
    }
    if options["partners"]:
        body["partners"] = sorted({_key(p) for p in options["partners"]})
    if options["formats"]:
        body["formats"] = list(dict.fromkeys(options["formats"]))
    for name in ("max_items", "renewals", "shipping", "copying"):
        if options[name] is not None:
            body[name] = options[name]
    periods = []
    for text in options["closed"]:
        first, _, last = text.partition(":")
        if not (is_date(first) and is_date(last) and first <= last):
            raise click.BadParameter(f"{text!r} is not FROM:TO (YYYY-MM-DD:YYYY-MM-DD)")
        periods.append([first, last])
    if periods:
        body["closed"] = periods
    if options["contact"]:
        body["contact"] = options["contact"]
    cooperation.set_policy(store, home.key, body)
    click.echo("Published the lending policy.")


@policy.command("show")
@click.argument("node_id_text", metavar="[NODE_ID]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def policy_show(ctx: click.Context, node_id_text: str | None, as_json: bool) -> None:
    """Show a library's lending policy (this library's by default)."""
    home, store = _open(ctx)
    key = _key(node_id_text) if node_id_text else home.public_key
    data = cooperation.policy_json(store.conn, key)
    if as_json:
        _echo_json(data)
        return
    for name, value in data.items():
        click.echo(f"{name}: {value}")


# --- offer --------------------------------------------------------------------------------------


@click.group()
def offer() -> None:
    """Loan offers: what this library advertises it will lend, gossiped with the catalogue;
    holders that offer a title come first in a request's rota."""


@offer.command("add")
@click.option("--record", "record", help="A record id of this library's catalogue.")
@click.option("--rule", help="A rule instead of one record: 'all', or words for people.")
@click.option("--service", type=click.Choice(OFFER_SERVICES), default="both", show_default=True)
@click.option("--note", default="", help="Conditions, for the requesters.")
@click.option("--id", "offer_id", help="A name for the offer (default: the record id or rule).")
@click.pass_context
@_clear
def offer_add(
    ctx: click.Context,
    record: str | None,
    rule: str | None,
    service: str,
    note: str,
    offer_id: str | None,
) -> None:
    """Advertise a record (or a rule) as lendable."""
    if (record is None) == (rule is None):
        raise click.ClickException("give either --record or --rule")
    home, store = _open(ctx)
    if (
        record is not None
        and store.conn.execute(
            "SELECT 1 FROM records WHERE author = ? AND rid = ?", (home.public_key, record)
        ).fetchone()
        is None
    ):
        raise click.ClickException(f"this library's catalogue has no record {record!r}")
    body: dict[str, Any] = {"id": (offer_id or record or rule or "")[:64], "service": service}
    body["record" if record is not None else "rule"] = record if record is not None else rule
    if note:
        body["note"] = note
    cooperation.add_offer(store, home.key, body)
    click.echo(f"Offered {body['id']!r}.")


@offer.command("remove")
@click.argument("offer_id", metavar="ID")
@click.pass_context
@_clear
def offer_remove(ctx: click.Context, offer_id: str) -> None:
    """Withdraw one of this library's offers."""
    home, store = _open(ctx)
    cooperation.remove_offer(store, home.key, offer_id)
    click.echo(f"Removed the offer {offer_id!r}.")


@offer.command("list")
@click.option("--mine", is_flag=True, help="Only this library's offers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def offer_list(ctx: click.Context, mine: bool, as_json: bool) -> None:
    """List the loan offers of every member (or only this library's)."""
    home, store = _open(ctx)
    rows = cooperation.offers(store.conn, home.public_key if mine else None)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No offers.")
    for row in rows:
        what = f"record {row['record']}" if "record" in row else f"rule {row['rule']!r}"
        click.echo(f"{row['name']}  {row['id']!r}: {what}, {row['service']}  {row.get('note', '')}")


COMMANDS = (loan, agreement, policy, offer)
