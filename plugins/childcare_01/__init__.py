"""childcare-01: 児童手当等の受給資格及び児童手当の額についての認定請求 → ``jidou-teate``.

A reference procedure plugin: form schema, business rules (:mod:`.checks`), transform
(:mod:`.target`) and samples (:mod:`.sampledata`). Loaded through the ``gateway.plugins``
entry point ``childcare_01 = "plugins.childcare_01"``; see README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import Procedure, hookimpl
from gateway.config import SCHEMAS_DIR

from .checks import CHECKS, FORM_NAMESPACE
from .sampledata import expected_problems, sample, sample_attachments, sample_form, sample_variants
from .target import TARGET, TARGET_SCHEMA, transform

CODE = "childcare-01"
VERSION = "1"
PLUGIN_VERSION = "1.0.0"

PROCEDURE = Procedure(
    code=CODE,
    version=VERSION,
    title="児童手当等の受給資格及び児童手当の額についての認定請求",
    target=TARGET,
    form_namespace=FORM_NAMESPACE,
    form_schema=SCHEMAS_DIR / "forms" / CODE / VERSION / f"{CODE}.xsd",
    target_schema=TARGET_SCHEMA,
    transform=transform,
    checks=CHECKS,
    # Both attachments are conditional (別居, 厚生年金等): they are checks, not listed here.
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
