"""care-01: 要介護・要支援認定の申請 → ``kaigo-hoken``.

A reference procedure plugin laid out as childcare-01 (see README.md); loaded through the
``gateway.plugins`` entry point ``care_01 = "plugins.care_01"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree

from gateway import ApplicantFields, DeclaredFacts, Procedure, hookimpl
from gateway.config import SCHEMAS_DIR

from .checks import CHECKS, FORM_NAMESPACE
from .sampledata import SAMPLES
from .target import TARGET, TARGET_SCHEMA, transform

_INSURED = ApplicantFields(name="f:被保険者/f:氏名", sex="f:被保険者/f:性別", birth="f:被保険者/f:生年月日",
                           address="f:被保険者/f:住所")
_FAMILY = ApplicantFields(name="f:申請者/f:氏名", address="f:申請者/f:住所")


def signer_facts(form: etree._Element) -> DeclaredFacts | None:
    """Who signs: the insured person, or the family member named in 申請者 (本人との関係 not 本人),
    whose form gives only 氏名 and 住所. (A 提出代行者 signing is not told apart yet.)"""
    relation = (form.findtext("f:申請者/f:本人との関係", namespaces={"f": FORM_NAMESPACE}) or "").strip()
    return (_FAMILY if relation not in ("", "本人") else _INSURED).extract(form)


PROCEDURE = Procedure(
    code="care-01",
    version="1",
    title="要介護・要支援認定の申請",
    target=TARGET,
    form_namespace=FORM_NAMESPACE,
    form_schema=SCHEMAS_DIR / "forms" / "care-01" / "1" / "care-01.xsd",
    target_schema=TARGET_SCHEMA,
    transform=transform,
    checks=CHECKS,
    # 医療保険の被保険者証の写し is needed for 第2号 only: a check, not listed here.
    required_attachments=(),
    plugin_version="1.0.0",
    sample=SAMPLES.sample,
    applicant_fields=signer_facts,
)


@hookimpl
def register_procedures(config: Mapping[str, Any]) -> list[Procedure]:
    return [PROCEDURE]


sample, sample_form, sample_attachments = SAMPLES.sample, SAMPLES.form, SAMPLES.attachments
sample_variants, expected_problems = SAMPLES.variants, SAMPLES.expected_problems
