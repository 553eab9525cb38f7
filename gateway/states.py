"""The states an application goes through (``lifecycle.md``) and the moves allowed between them.

The table here is the only authority: :class:`gateway.store.Store` checks every transition
against it before writing, so no code path can, say, deliver a refused application.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.errors import GatewayError


class State(StrEnum):
    """An application's state; the value is what the database and the API carry."""

    RECEIVED = "received"
    VERIFICATION_DEFERRED = "verification_deferred"
    VERIFIED = "verified"
    VALIDATED = "validated"
    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    REFUSED = "refused"
    # Decisions the core system reports back.
    ACCEPTED = "accepted"
    RETURNED = "returned"
    REJECTED = "rejected"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        """Japanese name for the console and the command line."""
        return LABELS[self]


LABELS: dict[State, str] = {
    State.RECEIVED: "受信",
    State.VERIFICATION_DEFERRED: "検証保留",
    State.VERIFIED: "署名検証済み",
    State.VALIDATED: "内容審査済み",
    State.QUEUED: "連携待ち",
    State.RETRYING: "連携再試行中",
    State.DELIVERED: "連携済み",
    State.FAILED: "連携失敗",
    State.REFUSED: "不受理",
    State.ACCEPTED: "受付",
    State.RETURNED: "差戻し",
    State.REJECTED: "却下",
    State.COMPLETED: "完了",
    State.WITHDRAWN: "取下げ",
}

# Withdrawal (取下げ) is possible until the core system has decided for good: before delivery
# it stops the delivery, after it the withdrawal is delivered to the target as such.
TRANSITIONS: dict[State | None, frozenset[State]] = {
    None: frozenset({State.RECEIVED}),
    State.RECEIVED: frozenset({State.VERIFIED, State.VERIFICATION_DEFERRED, State.REFUSED}),
    State.VERIFICATION_DEFERRED: frozenset({State.VERIFIED, State.REFUSED}),
    State.VERIFIED: frozenset({State.VALIDATED, State.REFUSED}),
    State.VALIDATED: frozenset({State.QUEUED, State.REFUSED}),
    State.QUEUED: frozenset({State.DELIVERED, State.RETRYING, State.FAILED, State.WITHDRAWN}),
    State.RETRYING: frozenset({State.DELIVERED, State.FAILED, State.WITHDRAWN}),
    # A person redelivers or re-routes (back to queued), or the resident withdraws.
    State.FAILED: frozenset({State.QUEUED, State.WITHDRAWN}),
    State.DELIVERED: frozenset(
        {State.ACCEPTED, State.RETURNED, State.REJECTED, State.COMPLETED, State.WITHDRAWN}),
    State.ACCEPTED: frozenset({State.RETURNED, State.REJECTED, State.COMPLETED, State.WITHDRAWN}),
    # A 差戻し is normally answered by a linked 再提出 (a new application); the core
    # system may still decide on the original.
    State.RETURNED: frozenset({State.ACCEPTED, State.REJECTED, State.COMPLETED, State.WITHDRAWN}),
    State.REFUSED: frozenset(),
    State.REJECTED: frozenset(),
    State.COMPLETED: frozenset(),
    State.WITHDRAWN: frozenset(),
}

TERMINAL: frozenset[State] = frozenset(s for s, nxt in TRANSITIONS.items() if s is not None and not nxt)
"""States nothing leaves."""

CORE_DECISIONS: frozenset[State] = frozenset(
    {State.ACCEPTED, State.RETURNED, State.REJECTED, State.COMPLETED, State.WITHDRAWN})
"""States a core system may report through the status endpoint."""


class IllegalTransition(GatewayError):
    """A state change the lifecycle does not allow."""

    code = "state-illegal-transition"
    status = 409
    title = "この状態からは変更できません"


def can_transition(old: State | str | None, new: State | str) -> bool:
    try:
        old_state = None if old is None else State(old)
        return State(new) in TRANSITIONS[old_state]
    except ValueError:  # an unknown state name
        return False


def check_transition(old: State | str | None, new: State | str) -> State:
    """Return ``new`` as a :class:`State`, or raise :class:`IllegalTransition`."""
    if not can_transition(old, new):
        shown_old = label(old) if old is not None else "(なし)"
        raise IllegalTransition(
            f"状態「{shown_old}」から「{label(new)}」には変更できません ({old} → {new})",
            from_state=None if old is None else str(old), to_state=str(new))
    return State(new)


def label(state: State | str) -> str:
    """Japanese label of ``state``; an unknown name is shown as is."""
    try:
        return LABELS[State(state)]
    except ValueError:
        return str(state)
