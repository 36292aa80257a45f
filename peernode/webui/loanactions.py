"""Which loan steps this library may take now, and how the pages name them.

The buttons come from the protocol's transition table (``protocol.loans.TRANSITIONS``) and
nothing else: a state, a service and this library's role give exactly the actions the table
lets that role take, in the table's order. Only the words shown for each action and state live
here, so a new row in the table shows up as a button without a change to the pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.loans import TRANSITIONS, Action, Loan, Role, Service, State, refusal


def _(message: str) -> str:
    """Marks a message for tools.i18n; the templates translate it when they show it."""
    return message


ACTION_LABELS: dict[Action, str] = {
    Action.WILL_SUPPLY: _("Will supply"),
    Action.CONDITIONAL: _("Supply on conditions"),
    Action.UNFILLED: _("Cannot supply"),
    Action.SHIPPED: _("Shipped"),
    Action.COPY_COMPLETED: _("Copy sent"),
    Action.RENEW_ACCEPTED: _("Accept the renewal"),
    Action.RENEW_REJECTED: _("Refuse the renewal"),
    Action.OVERDUE: _("Mark overdue"),
    Action.RECALL: _("Recall"),
    Action.CHECKED_IN: _("Returned: checked in"),
    Action.LOAN_COMPLETED: _("Close the loan"),
    Action.ACCEPT_CONDITIONS: _("Accept the conditions"),
    Action.CANCEL: _("Cancel the request"),
    Action.RECEIVED: _("Received"),
    Action.RENEW: _("Ask to renew"),
    Action.SHIPPED_RETURN: _("Shipped back"),
}

STATE_LABELS: dict[State, str] = {
    State.REQUEST_RECEIVED: _("Waiting for the lender"),
    State.CONDITIONAL: _("Lender set conditions"),
    State.WILL_SUPPLY: _("Lender will supply"),
    State.LOANED: _("Shipped, on its way"),
    State.RECEIVED: _("At the requesting library"),
    State.RENEW_PENDING: _("Renewal asked"),
    State.OVERDUE: _("Overdue"),
    State.RECALLED: _("Recalled"),
    State.SHIPPED_RETURN: _("Shipped back"),
    State.RETURNED: _("Returned to the lender"),
    State.LOAN_COMPLETED: _("Loan completed"),
    State.COPY_COMPLETED: _("Copy delivered"),
    State.UNFILLED: _("Unfilled: no library could supply"),
    State.CANCELLED: _("Cancelled"),
}

SERVICE_LABELS: dict[Service, str] = {Service.LOAN: _("Loan"), Service.COPY: _("Copy")}

# The text an action's form asks for: (field, required). The table decides *whether* an action
# is offered; this only decides which box sits beside its button.
FIELDS: dict[Action, tuple[str, bool]] = {
    Action.CONDITIONAL: ("terms", True),
    Action.UNFILLED: ("reason", False),
    Action.RENEW_REJECTED: ("reason", False),
    Action.SHIPPED: ("due", False),
    Action.RENEW_ACCEPTED: ("due", False),
}


def allowed(state: str, service: str, role: str) -> list[Action]:
    """The actions ``role`` may take on a ``service`` request in ``state``: the table's rows."""
    try:
        st, sv, rl = State(state), Service(service), Role(role)
    except ValueError:
        return []  # not a party (a past lender, a relay): nothing to do
    return [
        action
        for (frm, action), rule in TRANSITIONS.items()
        if frm is st and rule.role is rl and sv in rule.services
    ]


def allowed_on(loan: Loan, me: bytes) -> list[Action]:
    """The actions ``me`` may take on ``loan`` now, by the protocol's own check."""
    return [action for action in Action if refusal(loan, me, action) is None]


def action_label(action: str) -> str:
    try:
        return ACTION_LABELS.get(Action(action), action)
    except ValueError:
        return action


def state_label(state: str) -> str:
    try:
        return STATE_LABELS.get(State(state), state)
    except ValueError:
        return state


def service_label(service: str) -> str:
    try:
        return SERVICE_LABELS.get(Service(service), service)
    except ValueError:
        return service


@dataclass(frozen=True)
class ActionForm:
    """One button of a request: its action, its words, and the box beside it (if any)."""

    action: str
    label: str
    field: str = ""  # "terms", "reason", "due" or ""
    required: bool = False


def forms(actions: list[Action]) -> list[ActionForm]:
    out = []
    for action in actions:
        name, required = FIELDS.get(action, ("", False))
        out.append(ActionForm(str(action), ACTION_LABELS.get(action, str(action)), name, required))
    return out
