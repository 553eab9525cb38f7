"""care-01: 要介護・要支援認定の申請 → ``kaigo-hoken``.

A reference procedure plugin: form schema, business rules (:mod:`.checks`), transform
(:mod:`.target`) and samples (:mod:`.sampledata`). Loaded through the ``gateway.plugins``
entry point ``care_01 = "plugins.care_01"``; see README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import Procedure, hookimpl
from gateway.config import SCHEMAS_DIR

from .checks import CHECKS, FORM_NAMESPACE
from .sampledata import expected_problems, sample, sample_attachments, sample_form, sample_variants
from .target import TARGET, TARGET_SCHEMA, transform

CODE = "care-01"
VERSION = "1"
PLUGIN_VERSION = "1.0.0"

PROCEDURE = Procedure(
    code=CODE,
    version=VERSION,
    title="要介護・要支援認定の申請",
    target=TARGET,
    form_namespace=FORM_NAMESPACE,
    form_schema=SCHEMAS_DIR / "forms" / CODE / VERSION / f"{CODE}.xsd",
    target_schema=TARGET_SCHEMA,
    transform=transform,
    checks=CHECKS,
    # 医療保険の被保険者証の写し is needed for 第2号 only: a check, not listed here.
    required_attachments=(),
    channel="filedrop",
    plugin_version=PLUGIN_VERSION,
    sample=sample,
)


@hookimpl
def register_procedures(config: Mapping[str, Any]) -> list[Procedure]:
    return [PROCEDURE]


__all__ = ["PROCEDURE", "register_procedures", "sample", "sample_form", "sample_attachments", "sample_variants",
           "expected_problems"]
