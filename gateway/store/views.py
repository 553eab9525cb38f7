"""Frozen snapshots the store hands out. Nothing here is attached to a session or connection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from gateway.states import State


@dataclass(frozen=True)
class Application:
    """One row of ``applications`` as it was when read."""

    id: int
    arrival_number: str
    package_sha256: str
    state: State
    live: bool
    received_at: dt.datetime
    updated_at: dt.datetime
    source: str
    procedure_code: str | None = None
    procedure_version: str | None = None
    plugin_version: str | None = None
    municipality_code: str | None = None
    application_kind: str | None = None
    original_arrival_number: str | None = None
    applied_at: dt.datetime | None = None
    verified_at: dt.datetime | None = None
    flags: tuple[str, ...] = ()
    signer: Mapping[str, Any] | None = None
    evidence: Mapping[str, Any] | None = field(default=None, repr=False)
    """Verification evidence; it holds personal data (基本4情報), so it is kept out of repr()."""
    error_code: str | None = None
    error_detail: str | None = None
    problems: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON for the API and console. Evidence (it holds personal data) is left out."""
        out: dict[str, Any] = {
            "到達番号": self.arrival_number, "arrival_number": self.arrival_number,
            "state": self.state.value, "state_label": self.state.label,
            "procedure": self.procedure_code, "procedure_version": self.procedure_version,
            "municipality": self.municipality_code, "application_kind": self.application_kind,
            "original_arrival_number": self.original_arrival_number,
            "received_at": _iso(self.received_at), "applied_at": _iso(self.applied_at),
            "verified_at": _iso(self.verified_at), "updated_at": _iso(self.updated_at),
            "source": self.source, "flags": list(self.flags), "signer": self.signer,
            "package_sha256": self.package_sha256,
        }
        if self.error_code:
            out["error"] = {"code": self.error_code, "detail": self.error_detail,
                            "errors": [dict(p) for p in self.problems]}
        return out


@dataclass(frozen=True)
class ArrivalResult:
    application: Application
    replay: bool
    """True when the same package had already arrived: nothing new was stored."""


@dataclass(frozen=True)
class Transition:
    """One recorded state change; also what transition listeners receive."""

    arrival_number: str
    from_state: State | None
    to_state: State
    at: dt.datetime
    actor: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.from_state and self.from_state.value, "to": self.to_state.value,
                "at": _iso(self.at), "actor": self.actor, "reason": self.reason}


@dataclass(frozen=True)
class Step:
    """One state change among several made in a single commit (:meth:`Store.advance`)."""

    to_state: State | str
    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Columns to set with it, as for :meth:`Store.transition`."""


@dataclass(frozen=True)
class RecordInfo:
    """A stored target record (its bytes are in the blob store under ``content_sha256``)."""

    id: int
    target: str
    media_type: str
    filename: str
    content_sha256: str
    size: int
    plugin: str
    plugin_version: str
    created_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "media_type": self.media_type, "filename": self.filename,
                "sha256": self.content_sha256, "size": self.size, "plugin": self.plugin,
                "plugin_version": self.plugin_version, "created_at": _iso(self.created_at)}


@dataclass(frozen=True)
class Attempt:
    attempt: int
    at: dt.datetime
    ok: bool
    error: str | None = None
    receipt_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "at": _iso(self.at), "ok": self.ok, "error": self.error,
                "receipt_id": self.receipt_id}


@dataclass(frozen=True)
class DeliveryView:
    """One outbox entry with its attempts."""

    id: int
    channel: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    record_id: int
    last_error: str | None = None
    delivered_at: dt.datetime | None = None
    receipt_id: str | None = None
    history: tuple[Attempt, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "status": self.status, "attempts": self.attempts,
                "next_attempt_at": _iso(self.next_attempt_at), "created_at": _iso(self.created_at),
                "delivered_at": _iso(self.delivered_at), "receipt_id": self.receipt_id,
                "last_error": self.last_error, "history": [a.as_dict() for a in self.history]}


@dataclass(frozen=True)
class ApplicationView:
    """Everything ``GET /api/v1/applications/<到達番号>`` shows."""

    application: Application
    history: tuple[Transition, ...]
    records: tuple[RecordInfo, ...]
    deliveries: tuple[DeliveryView, ...]

    @property
    def arrival_number(self) -> str:
        return self.application.arrival_number

    @property
    def state(self) -> State:
        return self.application.state

    def as_dict(self) -> dict[str, Any]:
        return {**self.application.as_dict(), "evidence": evidence_summary(self.application.evidence),
                "history": [t.as_dict() for t in self.history],
                "records": [r.as_dict() for r in self.records],
                "deliveries": [d.as_dict() for d in self.deliveries]}


@dataclass(frozen=True)
class OutboxItem:
    """A claimed delivery: the worker holds its lease until ``lease_until``."""

    id: int
    application_id: int
    arrival_number: str
    procedure_code: str
    channel: str
    attempt: int
    """The number of this attempt (1 for the first)."""
    lease_token: str
    lease_until: dt.datetime
    record: RecordInfo
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    """A package refused before any 到達番号 could be read."""

    id: int
    package_sha256: str
    size: int
    at: dt.datetime
    source: str
    error_code: str
    error_detail: str


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def application_from_row(row: sa.RowMapping) -> Application:
    return Application(
        id=row["id"], arrival_number=row["arrival_number"], package_sha256=row["package_sha256"],
        state=State(row["state"]), live=bool(row["live"]), received_at=row["received_at"],
        updated_at=row["updated_at"], source=row["source"], procedure_code=row["procedure_code"],
        procedure_version=row["procedure_version"], plugin_version=row["plugin_version"],
        municipality_code=row["municipality_code"], application_kind=row["application_kind"],
        original_arrival_number=row["original_arrival_number"], applied_at=row["applied_at"],
        verified_at=row["verified_at"], flags=tuple(row["flags"] or ()), signer=row["signer"],
        evidence=row["evidence"], error_code=row["error_code"], error_detail=row["error_detail"],
        problems=tuple(row["problems"] or ()),
    )


def record_from_row(row: sa.RowMapping, size: int) -> RecordInfo:
    return RecordInfo(
        id=row["id"], target=row["target"], media_type=row["media_type"], filename=row["filename"],
        content_sha256=row["content_sha256"], size=size, plugin=row["plugin"],
        plugin_version=row["plugin_version"], created_at=row["created_at"],
    )


def evidence_summary(evidence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the API shows of the verification evidence: how it was decided, no personal data.

    The certificate subject and the four basic facts stay in the store.
    """
    if not evidence:
        return None
    return {
        "signed": evidence.get("signed"),
        "verified_as_of": evidence.get("verified_as_of"),
        **_signature_summary(evidence),
        # Co-signers (代理人, 本人 …) where the procedure allows them: the same, no subject either.
        "co_signatures": [_signature_summary(co) for co in evidence.get("co_signatures") or ()],
        # Outcomes per field (一致/不一致) and whether the 宛名番号 was found: never the values.
        "identity": evidence.get("identity"),
    }


def _signature_summary(evidence: Mapping[str, Any]) -> dict[str, Any]:
    cert = evidence.get("certificate") or {}
    return {
        "signature": evidence.get("signature"),
        "certificate": {k: cert[k] for k in ("issuer", "serial", "not_before", "not_after", "sha256",
                                             "anchor_sha256", "policies", "test_root") if k in cert},
        "revocation": evidence.get("revocation"),
    }
