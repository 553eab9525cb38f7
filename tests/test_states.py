from __future__ import annotations

import itertools

import pytest

from gateway.errors import GatewayError
from gateway.states import (
    CORE_DECISIONS,
    LABELS,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    State,
    can_transition,
    check_transition,
    label,
)


def test_every_state_has_a_japanese_label_and_a_row_in_the_table():
    assert set(LABELS) == set(State)
    assert set(TRANSITIONS) == {None, *State}
    assert [State(s).label for s in ("accepted", "returned", "rejected", "completed", "withdrawn")] == [
        "受付", "差戻し", "却下", "完了", "取下げ"]
    assert label("refused") == "不受理"
    assert label("no-such-state") == "no-such-state"


def test_the_happy_path_of_lifecycle_md_is_allowed():
    path = [None, "received", "verified", "validated", "queued", "delivered", "accepted", "completed"]
    for old, new in itertools.pairwise(path):
        assert check_transition(old, new) is State(new)


@pytest.mark.parametrize(("old", "new"), [
    ("received", "verification_deferred"), ("verification_deferred", "verified"),
    ("verification_deferred", "refused"), ("queued", "retrying"), ("retrying", "delivered"),
    ("retrying", "failed"), ("queued", "failed"), ("failed", "queued"), ("delivered", "returned"),
    ("delivered", "withdrawn"), ("queued", "withdrawn"), ("returned", "accepted"),
])
def test_branches_of_the_lifecycle_are_allowed(old, new):
    assert can_transition(old, new)


@pytest.mark.parametrize(("old", "new"), [
    ("refused", "queued"),        # a refused package is never delivered
    ("received", "queued"),       # nothing skips verification and validation
    ("received", "delivered"),
    ("verification_deferred", "validated"),
    ("delivered", "queued"),
    ("completed", "withdrawn"),   # terminal
    ("withdrawn", "delivered"),
    (None, "verified"),           # every application starts as received
    ("verified", "received"),
    ("queued", "no-such-state"),
])
def test_illegal_transitions_raise_a_409_gateway_error(old, new):
    assert not can_transition(old, new)
    with pytest.raises(IllegalTransition) as caught:
        check_transition(old, new)
    assert isinstance(caught.value, GatewayError)
    assert caught.value.code == "state-illegal-transition"
    assert caught.value.status == 409
    assert "変更できません" in caught.value.detail


def test_terminal_states_and_core_decisions():
    assert TERMINAL == {State.REFUSED, State.REJECTED, State.COMPLETED, State.WITHDRAWN}
    assert CORE_DECISIONS == {State.ACCEPTED, State.RETURNED, State.REJECTED, State.COMPLETED, State.WITHDRAWN}
    assert all(not can_transition(s, t) for s in TERMINAL for t in State)


def test_every_state_is_reachable_from_arrival():
    seen: set[State] = set()
    todo: list[State | None] = [None]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(State)
