"""What every procedure plugin's tests check, in one place.

A procedure's test file parametrises over its own samples and calls these helpers, then adds
the tests that are the procedure's own (its record in detail, its rules at their edges)::

    @pytest.mark.parametrize("variant", SAMPLES.variants())
    def test_sample_does_what_its_name_says(variant: str) -> None:
        assert_sample(PROCEDURE, SAMPLES, variant)

Everything is real: the form is parsed with the gateway's hardened parser, validated against
the procedure's schema, checked with its rules, and the record validated against its target
schema.
"""

from __future__ import annotations

import datetime as dt
import timeit
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import ModuleType

from gateway.errors import Problem, SchemaError
from gateway.models import Applicant, AttachmentInfo, FormContext, Manifest, Procedure, TargetRecord, VerifiedPackage
from gateway.plugins import make_plugin_manager
from gateway.sampleset import SampleSet
from gateway.validation import run_checks, validate_form, validate_target
from gateway.xmlsafe import parse_xml

JST = dt.timezone(dt.timedelta(hours=9))
APPLIED_AT = dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST)
ARRIVAL_NUMBER = "202611280000012345"

Attachments = Mapping[str, tuple[str, str, bytes]]
"""As in :class:`gateway.models.Sample`: file name -> (添付書類名称, media type, bytes)."""


def valid_variants(samples: SampleSet) -> list[str]:
    return [v for v in samples.variants() if v.startswith("valid")]


def invalid_variants(samples: SampleSet) -> list[str]:
    return [v for v in samples.variants() if v.startswith("invalid")]


def context_for(procedure: Procedure, form_xml: bytes, attachments: Attachments = {},
                settings: Mapping[str, object] = {}, *, signed: bool = True) -> FormContext:
    """The context the pipeline would hand the procedure for this form (a 新規申請 of today)."""
    manifest = Manifest(
        arrival_number=ARRIVAL_NUMBER, procedure_code=procedure.code, municipality_code="131016",
        application_kind="新規申請", original_arrival_number="", applied_at=APPLIED_AT,
        applicant=Applicant(name="見本　太郎"), form_id=procedure.code, form_version=procedure.version,
        form_filename=f"{procedure.code}.xml",
        attachments=tuple(AttachmentInfo(title, name, media) for name, (title, media, _) in attachments.items()))
    package = VerifiedPackage(manifest=manifest, form_xml=form_xml, signed=signed,
                              attachments={name: data for name, (_, _, data) in attachments.items()})
    return FormContext(package=package, form=parse_xml(form_xml, what=f"{procedure.code}.xml"), settings=settings)


def problems_for(procedure: Procedure, form_xml: bytes, attachments: Attachments = {},
                 settings: Mapping[str, object] = {}) -> list[Problem]:
    """Schema problems if the schema fails (as the pipeline stops there), else rule problems."""
    context = context_for(procedure, form_xml, attachments, settings)
    try:
        validate_form(procedure, form_xml, context.form)
    except SchemaError as err:
        return list(err.problems)
    return run_checks(procedure, context)


# --------------------------------------------------------------------------- the samples


def assert_samples_complete(samples: SampleSet) -> None:
    """Enough samples of both kinds; ``valid`` is the default; expectations and attachments fit."""
    valid, invalid = valid_variants(samples), invalid_variants(samples)
    assert len(valid) >= 2 and len(invalid) >= 5
    assert samples.form() == samples.form(samples.default_variant)
    assert samples.default_variant in valid
    for variant in valid:
        assert not (samples.samples_dir / f"{variant}.expected.json").exists(), variant
    for variant in invalid:
        assert samples.expected_problems(variant), f"{variant} has no expected problems"
    assert set(samples.declared_attachments) <= set(samples.variants()), "attachments for a missing sample"


def assert_sample(procedure: Procedure, samples: SampleSet, variant: str) -> None:
    """A ``valid-*`` sample goes through (:func:`assert_valid_sample`); an ``invalid-*`` one
    yields exactly its expected problems (:func:`assert_invalid_sample`)."""
    if variant.startswith("valid"):
        assert_valid_sample(procedure, samples, variant)
    else:
        assert variant.startswith("invalid"), f"a sample is named valid-* or invalid-*, not {variant}"
        assert_invalid_sample(procedure, samples, variant)


def assert_valid_sample(procedure: Procedure, samples: SampleSet, variant: str) -> TargetRecord:
    """The sample passes schema and rules, and its record is named as delivered and schema-valid."""
    sample = samples.sample(variant)
    context = context_for(procedure, sample.form_xml, sample.attachments)
    validate_form(procedure, sample.form_xml, context.form)
    assert run_checks(procedure, context) == []
    record = procedure.transform(context)
    assert isinstance(record, TargetRecord)
    assert (record.target, record.media_type, record.filename) == (
        procedure.target, "application/xml", f"{ARRIVAL_NUMBER}_{procedure.code}.xml")
    assert record.schema == procedure.target_schema and record.schema.is_file()
    assert record.content.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    validate_target(record)
    return record


def assert_invalid_sample(procedure: Procedure, samples: SampleSet, variant: str) -> None:
    """The sample yields exactly its expected problems, located, in Japanese."""
    sample = samples.sample(variant)
    found = problems_for(procedure, sample.form_xml, sample.attachments)
    expected = samples.expected_problems(variant)
    assert expected, f"{variant} has no expected problems"
    assert sorted((p.code, p.path) for p in found) == sorted((e["code"], e["path"]) for e in expected)
    for problem in found:
        assert isinstance(problem.line, int) and problem.line > 0
        assert problem.message and not problem.message.isascii()


def assert_transform_is_fast(procedure: Procedure, samples: SampleSet) -> None:
    sample = samples.sample()
    context = context_for(procedure, sample.form_xml, sample.attachments)
    per_record = min(timeit.repeat(lambda: procedure.transform(context), number=20, repeat=5)) / 20
    assert per_record < 0.002  # seconds; well under 1 ms measured, generous for a noisy CI machine


# --------------------------------------------------------------------------- registration


def assert_registered(plugin: ModuleType, entry_point: str) -> Procedure:
    """The entry point loads the plugin, whose hook returns exactly its ``PROCEDURE``, complete."""
    (entry,) = [e for e in entry_points(group="gateway.plugins") if e.name == entry_point]
    assert entry.load() is plugin
    pm = make_plugin_manager({"LOAD_ENTRYPOINTS": False}, extra=[plugin])
    (procedures,) = pm.hook.register_procedures(config={})
    (procedure,) = procedures
    assert procedure is plugin.PROCEDURE
    assert procedure.form_schema.is_file() and procedure.target_schema.is_file()
    assert procedure.sample is not None and procedure.sample("valid").form_xml
    return procedure
