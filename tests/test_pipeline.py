"""The pipeline on its own: no Flask app, a real store, the built-in plugins."""

from __future__ import annotations

import pytest

from gateway.config import load_config
from gateway.errors import MunicipalityError, PackageError, ProcedureError, SignatureError
from gateway.pipeline import Pipeline
from gateway.plugins import Plugins, make_plugin_manager
from gateway.store import Store


@pytest.fixture
def make_pipeline(app_config):
    def make(**overrides) -> Pipeline:
        config = load_config({**app_config, **overrides})
        plugins = Plugins(make_plugin_manager(config), config)
        store = Store(config["DATABASE_URL"], on_transition=plugins.state_changed)
        store.upgrade()
        return Pipeline.from_config(config, plugins, store)

    return make


@pytest.fixture
def pipeline(make_pipeline) -> Pipeline:
    return make_pipeline()


def test_valid_package_is_queued_with_record(pipeline, make_package):
    receipt = pipeline.intake(make_package("childcare-01"), source="test")
    assert (receipt.state, receipt.procedure_code, receipt.replay) == ("queued", "childcare-01", False)
    view = pipeline.store.get_application(receipt.arrival_number)
    assert view.records[0].target == "jidou-teate"
    assert view.application.signer["test_root"] is True


def test_replay_returns_the_first_receipt(pipeline, make_package):
    package = make_package("care-01")
    first = pipeline.intake(package, source="test")
    again = pipeline.intake(package, source="test")
    assert again.replay and again.arrival_number == first.arrival_number and again.state == "queued"


def test_unreadable_package_is_audited_not_lost(pipeline):
    with pytest.raises(PackageError):
        pipeline.intake(b"PK\x03\x04 broken", source="test")
    refusals = pipeline.store.list_refusals()
    assert len(refusals) == 1 and refusals[0].error_code.startswith("package-")


def test_refused_package_is_recorded_with_its_code(pipeline, make_package):
    from gateway.samples import tamper_form

    package = tamper_form(make_package("care-01", arrival_number="202611280000004242"))
    with pytest.raises(SignatureError):
        pipeline.intake(package, source="test")
    view = pipeline.store.get_application("202611280000004242")
    assert (view.state, view.application.error_code) == ("refused", "signature-digest-mismatch")


def test_other_municipality_is_refused(make_pipeline, make_package):
    pipeline = make_pipeline(MUNICIPALITIES=["011002"])
    with pytest.raises(MunicipalityError):
        pipeline.intake(make_package("childcare-01"), source="test")


def test_unknown_form_version_is_refused(pipeline, pki, app):
    from gateway.packaging import make_signed_package
    from gateway.samples import sample_for

    sample = sample_for(app.config, "childcare-01")
    package = make_signed_package(sample.form_xml, form_filename="childcare-01.xml", procedure_code="childcare-01",
                                  municipality_code="131016", arrival_number="202611280000004243",
                                  signer=pki.residents[0], attachments=dict(sample.attachments), form_version="9")
    with pytest.raises(ProcedureError) as caught:
        pipeline.intake(package, source="test")
    assert caught.value.code == "procedure-version-unknown"


def test_unsigned_package_refused_unless_policy_allows(make_pipeline, make_package):
    strict = make_pipeline()
    with pytest.raises(SignatureError) as caught:
        strict.intake(make_package("care-01", signed=False), source="test")
    assert caught.value.code == "signature-missing"

    relaxed = make_pipeline(PROCEDURES={"care-01": {"UNSIGNED_ALLOWED": True}})
    receipt = relaxed.intake(make_package("care-01", signed=False), source="test")
    assert receipt.state == "queued"
    assert "要本人確認" in receipt.flags


def test_signature_policy_comes_from_procedure_then_config(make_pipeline):
    pipeline = make_pipeline(PROCEDURES={"childcare-01": {"MAX_SIGNATURES": 2}})
    assert pipeline.signature_policy_for("childcare-01").max_signatures == 2
    assert pipeline.signature_policy_for("care-01").unsigned_allowed is False


def test_broken_transform_keeps_application_validated(make_pipeline, make_package, monkeypatch):
    pipeline = make_pipeline()
    procedure = pipeline.plugins.procedure("care-01", "1")
    from dataclasses import replace

    def broken(context):
        raise KeyError("バグ")

    pipeline.plugins.procedures[("care-01", "1")] = replace(procedure, transform=broken)
    receipt = pipeline.intake(make_package("care-01"), source="test")
    assert receipt.state == "validated"
    view = pipeline.store.get_application(receipt.arrival_number)
    assert (view.state, view.application.error_code) == ("validated", "schema-target-invalid")
    assert view.deliveries == ()


def test_transform_output_must_match_target_schema(make_pipeline, make_package):
    from dataclasses import replace

    from gateway.models import TargetRecord

    pipeline = make_pipeline()
    procedure = pipeline.plugins.procedure("childcare-01", "1")
    bad = lambda context: TargetRecord(b"<wrong/>", "application/xml", "x.xml", procedure.target,  # noqa: E731
                                       procedure.target_schema)
    pipeline.plugins.procedures[("childcare-01", "1")] = replace(procedure, transform=bad)
    assert pipeline.intake(make_package("childcare-01"), source="test").state == "validated"


def test_resend_resumes_an_application_a_crash_left_received(pipeline, make_package):
    import datetime as dt

    package = make_package("care-01", arrival_number="202611280000005555")
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    pipeline.store.record_arrival(arrival_number="202611280000005555", package=package,
                                  source="http:portal", received_at=long_ago)  # then the crash
    receipt = pipeline.intake(package, source="http:portal")
    assert receipt.state == "queued"
    view = pipeline.store.get_application("202611280000005555")
    assert [t.to_state for t in view.history].count("received") == 1
    assert view.application.received_at == long_ago  # judged as of the first arrival


def test_startup_sweep_resumes_received_applications(pipeline, make_package):
    package = make_package("childcare-01", arrival_number="202611280000005556")
    pipeline.store.record_arrival(arrival_number="202611280000005556", package=package, source="batch")
    assert pipeline.resume_stale() == 1
    assert pipeline.store.get_application("202611280000005556").state == "queued"
    assert pipeline.resume_stale() == 0


def test_arrival_number_read_before_verification_must_be_the_signed_one(pipeline, make_package, monkeypatch):
    """Defence in depth: the record is keyed by the number peeked before verification."""
    import gateway.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "peek_arrival_number", lambda members: "202611289999999999")
    with pytest.raises(SignatureError) as caught:
        pipeline.intake(make_package("care-01"), source="test")
    assert caught.value.code == "signature-wrapping"
    assert pipeline.store.get_application("202611289999999999").state == "refused"


def test_required_attachments_are_enforced_by_the_core(make_pipeline, make_package):
    from dataclasses import replace

    from gateway.errors import RuleError

    pipeline = make_pipeline()
    procedure = pipeline.plugins.procedure("care-01", "1")
    pipeline.plugins.procedures[("care-01", "1")] = replace(procedure, required_attachments=("委任状",))
    with pytest.raises(RuleError) as caught:
        pipeline.intake(make_package("care-01"), source="test")
    assert [(p.code, p.message) for p in caught.value.problems] == [
        ("rule-attachment-missing", "添付書類「委任状」がありません")]


def test_no_revocation_data_defers_then_fresh_data_verifies_it(make_pipeline, make_package, pki, tmp_path):
    """No CRL for the signer's partition: stored as verification_deferred (not refused, not
    accepted); once the CRL arrives, the refresher's change notice finishes it, as of arrival."""
    import shutil

    crl_dir = tmp_path / "crl-later"
    crl_dir.mkdir()
    pipeline = make_pipeline(DATA_DIR=str(tmp_path / "own"), REVOCATION_DIR=str(crl_dir))
    receipt = pipeline.intake(make_package("childcare-01"), source="test")
    assert receipt.state == "verification_deferred"
    deferred = pipeline.store.get_application(receipt.arrival_number).application
    assert deferred.error_code == "revocation-crl-missing"
    awaiting = deferred.evidence["revocation"]["detail"]["awaiting"]
    assert awaiting and all(a.startswith("crl:") for a in awaiting)
    assert pipeline.reverify_deferred() == 0  # still no data: nothing changes, nothing is lost
    assert pipeline.store.get_application(receipt.arrival_number).state == "verification_deferred"

    shutil.copytree(pki.directory / "crl", crl_dir, dirs_exist_ok=True)
    refresher = pipeline.revocation.refresher(on_change=pipeline.reverify_deferred)
    changed = refresher.run_once(force_refresh=True)
    assert set(awaiting) <= changed
    view = pipeline.store.get_application(receipt.arrival_number)
    assert view.state == "queued"
    assert [t.to_state for t in view.history] == [
        "received", "verification_deferred", "verified", "validated", "queued"]
    revocation = view.application.evidence["revocation"]
    assert revocation["state"] == "good" and revocation["detail"]["as_of"].startswith(
        deferred.received_at.isoformat()[:19])


def test_an_accepted_package_is_verified_once_and_never_diagnosed(pipeline, make_package, monkeypatch):
    # _why_unreadable verifies a whole package just to name its refusal: only a package whose
    # 到達番号 cannot be read pays for that, never one on its way to being accepted.
    import gateway.pipeline

    verified = []
    real_verify = gateway.pipeline.verify_package
    monkeypatch.setattr(gateway.pipeline, "verify_package", lambda *a, **k: verified.append(1) or real_verify(*a, **k))
    monkeypatch.setattr(Pipeline, "_why_unreadable", lambda *_: pytest.fail("an accepted package was diagnosed"))
    assert pipeline.intake(make_package("childcare-01"), source="test").state == "queued"
    assert len(verified) == 1


def test_the_transform_sees_the_validated_context_with_the_address_number(pipeline, make_package, monkeypatch):
    # _process builds the transform's context field by field (cheaper than dataclasses.replace):
    # it must be exactly the validated one with the identity check's 宛名番号 set.
    import dataclasses

    seen = {}
    real_validate, real_transform = Pipeline.validate, Pipeline.transform
    monkeypatch.setattr(Pipeline, "validate", lambda self, *a: seen.setdefault("validated", real_validate(self, *a)))
    monkeypatch.setattr(Pipeline, "transform",
                        lambda self, procedure, context: real_transform(self, procedure, seen.setdefault("context", context)))
    assert pipeline.intake(make_package("childcare-01"), source="test").state == "queued"
    validated, context = seen["validated"], seen["context"]
    procedure = pipeline.procedure_for(validated.package)
    expected = pipeline.identity.identify(validated.package, procedure, validated).address_number
    assert context == dataclasses.replace(validated, address_number=expected)
    assert all(getattr(context, f.name) is getattr(validated, f.name)
               for f in dataclasses.fields(context) if f.name != "address_number")
