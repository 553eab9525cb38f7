"""Every stable error code the code can raise is documented in docs/error-codes.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.errors import GatewayError, RuleError, SchemaError, to_problem

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("package|xml|signature|algorithm|certificate|revocation|schema|rule|procedure|municipality"
            "|delivery|state|auth|startup")
CODE = re.compile(rf'"((?:{FAMILIES})-[a-z0-9-]+)"')
NOT_CODES = {"xml-stylesheet", "delivery-worker"}  # a PI target and a thread name


def raised_codes() -> set[str]:
    found: set[str] = set()
    for folder in ("gateway", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(CODE.findall(path.read_text(encoding="utf-8")))
    return found - NOT_CODES


def documented_codes() -> set[str]:
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", (ROOT / "docs" / "error-codes.md").read_text(encoding="utf-8"),
                          re.MULTILINE))


def test_codes_are_found():
    assert {"signature-digest-mismatch", "rule-mynumber-check-digit", "package-too-large"} <= raised_codes()


@pytest.mark.parametrize("code", sorted(raised_codes()))
def test_code_is_documented(code):
    assert code in documented_codes()


def test_every_error_class_code_is_documented():
    def walk(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    assert {cls.code for cls in walk(GatewayError)} <= documented_codes()


def test_problem_document_shape():
    from gateway.errors import Problem

    err = RuleError("1 件", problems=[Problem("/a/b", "誤り", line=3, code="rule-x")])
    body = to_problem(err, instance="/api/v1/applications")
    assert body["type"].endswith("/rule-violation") and body["status"] == 422
    assert body["errors"] == [{"path": "/a/b", "line": 3, "message": "誤り", "code": "rule-x"}]
    assert SchemaError.title and SchemaError.status == 422
