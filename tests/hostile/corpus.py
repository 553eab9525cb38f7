"""The hostile corpus: every attack as a named package and the stable code the gateway must answer.

One row per case: ``Case(id, builder, expected code, ...)``. The HTTP status comes from
``docs/error-codes.md`` (``revocation-unknown`` is 202: stored as ``verification_deferred``).
``depends`` marks cases whose expected answer needs work still in progress ("trust": the
certificate profile and path validation; "revocation": CRLs). They run like every other case
and fail until that work lands — nothing here is skipped or xfailed.

Packages are made in the tests from the session test PKI (``tests/hostile/kit.py``); the
numbers in comments refer to the catalogue in ``security.md`` §8.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from tests.hostile import archive_cases as z
from tests.hostile import certs as c
from tests.hostile import parser_cases as p
from tests.hostile import signature_cases as s
from tests.hostile import signedinfo_cases as r
from tests.hostile.kit import Kit

Builder = Callable[[Kit], bytes]
ERROR_CODES = Path(__file__).resolve().parents[2] / "docs" / "error-codes.md"
DEFERRED = "revocation-unknown"
_SI = "//ds:SignedInfo"
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
TRUST = {"depends": "trust"}
REVOCATION = {"depends": "revocation"}
BOMB = {"bomb": True}


@dataclass(frozen=True)
class Case:
    id: str
    build: Builder
    code: str
    """The expected problem ``code`` (or ``revocation-unknown`` for a deferred package)."""
    family: str
    depends: str = ""
    """"trust" or "revocation": the expected answer needs that work in progress."""
    app: str = "default"
    """The gateway configuration: "default" (test roots allowed, CRLs present) or "production"."""
    content_type: str = "application/zip"
    bomb: bool = False
    """Memory is measured (tracemalloc peak and RSS high-water mark) and bounded."""


def _cases(family: str, rows: list[tuple]) -> list[Case]:
    """Rows are ``(id, builder, code)`` or ``(id, builder, code, {other Case fields})``."""
    return [Case(case_id, build, code, family, **(options[0] if options else {}))
            for case_id, build, code, *options in rows]


TAMPER = _cases("tamper", [  # cases 2-3
    ("form-one-digit", s.tamper_form_digit, "signature-digest-mismatch"),
    ("form-bytes-appended", s.tamper_form_appended, "signature-digest-mismatch"),
    ("attachment-bit-flip", s.tamper_attachment_bit, "signature-digest-mismatch"),
    ("attachment-truncated", s.tamper_attachment_truncated, "signature-digest-mismatch"),
    ("manifest-applicant-name", s.tamper_manifest_name, "signature-digest-mismatch"),
    ("manifest-procedure", s.tamper_manifest_procedure, "signature-digest-mismatch"),
    ("manifest-media-type", s.tamper_manifest_media_type, "signature-digest-mismatch"),
    ("signature-value-bit-flip", s.tamper_signature_value, "signature-invalid"),
    ("signature-value-truncated", s.tamper_signature_value_truncated, "signature-invalid"),
    ("signed-info-digest-changed", s.tamper_signed_info_digest, "signature-invalid"),
    ("certificate-swapped", s.tamper_certificate_swapped, "signature-invalid"),
])

WRAPPING = _cases("wrapping", [  # cases 4-17
    ("duplicate-id-Id", s.xsw_duplicate_Id, "signature-wrapping"),
    ("duplicate-id-id", s.xsw_duplicate_id, "signature-wrapping"),
    ("duplicate-id-xml-id", s.xsw_duplicate_xml_id, "signature-wrapping"),
    ("duplicate-id-foreign-ns", s.xsw_duplicate_foreign_ID, "signature-wrapping"),
    ("xsw3-second-manifest-first", s.xsw_second_manifest_first, "signature-wrapping"),
    ("second-manifest-same-id", s.xsw_second_manifest_same_id, "signature-wrapping"),
    ("xsw4-manifest-wrapped", s.xsw_manifest_wrapped, "signature-wrapping"),
    ("xsw5-original-renamed", s.xsw_original_renamed, "signature-wrapping"),
    ("xsw8-pristine-in-object", s.xsw_pristine_in_object, "signature-wrapping"),
    ("ds-object-resigned", s.xsw_object_resigned, "signature-structure"),
    ("ds-manifest-resigned", s.xsw_ds_manifest_resigned, "signature-structure"),
    ("second-signature", s.xsw_second_signature, "signature-multiple"),
    ("second-signature-holder", s.xsw_second_signature_holder, "signature-multiple"),
    ("signature-moved-out", s.xsw_signature_moved_out, "signature-wrapping"),
    ("signature-in-manifest", s.xsw_signature_in_manifest, "signature-wrapping"),
    ("holder-before-manifest", s.xsw_holder_before_manifest, "signature-wrapping"),
    ("signature-stripped", s.signature_removed, "signature-missing"),
    ("unsigned", s.unsigned_package, "signature-missing"),
])

REFERENCES = _cases("references", [  # cases 17-20, 64
    ("reference-http", r.extra_reference(lambda kit: f"{kit.external}/x"), "signature-reference-unexpected"),
    ("reference-file", r.extra_reference(lambda kit: kit.secret_file), "signature-reference-unexpected"),
    ("reference-xpointer", r.extra_reference(lambda kit: "#xpointer(/)"), "signature-reference-unexpected"),
    ("reference-empty", r.extra_reference(lambda kit: ""), "signature-reference-unexpected"),
    ("reference-no-uri", r.extra_reference(lambda kit: None), "signature-reference-unexpected"),
    ("reference-other-fragment", r.extra_reference(lambda kit: "#other"), "signature-reference-unexpected"),
    ("reference-dot-dot", r.extra_reference(lambda kit: "../kousei.xml"), "signature-reference-unexpected"),
    ("reference-to-kousei", r.extra_reference(lambda kit: "kousei.xml"), "signature-reference-unexpected"),
    ("reference-duplicate-member", r.extra_reference(lambda kit: "childcare-01.xml"),
     "signature-reference-unexpected"),
    ("reference-manifest-dropped", r.reference_dropped(0), "signature-reference-missing"),
    ("reference-member-dropped", r.reference_dropped(-1), "signature-reference-missing"),
    ("unreferenced-member", r.unreferenced_member, "signature-reference-missing"),
    ("referenced-member-missing", r.referenced_member_missing, "signature-reference-unexpected"),
    ("member-signed-not-listed", r.member_unlisted_but_signed, "package-manifest-unlisted-member"),
    ("member-listed-not-present", r.member_listed_not_present, "package-manifest-missing-member"),
])

TRANSFORMS = _cases("transforms", [  # case 21
    ("transform-xslt-reading-files", r.xslt_reading_files, "algorithm-transform-forbidden"),
    ("transform-xpath", r.xpath_transform_expression, "algorithm-transform-forbidden"),
    ("transform-xpath-filter2", r.transform("http://www.w3.org/2002/06/xmldsig-filter2"),
     "algorithm-transform-forbidden"),
    ("transform-enveloped", r.transform(_DSIG + "enveloped-signature"), "algorithm-transform-forbidden"),
    ("transform-base64", r.transform(_DSIG + "base64"), "algorithm-transform-forbidden"),
    ("transform-unknown", r.transform("urn:attacker:transform"), "algorithm-transform-forbidden"),
    ("transform-c14n-with-comments", r.transform("http://www.w3.org/2001/10/xml-exc-c14n#WithComments"),
     "algorithm-transform-forbidden"),
    ("transform-c14n11", r.transform("http://www.w3.org/2006/12/xml-c14n11"), "algorithm-transform-forbidden"),
    ("transform-on-member", r.transform_on_member, "algorithm-transform-forbidden"),
])

ALGORITHMS = _cases("algorithms", [  # cases 28-30
    ("signature-rsa-sha1-resigned", r.algorithm(f"{_SI}/ds:SignatureMethod", _DSIG + "rsa-sha1", resign=True),
     "algorithm-forbidden"),
    ("signature-rsa-md5", r.algorithm(f"{_SI}/ds:SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"),
     "algorithm-forbidden"),
    ("signature-hmac-sha256", r.algorithm(f"{_SI}/ds:SignatureMethod",
                                          "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"), "algorithm-forbidden"),
    ("signature-hmac-output-length", r.hmac_output_length, "algorithm-forbidden"),
    ("signature-unknown-method", r.algorithm(f"{_SI}/ds:SignatureMethod", "urn:attacker:none"), "algorithm-forbidden"),
    ("digest-sha1-resigned", r.algorithm("//ds:DigestMethod", _DSIG + "sha1", 1, resign=True), "algorithm-forbidden"),
    ("digest-md5", r.algorithm("//ds:DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5"),
     "algorithm-forbidden"),
    ("c14n-with-comments", r.algorithm(f"{_SI}/ds:CanonicalizationMethod",
                                       "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"), "algorithm-forbidden"),
])

KEY_INFO = _cases("keyinfo", [  # cases 31-32, 55
    ("keyvalue-next-to-x509data", r.key_value_next_to_x509, "signature-keyinfo-forbidden"),
    ("keyvalue-only-attacker-key", r.key_value_only, "signature-keyinfo-forbidden"),
    ("retrieval-method", r.retrieval_method, "signature-keyinfo-forbidden"),
    ("issuer-serial-mismatch", r.issuer_serial_mismatch, "signature-keyinfo-forbidden"),
    ("two-certificates", r.two_certificates, "certificate-multiple"),
    ("no-certificate", r.no_certificate, "certificate-missing"),
    ("garbage-certificate", r.garbage_certificate, "certificate-malformed"),
])

PARSER = _cases("parser", [  # cases 33-45, in kousei.xml (before verification) and in a signed form
    *((f"kousei-{name}", p.kousei_doctype(name), code) for name, code in (
        ("dtd-internal", "xml-dtd-forbidden"), ("billion-laughs", "xml-entity-forbidden"),
        ("quadratic-blowup", "xml-entity-forbidden"), ("xxe-file", "xml-entity-forbidden"),
        ("xxe-http", "xml-entity-forbidden"), ("parameter-entity-oob", "xml-entity-forbidden"),
        ("external-dtd", "xml-dtd-forbidden"), ("attlist-default-id", "xml-dtd-forbidden"),
        ("entity-valued-id", "xml-entity-forbidden"), ("doctype-differential", "xml-dtd-forbidden"))),
    ("kousei-undeclared-entity", p.kousei_undeclared_entity, "xml-entity-forbidden"),
    ("kousei-deep-nesting", p.kousei_deep_nesting, "xml-too-deep"),
    ("kousei-utf16", p.kousei_utf16, "xml-encoding"),
    ("kousei-shift-jis", p.kousei_shift_jis, "xml-encoding"),
    ("kousei-processing-instruction", p.kousei_processing_instruction, "xml-pi-forbidden"),
    ("kousei-truncated", p.kousei_malformed, "xml-malformed"),
    *((f"form-{name}", p.form_doctype(name), code) for name, code in (
        ("billion-laughs", "xml-entity-forbidden"), ("quadratic-blowup", "xml-entity-forbidden"),
        ("xxe-file", "xml-entity-forbidden"), ("xxe-http", "xml-entity-forbidden"),
        ("parameter-entity-oob", "xml-entity-forbidden"), ("external-dtd", "xml-dtd-forbidden"))),
    ("form-xinclude", p.form_xinclude, "schema-invalid"),
    ("form-deep-nesting", p.form_deep_nesting, "xml-too-deep"),
    ("form-huge-text-node", p.form_huge_text, "xml-too-large", BOMB),
    ("form-huge-attribute", p.form_huge_attribute, "xml-too-large", BOMB),
    ("form-huge-name", p.form_huge_name, "xml-too-large"),
    ("form-attribute-flood", p.form_attribute_flood, "schema-invalid"),
    ("form-latin1", p.form_latin1, "xml-encoding"),
    ("form-invalid-utf8", p.form_invalid_utf8, "xml-encoding"),
    ("form-processing-instruction", p.form_processing_instruction, "xml-pi-forbidden"),
    ("form-two-roots", p.form_two_roots, "xml-malformed"),
])

ARCHIVE = _cases("archive", [  # cases 58-62, 64
    ("zip-slip", z.zip_slip, "package-path"),
    ("zip-absolute-name", z.zip_absolute_name, "package-path"),
    ("zip-backslash-slip", z.zip_backslash_slip, "package-path"),
    ("zip-drive-letter", z.zip_drive_letter, "package-path"),
    ("zip-directory-entry", z.zip_directory_entry, "package-path"),
    ("zip-symlink", z.zip_symlink, "package-symlink"),
    ("zip-duplicate-form", z.zip_duplicate_form, "package-duplicate-name"),
    ("zip-duplicate-manifest", z.zip_duplicate_manifest, "package-duplicate-name"),
    ("zip-nested-zip", z.zip_nested_zip, "package-nested-archive"),
    ("zip-nested-gzip", z.zip_nested_gzip, "package-nested-archive"),
    ("zip-ratio-bomb", z.zip_ratio_bomb, "package-bomb", BOMB),
    ("zip-1gib-bomb-honest-header", z.zip_gib_bomb_honest, "package-member-too-large", BOMB),
    ("zip-1gib-bomb-lying-header", z.zip_gib_bomb_lying, "package-corrupt", BOMB),
    ("zip-total-over-limit", z.zip_total_size, "package-too-large", BOMB),
    ("zip-overlapping-entries", z.zip_overlapping_entries, "package-overlapping-entries"),
    ("zip-encrypted-member", z.zip_encrypted_member, "package-encrypted"),
    ("zip-10000-entries", z.zip_too_many_entries, "package-too-many-members", BOMB),
    ("zip-header-mismatch", z.zip_header_mismatch, "package-header-mismatch"),
    ("zip-bzip2", z.zip_bzip2, "package-compression"),
    ("zip-unsupported-version", z.zip_unsupported_version, "package-not-zip"),  # found by fuzz/harness.py
    ("zip-truncated", z.zip_truncated, "package-not-zip"),
    ("zip-corrupt-member", z.zip_corrupt_member, "package-corrupt"),
    ("zip-shift-jis-name", z.zip_sjis_name, "package-filename-encoding"),
    ("zip-missing-manifest", z.zip_missing_manifest, "package-missing-manifest"),
    ("pdf-in-front-of-zip", z.pdf_before_zip, "package-not-zip"),
    ("not-a-zip", z.not_a_zip, "package-not-zip"),
    ("body-over-10mb", z.oversized_body, "package-too-large", BOMB),
    ("content-type-lie", lambda kit: kit.package(), "package-media-type",
     {"content_type": "application/xml"}),
])

MIME = _cases("mime", [  # case 63
    ("html-declared-pdf", z.attachment(z.HTML), "package-attachment-type"),
    ("exe-declared-pdf", z.attachment(z.EXE), "package-attachment-type"),
    ("png-declared-jpeg", z.attachment(z.PNG, "image/jpeg"), "package-attachment-type"),
    ("media-type-text-html", z.attachment(z.HTML, "text/html"), "package-manifest-invalid"),
    ("media-type-svg", z.attachment(b"<svg onload='alert(1)'/>", "image/svg+xml"), "package-manifest-invalid"),
    ("polyglot-pdf-zip", z.polyglot(z.PDF, "application/pdf"), "package-attachment-type"),
    ("polyglot-jpeg-zip", z.polyglot(z.JPEG, "image/jpeg"), "package-attachment-type"),
    ("polyglot-png-zip", z.polyglot(z.PNG, "image/png"), "package-attachment-type"),
    ("polyglot-pdf-zip-hidden-trailer", z.polyglot_hidden_trailer, "package-attachment-type"),
])

CERTIFICATES = _cases("certificates", [  # cases 47-54
    ("cert-expired", c.resident_signs("ito-kenji"), "certificate-expired"),
    ("cert-not-yet-valid", c.signs_with(lambda pki: c.leaf(pki, "future", not_before=c.now() + c.DAY)),
     "certificate-not-yet-valid"),
    ("cert-revoked", c.resident_signs("sato-ichiro"), "revocation-revoked", REVOCATION),
    ("crl-stale", c.signs_with(lambda pki: c.leaf(pki, "stale", municipality=c.STALE_CITY)), DEFERRED, REVOCATION),
    ("crl-bad-signature", c.signs_with(lambda pki: c.leaf(pki, "badcrl", municipality=c.BAD_SIGNATURE_CITY)),
     DEFERRED, REVOCATION),
    ("crl-missing", c.signs_with(lambda pki: c.leaf(pki, "nocrl", municipality=c.NO_CRL_CITY)), DEFERRED, REVOCATION),
    ("attacker-root-same-dn", c.signs_with(lambda pki: c.attacker_leaf(pki, forge_key_id=False)),
     "certificate-untrusted", TRUST),
    ("attacker-root-same-dn-and-key-id", c.signs_with(lambda pki: c.attacker_leaf(pki, forge_key_id=True)),
     "certificate-untrusted", TRUST),
    ("self-signed-leaf", c.signs_with(lambda pki: c.self_signed_leaf()), "certificate-untrusted", TRUST),
    ("pinned-root-as-signer", c.root_signs, "certificate-untrusted", TRUST),
    ("weak-key-rsa-1024", c.signs_with(lambda pki: c.leaf(pki, "weak", bits=1024)), "certificate-weak-key", TRUST),
    ("sha1-certificate", c.signs_with(lambda pki: c.sha1_leaf(pki, "sha1")), "certificate-weak-algorithm", TRUST),
    ("key-usage-no-non-repudiation", c.signs_with(lambda pki: c.custom_leaf(
        pki, "ku-ds", key_usage=x509.KeyUsage(True, False, False, False, False, False, False, False, False))),
     "certificate-key-usage", TRUST),
    ("key-usage-not-critical", c.signs_with(lambda pki: c.custom_leaf(pki, "ku-nc", key_usage_critical=False)),
     "certificate-key-usage", TRUST),
    ("leaf-is-a-ca", c.signs_with(lambda pki: c.custom_leaf(pki, "ca", ca=True)), "certificate-not-end-entity", TRUST),
    ("unknown-critical-extension", c.signs_with(lambda pki: c.custom_leaf(pki, "crit", critical_unknown=True)),
     "certificate-critical-extension", TRUST),
    # an iPAddress of 3 bytes: the library cannot turn it into Python (it raised ValueError, a 500)
    ("undecodable-subject-alt-name", c.signs_with(lambda pki: c.custom_leaf(
        pki, "san", raw_subject_alt_name=bytes.fromhex("30058703010203"))), "certificate-malformed", TRUST),
    ("production-policy-under-test-root", c.signs_with(lambda pki: c.leaf(
        pki, "prodpolicy", policy=c.POLICY_SIGNING_PRODUCTION)), "certificate-policy", TRUST),
    ("authentication-certificate", c.resident_signs("watanabe-kumiko"), "certificate-authentication-cert", TRUST),
    ("test-root-not-allowed", lambda kit: kit.package(), "certificate-test-root",
     {**TRUST, "app": "production"}),
])

CASES: tuple[Case, ...] = (*TAMPER, *WRAPPING, *REFERENCES, *TRANSFORMS, *ALGORITHMS, *KEY_INFO, *PARSER,
                           *ARCHIVE, *MIME, *CERTIFICATES)
BY_ID = {case.id: case for case in CASES}


def documented_statuses() -> dict[str, int | None]:
    """``code -> HTTP status`` from the table in docs/error-codes.md (None where it says — or "in errors")."""
    table = re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+) \|", ERROR_CODES.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {code: int(status) if status.strip().isdigit() else None for code, status in table}
