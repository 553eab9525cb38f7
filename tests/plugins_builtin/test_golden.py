"""The reference plugins' rules and records are exactly what they were before the speed work.

``golden/*.json`` was written by the code before the rewrite (see :mod:`golden_cases`): every
problem (code, path, line, message), every record byte (as its SHA-256 but for the samples),
and the target schema's verdict.
"""

from __future__ import annotations

import json

import pytest

from tests.plugins_builtin import golden_cases as golden

CASES = [(code, case) for code, (_, make_cases) in golden.PROCEDURES.items() for case in make_cases()]


def _pinned(code: str) -> dict[str, object]:
    return json.loads(golden.golden_path(code).read_text(encoding="utf-8"))


PINNED = {code: _pinned(code) for code in golden.PROCEDURES}


def test_every_pinned_case_is_still_generated() -> None:
    for code, pinned in PINNED.items():
        assert sorted(pinned) == sorted(case.name for c, case in CASES if c == code)


def test_the_cases_reach_the_transform() -> None:
    """Nearly every case passes the form schema, so the rules and the transform are what is pinned."""
    for pinned in PINNED.values():
        assert sum("problems" in outcome for outcome in pinned.values()) >= len(pinned) - 10


def test_the_rules_refuse_what_the_transform_cannot_take() -> None:
    """The pipeline transforms only a form its rules accepted: no such form may make it fail."""
    for pinned in PINNED.values():
        failing = {name: outcome for name, outcome in pinned.items() if "transform_error" in outcome}
        assert failing  # the pre-1873 dates: the transform is still tried on them here
        assert all(outcome["problems"] for outcome in failing.values()), [
            name for name, outcome in failing.items() if not outcome["problems"]]


@pytest.mark.parametrize(("code", "case"), CASES, ids=[f"{code}:{case.name}" for code, case in CASES])
def test_outcome_is_unchanged(code: str, case: golden.Case) -> None:
    procedure, _ = golden.PROCEDURES[code]
    assert golden.pinned(case, golden.outcome(procedure, case)) == PINNED[code][case.name]
