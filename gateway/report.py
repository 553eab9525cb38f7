"""``gateway verify``: run the checks of the intake on one package, store nothing, explain all."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from gateway.archive import read_package
from gateway.errors import GatewayError, RevocationUnknown
from gateway.pipeline import Pipeline, utcnow


@dataclass(frozen=True)
class Step:
    label: str
    ok: bool
    lines: tuple[str, ...] = ()
    code: str = ""


@dataclass(frozen=True)
class Report:
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def render(self) -> str:
        out = []
        for step in self.steps:
            mark = "OK " if step.ok else "NG "
            out.append(f"[{mark}] {step.label}" + (f"  ({step.code})" if step.code else ""))
            out.extend(f"       {line}" for line in step.lines)
        out.append("結果: " + ("受付可能" if self.ok else "受付不可"))
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [
            {"label": s.label, "ok": s.ok, "code": s.code, "lines": list(s.lines)} for s in self.steps]}


def inspect_package(pipeline: Pipeline, data: bytes, *, at: dt.datetime | None = None) -> Report:
    """Check ``data`` as the intake would at ``at`` (default: now) and describe each step."""
    steps: list[Step] = []
    try:
        raw = read_package(data, pipeline.policy.limits)
        steps.append(Step("パッケージ (ZIP)", True, tuple(
            f"{name}  {len(body):,} バイト" for name, body in raw.members.items())))
        try:
            verified = pipeline.verify(raw, arrival_time=at or utcnow())
        except RevocationUnknown as err:
            steps.append(Step("失効確認 (保留: 失効情報を待っています)", False,
                              _revocation_lines((err.extra or {}).get("revocation") or {}), code=err.code))
            return Report(tuple(steps))
        steps.append(_signature_step(verified))
        steps.append(_certificate_step(verified))
        if verified.signed:
            steps.append(Step("失効確認", True, _revocation_lines(verified.evidence.get("revocation") or {})))
        steps.extend(_co_signature_steps(verified))
        m = verified.manifest
        steps.append(Step("構成情報 (署名対象)", True, (
            f"到達番号 {m.arrival_number} / 手続 {m.procedure_code} v{m.form_version} / 提出先 {m.municipality_code}",
            f"申請種別 {m.application_kind} / 申請日時 {m.applied_at.isoformat() if m.applied_at else '-'}",
            f"申請書 {m.form_filename} / 添付 {', '.join(a.filename for a in m.attachments) or 'なし'}",
        )))
        procedure = pipeline.procedure_for(verified)
        context = pipeline.validate(verified, procedure)
        steps.append(Step("様式・業務ルール", True, (f"{procedure.title} ({procedure.target} へ連携)",)))
        if verified.signed:
            steps.append(_identity_step(pipeline.identity.identify(verified, procedure, context)))
    except GatewayError as err:
        lines = [err.detail] + [f"{p.path} (行 {p.line}): {p.message}" for p in err.problems]
        steps.append(Step(err.title, False, tuple(lines), code=err.code))
    return Report(tuple(steps))


def _signature_step(verified: Any) -> Step:
    if not verified.signed:
        return Step("電子署名", True, ("署名なし (手続の方針で許可) — 要本人確認",))
    co_signers = len(verified.co_signers)
    label = "電子署名 (XMLDSig)" + (f" — 申請者 (ほかに連署 {co_signers} 件)" if co_signers else "")
    return Step(label, True, _signature_lines(verified.evidence.get("signature", {})))


def _signature_lines(ev: dict[str, Any]) -> tuple[str, ...]:
    lines = [f"署名ID {ev.get('id') or '-'}",
             f"署名方式 {ev.get('signature_method')}",
             f"正規化方式 {ev.get('c14n_method')}",
             f"参照 {ev.get('manifest', {}).get('uri')} (構成情報)"]
    lines += [f"参照 {name} ダイジェスト一致" for name in ev.get("members", {})]
    return tuple(lines)


def _co_signature_steps(verified: Any) -> list[Step]:
    """One step per co-signer (代理人, 本人 …): signature, certificate and revocation together."""
    steps = []
    evidence = verified.evidence.get("co_signatures") or []
    for number, (cert, ev) in enumerate(zip(verified.co_signers, evidence), start=1):
        lines = (*_signature_lines(ev.get("signature") or {}), *_certificate_lines(cert),
                 *_revocation_lines(ev.get("revocation") or {}))
        steps.append(Step(f"連署 {number} (電子署名・証明書・失効確認)", True, lines))
    return steps


def _certificate_step(verified: Any) -> Step:
    cert = verified.signer
    if cert is None:
        return Step("署名用電子証明書", True, ("なし",))
    return Step("署名用電子証明書", True, _certificate_lines(cert))


def _certificate_lines(cert: Any) -> tuple[str, ...]:
    return (
        f"発行者 {cert.issuer}",
        f"主体者 {cert.subject}",
        f"シリアル番号 {cert.serial_number:x}",
        f"有効期間 {cert.not_before:%Y-%m-%d} 〜 {cert.not_after:%Y-%m-%d}",
        f"トラストアンカー SHA-256 {cert.anchor_fingerprint[:16]}…" + (" (テスト用ルート)" if cert.test_root else ""),
        f"証明書ポリシー {', '.join(cert.policy_oids) or '-'}",
    )


_REVOCATION_STATES = {"good": "失効していません", "revoked": "失効", "unknown": "判断できません",
                      "not-checked": "確認していません (REVOCATION_CHECK=none)"}


def _revocation_lines(status: dict[str, Any]) -> tuple[str, ...]:
    detail = status.get("detail") or {}
    lines = [f"判定 {_REVOCATION_STATES.get(status.get('state', ''), status.get('state', '-'))}"
             f" (到達時点 {detail.get('as_of', '-')})", f"判定根拠 {status.get('source') or '-'}"]
    if detail.get("crl_number") is not None:
        lines.append(f"CRL 番号 {detail['crl_number']} / 発行 {detail.get('this_update', '-')}"
                     f" / 次回更新 {detail.get('next_update', '-')}")
    if detail.get("reason"):
        lines.append(f"理由 {detail['reason']}")
    if detail.get("awaiting"):
        lines.append("待っている失効情報 " + ", ".join(detail["awaiting"]))
    return tuple(lines)


def _identity_step(identity: Any) -> Step:
    facts = identity.evidence.get("basic_facts") or {}
    lines = [f"{place} {outcome}" for place, outcome in (facts.get("comparison") or {}).items()]
    if not facts.get("read", True):
        lines.append("証明書の基本4情報を読み取れません")
    book = identity.evidence.get("address_book")
    if book is None:
        lines.append("宛名番号 対応表なし (照合していません)")
    else:
        lines.append("宛名番号 " + ("対応表で特定しました" if book.get("found") else "未特定 (対応表にありません)"))
    lines.append("要確認 " + ("、".join(identity.flags) if identity.flags else "なし"))
    return Step("基本4情報・宛名番号", True, tuple(lines))
