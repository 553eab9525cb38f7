"""childcare-01: 児童手当等の受給資格及び児童手当の額についての認定請求 → ``jidou-teate``.

A reference procedure plugin: form schema, business rules (:mod:`.checks`), transform
(:mod:`.target`) and samples (:mod:`.sampledata`). Loaded through the ``gateway.plugins``
entry point ``childcare_01 = "plugins.childcare_01"``; see README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import ApplicantFields, Procedure, hookimpl
from gateway.config import SCHEMAS_DIR

from .checks import CHECKS, FORM_NAMESPACE
from .sampledata import SAMPLES
from .target import TARGET, TARGET_SCHEMA, transform

PROCEDURE = Procedure(
    code="childcare-01",
    version="1",
    title="児童手当等の受給資格及び児童手当の額についての認定請求",
    target=TARGET,
    form_namespace=FORM_NAMESPACE,
    form_schema=SCHEMAS_DIR / "forms" / "childcare-01" / "1" / "childcare-01.xsd",
    target_schema=TARGET_SCHEMA,
    transform=transform,
    checks=CHECKS,
    # Both attachments are conditional (別居, 厚生年金等): they are checks, not listed here.
    required_attachments=(),
    channel="filedrop",
    plugin_version="1.0.0",
    sample=SAMPLES.sample,
    # The 請求者 signs: their 基本4情報 are compared with the signing certificate's.
    applicant_fields=ApplicantFields(name="f:請求者/f:氏名", sex="f:請求者/f:性別",
                                     birth="f:請求者/f:生年月日", address="f:請求者/f:住所"),
)


@hookimpl
def register_procedures(config: Mapping[str, Any]) -> list[Procedure]:
    return [PROCEDURE]


# Shortcuts to the samples, for tools and tests that import the plugin.
sample, sample_form, sample_attachments = SAMPLES.sample, SAMPLES.form, SAMPLES.attachments
sample_variants, expected_problems = SAMPLES.variants, SAMPLES.expected_problems
