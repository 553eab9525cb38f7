"""Turning verified values into application fields for :meth:`Store.transition`."""

from __future__ import annotations

from typing import Any

from gateway.models import CertificateInfo, Manifest


def manifest_fields(manifest: Manifest, *, procedure_version: str | None = None) -> dict[str, Any]:
    """The manifest's management data as ``transition(..., **fields)`` keywords.

    Only what the signature covered should be passed: call this with the verified manifest.
    """
    return {
        "procedure_code": manifest.procedure_code,
        "procedure_version": procedure_version or manifest.form_version,
        "municipality_code": manifest.municipality_code,
        "application_kind": manifest.application_kind,
        "original_arrival_number": manifest.original_arrival_number or None,
        "applied_at": manifest.applied_at,
    }


def signer_summary(cert: CertificateInfo | None) -> dict[str, Any] | None:
    """What the application row keeps about the signer: enough to find the certificate.

    The subject (name, address, ...) stays in the evidence, not in this summary.
    """
    if cert is None:
        return None
    return {
        "serial_number": format(cert.serial_number, "x"),
        "issuer": cert.issuer,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "anchor_fingerprint": cert.anchor_fingerprint,
        "policy_oids": list(cert.policy_oids),
        "test_root": cert.test_root,
    }
