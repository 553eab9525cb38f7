"""The path of one package: store → verify → validate → transform → queue for delivery.

No Flask here: the HTTP API, the batch ingester and the inbox watcher all call
:meth:`Pipeline.intake`, and tests call it directly.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lxml import etree

from gateway.archive import RawPackage, read_package
from gateway.config import limits_from
from gateway.errors import (
    GatewayError,
    MunicipalityError,
    RevocationUnknown,
    RuleError,
    SignatureError,
    TransformError,
)
from gateway.identity import Identity, IdentityResult
from gateway.manifest import parse_kousei, peek_arrival_number
from gateway.models import (
    FormContext,
    Limits,
    Procedure,
    Receipt,
    SignaturePolicy,
    TargetRecord,
    VerifiedPackage,
)
from gateway.plugins import Plugins
from gateway.revocation import NoRevocationChecker, Revocation, revocation_from_config
from gateway.states import IllegalTransition
from gateway.store import Application, Store, manifest_fields, signer_summary
from gateway.store.lifecycle import problems_json
from gateway.store.views import Step
from gateway.trust import CertificateValidator, TrustAnchors
from gateway.validation import run_checks, validate_form, validate_target
from gateway.verification import verify_package
from gateway.xmlsafe import parse_xml

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
STALE_AFTER = dt.timedelta(seconds=5)
"""A resent package whose application is still ``received`` after this was stopped half-way
(a crash, or an error before verification ended): the resend resumes it. Resuming twice is
harmless (the store refuses the second set of transitions), only wasted work."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class IntakePolicy:
    """What the intake enforces beyond each procedure's own rules."""

    limits: Limits
    municipalities: frozenset[str]
    """Accepted 提出先団体コード; empty accepts any well-formed code."""
    procedure_settings: Mapping[str, Mapping[str, Any]]


class Pipeline:
    """Takes package bytes in and leaves an application in the store, queued or refused."""

    def __init__(self, *, policy: IntakePolicy, plugins: Plugins, store: Store,
                 validator: CertificateValidator, revocation: Revocation | None = None,
                 identity: Identity | None = None, clock: Clock = utcnow) -> None:
        self.policy = policy
        self.plugins = plugins
        self.store = store
        self.validator = validator
        self.revocation = revocation or Revocation(NoRevocationChecker())
        """The revocation checker and its refresh schedule (``serving`` runs the schedule)."""
        self.identity = identity or Identity()
        self.clock = clock

    @classmethod
    def from_config(cls, config: Mapping[str, Any], plugins: Plugins, store: Store,
                    clock: Clock = utcnow) -> Pipeline:
        anchors = TrustAnchors.load(config["TRUST_ANCHORS"])
        policy = IntakePolicy(
            limits=limits_from(config),
            municipalities=frozenset(config["MUNICIPALITIES"]),
            procedure_settings=config["PROCEDURES"],
        )
        validator = CertificateValidator(anchors, allow_test_roots=bool(config["ALLOW_TEST_ROOTS"]))
        revocation = revocation_from_config(config, anchors, clock=clock)
        revocation.load_if_empty()
        return cls(policy=policy, plugins=plugins, store=store, validator=validator,
                   revocation=revocation,
                   identity=Identity.from_config(config, store), clock=clock)

    # ------------------------------------------------------------------ intake

    def intake(self, data: bytes, *, source: str) -> Receipt:
        """Store, verify, validate and queue one package.

        :returns: The receipt (``replay`` set when the same package came before).
        :raises GatewayError: when the package is refused; it is recorded all the same.
        """
        received_at = self.clock()
        try:
            raw = read_package(data, self.policy.limits)
            kousei = parse_kousei(raw.members)  # parsed once: peeked here, verified in _process
            arrival_number = peek_arrival_number(kousei)
        except GatewayError as err:
            self.store.record_unreadable(package=data, source=source, error_code=err.code,
                                         detail=err.detail, received_at=received_at)
            raise
        if arrival_number is None:
            err = self._why_unreadable(raw, kousei, received_at)
            self.store.record_unreadable(package=data, source=source, error_code=err.code,
                                         detail=err.detail, received_at=received_at)
            raise err

        arrival = self.store.record_arrival(arrival_number=arrival_number, package=data,
                                            received_at=received_at, source=source)
        app = arrival.application
        if arrival.replay:
            if app.state == "received" and self.clock() - app.received_at > STALE_AFTER:
                return self.resume(app)  # a crash stopped it half-way; the resend finishes it
            return Receipt(app.arrival_number, app.state, app.procedure_code or "",
                           app.received_at, replay=True, flags=tuple(app.flags or ()))
        return self._process(app.id, app.arrival_number, raw, received_at, kousei)

    def _why_unreadable(self, raw: RawPackage, kousei: etree._Element | None, received_at: dt.datetime) -> GatewayError:
        """The most specific refusal for a package whose 到達番号 cannot be read: verification
        names a wrapped or malformed signature (two 構成情報, say) better than "unreadable"."""
        try:
            self.verify(raw, arrival_time=received_at, kousei=kousei)
        except RevocationUnknown:
            pass  # no verdict: the unreadable number is the reason
        except GatewayError as err:
            return err
        return _unreadable_manifest()

    def resume(self, app: Application) -> Receipt:
        """Finish an application a crash left in ``received``, judged as of its arrival."""
        raw = read_package(self.store.get_blob(app.package_sha256), self.policy.limits)
        try:
            return self._process(app.id, app.arrival_number, raw, app.received_at)
        except IllegalTransition:  # another process finished it in the meantime
            now = self.store.get_application_by_id(app.id)
            return Receipt(app.arrival_number, now.state, now.application.procedure_code or "",
                           app.received_at, replay=True)

    def resume_stale(self, older_than: dt.timedelta = dt.timedelta(0)) -> int:
        """Finish every application an earlier stop left in ``received`` (run at start-up)."""
        resumed = 0
        for app in self.store.list_applications(state="received", limit=10_000):
            if self.clock() - app.received_at <= older_than:
                continue
            try:
                self.resume(app)
            except GatewayError:
                pass  # refused: recorded by _process, nothing more to do here
            resumed += 1
        if resumed:
            log.warning("resumed %d application(s) left in 'received' by an earlier stop", resumed)
        return resumed

    def reverify_deferred(self, partitions: frozenset[str] | None = None) -> int:
        """Verify again the applications deferred for want of revocation data (as of their arrival).

        ``partitions``: the revocation partitions that just got fresh data (the refresher's
        ``on_change``); an application waiting on none of them is left alone. None: all of them.
        Returns how many left ``verification_deferred``.
        """
        decided = 0
        for app in self.store.list_applications(state="verification_deferred", limit=10_000):
            awaiting = set(((app.evidence or {}).get("revocation") or {}).get("detail", {}).get("awaiting", ()))
            if partitions is not None and awaiting and not awaiting & partitions:
                continue
            raw = read_package(self.store.get_blob(app.package_sha256), self.policy.limits)
            try:
                receipt = self._process(app.id, app.arrival_number, raw, app.received_at, still_deferred=True)
            except IllegalTransition:
                continue  # another process decided it in the meantime
            except GatewayError:
                decided += 1  # refused (revoked, or a later check): recorded by _process
                continue
            if receipt.state != "verification_deferred":
                decided += 1
        if decided:
            log.info("re-verified %d deferred application(s) with fresh revocation data", decided)
        return decided

    def _process(self, app_id: int, arrival_number: str, raw: RawPackage, received_at: dt.datetime,
                 kousei: etree._Element | None = None, *, still_deferred: bool = False) -> Receipt:
        try:
            verified = self.verify(raw, arrival_time=received_at, kousei=kousei)
            if verified.manifest.arrival_number != arrival_number:
                # Recorded under the number read before verification: it must be the signed one.
                raise SignatureError("署名された到達番号と受付時に読み取った到達番号が一致しません",
                                     code="signature-wrapping")
        except RevocationUnknown as err:
            if not still_deferred:  # a re-verification that still cannot decide changes nothing
                self.store.transition(app_id, "verification_deferred", actor="system", reason=err.code,
                                      error_code=err.code, error_detail=err.detail,
                                      evidence={"revocation": err.extra.get("revocation")})
            return Receipt(arrival_number, "verification_deferred", "", received_at)
        except GatewayError as err:
            self.store.refuse(app_id, err.code, err.detail, err.problems)
            raise
        try:
            procedure = self.procedure_for(verified)
            context = self.validate(verified, procedure)
        except GatewayError as err:
            self.store.advance(app_id, [_verified_step(verified), _refusal_step(err)], actor="system")
            raise
        identity = self.identity.identify(verified, procedure, context)
        verified_step = _verified_step(verified, identity)
        flags = tuple(verified_step.fields["flags"])
        # What dataclasses.replace(context, address_number=…) makes, without its field walk.
        context = FormContext(package=context.package, form=context.form, settings=context.settings,
                              address_number=identity.address_number)
        validated_step = Step("validated", "様式・業務ルールを検証しました")
        try:
            record = self.transform(procedure, context)
        except TransformError as err:
            # Accepted all the same: the plugin is at fault, not the resident. The application
            # waits in `validated` with the error for staff; nothing is lost or delivered.
            log.error("transform of %s by %s failed: %s", arrival_number, procedure.code, err.detail)
            self.store.advance(app_id, [verified_step, Step("validated", err.code, {
                "error_code": err.code, "error_detail": err.detail})], actor=f"plugin:{procedure.code}")
            return Receipt(arrival_number, "validated", procedure.code, received_at, flags=flags)
        channel = self.plugins.route_delivery(procedure, verified.manifest)
        # Verified, validated and queued become durable in one commit after the arrival's.
        self.store.queue_delivery(
            app_id, record=record, channel=channel, plugin=procedure.code,
            plugin_version=procedure.plugin_version, actor="system",
            steps_before=[verified_step, validated_step], read_back=False)
        return Receipt(arrival_number, "queued", procedure.code, received_at, flags=flags)

    # ------------------------------------------------------------------ steps (also used by `gateway verify`)

    def verify(self, raw: RawPackage, *, arrival_time: dt.datetime,
               kousei: etree._Element | None = None) -> VerifiedPackage:
        """Signature, certificate and manifest checks; only what the signature covers comes back.

        ``kousei``: ``raw``'s kousei.xml as :func:`~gateway.manifest.parse_kousei` parsed it, if at hand.
        """
        return verify_package(raw, limits=self.policy.limits, validator=self.validator,
                              signature_policy_for=self.signature_policy_for, arrival_time=arrival_time,
                              kousei=kousei, revocation=self.revocation.checker)

    def procedure_for(self, verified: VerifiedPackage) -> Procedure:
        manifest = verified.manifest
        self._check_municipality(manifest.municipality_code)
        return self.plugins.procedure(manifest.procedure_code, manifest.form_version)

    def validate(self, verified: VerifiedPackage, procedure: Procedure) -> FormContext:
        """Form schema, the procedure's rules and plugins' added checks; raises on any problem."""
        form = parse_xml(verified.form_xml, what=verified.manifest.form_filename)
        validate_form(procedure, verified.form_xml, form)
        context = FormContext(package=verified, form=form,
                              settings=self.policy.procedure_settings.get(procedure.code, {}))
        problems = [*self.plugins.check_package(verified, procedure), *run_checks(procedure, context),
                    *self.plugins.check_form(context, procedure)]
        if problems:
            raise RuleError(f"{len(problems)} 件の誤りがあります", problems=problems)
        return context

    def transform(self, procedure: Procedure, context: FormContext) -> TargetRecord:
        """The procedure's record, checked against its target schema before anything is queued."""
        try:
            record = procedure.transform(context)
        except TransformError:
            raise
        except Exception as exc:  # a plugin bug must not lose an accepted application
            raise TransformError(f"{procedure.code} の変換でエラーが発生しました: {type(exc).__name__}") from exc
        validate_target(record)
        return record

    # ------------------------------------------------------------------ policy

    def signature_policy_for(self, procedure_code: str) -> SignaturePolicy:
        """The procedure's own policy, as a municipality tightened or relaxed it in config."""
        versions = [p for (code, _), p in self.plugins.procedures.items() if code == procedure_code]
        base = versions[-1].signature_policy if versions else SignaturePolicy()
        overrides = self.policy.procedure_settings.get(procedure_code, {})
        if "UNSIGNED_ALLOWED" in overrides:
            base = replace(base, unsigned_allowed=bool(overrides["UNSIGNED_ALLOWED"]))
        if "MAX_SIGNATURES" in overrides:
            base = replace(base, max_signatures=int(overrides["MAX_SIGNATURES"]))
        return base

    def _check_municipality(self, code: str) -> None:
        if self.policy.municipalities and code not in self.policy.municipalities:
            raise MunicipalityError(f"提出先団体コード {code} はこのゲートウェイの受付対象ではありません")


def _verified_step(verified: VerifiedPackage, identity: IdentityResult | None = None) -> Step:
    """The ``verified`` transition and the columns it sets: only what the signature covered,
    and (once the form is validated) what the identity check found."""
    evidence = dict(verified.evidence)
    flags = list(verified.flags)
    if identity is not None:
        evidence["identity"] = identity.evidence  # field names and outcomes, never the values
        flags += [flag for flag in identity.flags if flag not in flags]
    return Step("verified", "署名・証明書を検証しました", {
        **manifest_fields(verified.manifest),
        "verified_at": utcnow(),
        "flags": flags,
        "evidence": evidence,
        "signer": signer_summary(verified.signer),
    })


def _refusal_step(err: GatewayError) -> Step:
    return Step("refused", err.code, {"error_code": err.code, "error_detail": err.detail,
                                       "problems": problems_json(err.problems)})


def _unreadable_manifest() -> GatewayError:
    from gateway.errors import PackageError

    return PackageError("kousei.xml から到達番号を読み取れません", code="package-manifest-invalid")
