"""Frozen value objects that flow through the pipeline and across the plugin boundary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.x509.verification import VerifiedClient
    from lxml import etree

    from gateway.errors import Problem
    from gateway.identity import ApplicantSource


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class Limits:
    """Size limits on an incoming package (``application-package.md``; configurable)."""

    max_package_bytes: int = 10 * 1024 * 1024
    max_uncompressed_bytes: int = 20 * 1024 * 1024
    max_members: int = 20
    max_member_bytes: int = 10 * 1024 * 1024
    max_compression_ratio: int = 200
    """A member that inflates more than this is treated as a compression bomb."""


@dataclass(frozen=True)
class SignaturePolicy:
    """What a procedure demands of signatures. Plugins may tighten, the core never weakens."""

    unsigned_allowed: bool = False
    """Accept a package without ``署名情報`` (then flagged 要本人確認)."""
    max_signatures: int = 1
    """More than one only where co-signatures (代理人 and 本人) are allowed."""


# --------------------------------------------------------------------------- the package


@dataclass(frozen=True)
class Applicant:
    """申請者情報 from the manifest."""

    name: str
    name_kana: str = ""
    postal_code: str = ""
    address: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True)
class AttachmentInfo:
    """One 添付書類属性情報 entry."""

    title: str
    filename: str
    media_type: str


@dataclass(frozen=True)
class Manifest:
    """The signed 構成情報 of ``kousei.xml``."""

    arrival_number: str
    procedure_code: str
    municipality_code: str
    application_kind: str
    """新規申請 | 再提出 | 取下げ"""
    original_arrival_number: str
    applied_at: dt.datetime | None
    applicant: Applicant
    form_id: str
    form_version: str
    form_filename: str
    attachments: tuple[AttachmentInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the gateway recorded about the signer's certificate."""

    subject: str
    issuer: str
    serial_number: int
    not_before: dt.datetime
    not_after: dt.datetime
    der: bytes = field(repr=False)
    anchor_fingerprint: str = ""
    """SHA-256 of the pinned root that issued it."""
    policy_oids: tuple[str, ...] = ()
    test_root: bool = False
    issuer_key_id: bytes = b""
    """subjectKeyIdentifier of the pinned root whose key signed it (roots share one DN): with the
    serial number, what identifies the certificate for revocation and the 宛名番号 table."""
    issuer_certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)
    """That pinned root itself (the path validation chose it by signature)."""
    crl_distribution_points: x509.CRLDistributionPoints | None = field(default=None, repr=False, compare=False)
    """The certificate's CRL distribution points as path validation read them (revocation uses
    them without parsing the certificate's extensions again); empty when it has none, None when
    not recorded (revocation then reads the certificate)."""
    verified_client: VerifiedClient | None = field(default=None, repr=False, compare=False)
    """What path validation returned: ``subjects``, the certificate's subjectAltName entries as the
    library decoded them (the basic facts are among them; None without the extension), and
    ``chain``. None when not recorded (the basic facts are then read from :attr:`der`)."""


@dataclass(frozen=True)
class VerifiedPackage:
    """The only view of a package that flows downstream of verification.

    Everything here is covered by the signature (or, for an unsigned package the procedure
    allowed, flagged ``identity_unverified``). Downstream code never reads the raw ZIP.
    """

    manifest: Manifest
    form_xml: bytes = field(repr=False)
    """Exact bytes of the form member whose digest the signature covers."""
    attachments: Mapping[str, bytes] = field(repr=False, default_factory=dict)
    signer: CertificateInfo | None = None
    """The applicant's certificate: the first ds:Signature's."""
    signed: bool = True
    flags: tuple[str, ...] = ()
    """Flags for staff, e.g. ``要本人確認``."""
    evidence: Mapping[str, object] = field(default_factory=dict)
    """Signature and certificate evidence to store with the application."""
    co_signers: tuple[CertificateInfo, ...] = ()
    """The co-signers' certificates (代理人 and 本人), in signature order, where the procedure's
    ``SignaturePolicy.max_signatures`` allows more than one signature."""


# --------------------------------------------------------------------------- procedures


@dataclass(frozen=True)
class FormContext:
    """What a procedure's checks and transform see: the verified package and its parsed form."""

    package: VerifiedPackage
    form: "etree._Element"
    settings: Mapping[str, object] = field(default_factory=dict)
    """The procedure's own configuration (``PROCEDURES.<code>`` in the gateway config)."""
    address_number: str | None = field(default=None, repr=False)
    """The signer's 宛名番号 from the municipality's table (None: not found or no table)."""


@dataclass(frozen=True)
class TargetRecord:
    """A transformed record ready for a core system."""

    content: bytes = field(repr=False)
    media_type: str
    filename: str
    target: str
    schema: Path | None = None


@dataclass(frozen=True)
class Sample:
    """A sample application a procedure ships, for ``gateway sample``, the demo and tests."""

    form_xml: bytes = field(repr=False)
    attachments: Mapping[str, tuple[str, str, bytes]] = field(repr=False, default_factory=dict)
    """file name -> (添付書類名称, media type, bytes)"""


Check = Callable[[FormContext], Iterable["Problem"]]
Transform = Callable[[FormContext], TargetRecord]


@dataclass(frozen=True)
class Procedure:
    """One national procedure as a plugin provides it (``register_procedures``)."""

    code: str
    """Stable identifier, e.g. ``childcare-01``: the manifest's 手続ID."""
    version: str
    """Form schema version, the manifest's 申請書様式バージョン."""
    title: str
    target: str
    """Target core system, e.g. ``jidou-teate``."""
    form_namespace: str
    form_schema: Path
    transform: Transform
    target_schema: Path | None = None
    checks: tuple[Check, ...] = ()
    signature_policy: SignaturePolicy = SignaturePolicy()
    channel: str = "filedrop"
    """Default delivery channel; a municipality may route elsewhere in configuration."""
    required_attachments: tuple[str, ...] = ()
    """添付書類名称 that must always be present (conditional ones are checks)."""
    plugin_version: str = "0"
    sample: Callable[[str], Sample] | None = None
    """Returns a sample by variant name (``"valid"`` at least), for ``gateway sample``."""
    applicant_fields: ApplicantSource | None = None
    """Where the form holds the signer's own 基本4情報, compared with the certificate
    (:class:`gateway.identity.ApplicantFields`, or a function of the parsed form); None compares
    the manifest's 申請者情報 only."""


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Delivery:
    """One unit of work for a channel."""

    arrival_number: str
    procedure_code: str
    target: str
    record: TargetRecord
    attempt: int = 1
    options: Mapping[str, object] = field(default_factory=dict)
    """Per-route channel options from configuration (folder, endpoint, ...)."""


@dataclass(frozen=True)
class DeliveryReceipt:
    """The core system's (or channel's) acknowledgement."""

    receipt_id: str
    channel: str
    detail: str = ""


class Channel(Protocol):
    """A named way of handing a record to a core system (``register_channels``)."""

    name: str

    def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        """Deliver idempotently: a retry of the same delivery must not duplicate it.

        Raise :class:`gateway.errors.DeliveryError` on failure (``permanent=True`` to stop
        retrying).
        """
        ...


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Receipt:
    """What the intake answers: the application's arrival number and state."""

    arrival_number: str
    state: str
    procedure_code: str
    received_at: dt.datetime
    replay: bool = False
    flags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "到達番号": self.arrival_number,
            "arrival_number": self.arrival_number,
            "state": self.state,
            "procedure": self.procedure_code,
            "received_at": self.received_at.isoformat(),
            "flags": list(self.flags),
        }
