"""The four basic facts (基本4情報) of a JPKI signing certificate, read from its subjectAltName.

``jpki-profile.md``: each fact is an ``otherName`` under ``1.2.392.200149.8.5.5`` whose value is
a DER ``UTF8String``:

====  ======================================================================
 .1   氏名 (family and given name separated by a full-width space)
 .2   氏名の代替文字使用位置: one ``0``/``1`` per character of the name
 .3   性別: ``1`` male, ``2`` female, ``3`` unknown
 .4   生年月日 ``EYYYYMMDD``: era code (1 明治 … 5 令和, 0 unknown), then the Western date
 .5   住所, from the prefecture, no postal code
 .6   住所の代替文字使用位置
====  ======================================================================

The facts are personal data: :class:`BasicFacts` never shows them in its ``repr`` and this
module never logs them. The values are kept exactly as the card wrote them (a birth date may
be unknown or not a calendar date, as the resident register allows); comparing them with
what the applicant typed is :mod:`gateway.identity`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509

from gateway.models import CertificateInfo
from gateway.wareki import JapaneseDate, parse_date

JPKI_FACT_ARC = "1.2.392.200149.8.5.5"
OID_NAME, OID_NAME_FLAGS, OID_SEX, OID_BIRTH, OID_ADDRESS, OID_ADDRESS_FLAGS = (
    x509.ObjectIdentifier(f"{JPKI_FACT_ARC}.{n}") for n in range(1, 7))
_FIELDS = {OID_NAME: "name", OID_NAME_FLAGS: "name_substitutes", OID_SEX: "sex", OID_BIRTH: "birth",
           OID_ADDRESS: "address", OID_ADDRESS_FLAGS: "address_substitutes"}
_LABELS = {"name": "氏名", "name_substitutes": "氏名代替文字", "sex": "性別", "birth": "生年月日",
           "address": "住所", "address_substitutes": "住所代替文字"}
_REQUIRED = ("name", "sex", "birth", "address")
SEX_LABELS = {"1": "男", "2": "女", "3": "不明"}
_UTF8STRING = 0x0C


class BasicFactsError(ValueError):
    """The certificate carries no basic facts (``absent``) or carries them malformed."""

    def __init__(self, message: str, *, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


@dataclass(frozen=True, slots=True)
class BasicFacts:
    """基本4情報 and the substitute-character flags, exactly as the certificate holds them."""

    name: str = field(repr=False)
    sex: str = field(repr=False)
    """``1`` male, ``2`` female, ``3`` unknown."""
    birth: str = field(repr=False)
    """``EYYYYMMDD`` as written (era code first); see :attr:`birth_date`."""
    address: str = field(repr=False)
    name_substitutes: str = field(default="", repr=False)
    """``0``/``1`` per character of :attr:`name`; ``""`` when the certificate has no such entry."""
    address_substitutes: str = field(default="", repr=False)

    @property
    def sex_label(self) -> str:
        return SEX_LABELS[self.sex]

    @property
    def birth_date(self) -> JapaneseDate:
        """The parsed birth date; ``value`` is None when unknown, partial or not a calendar date."""
        return parse_date(self.birth)

    @property
    def name_substitute_positions(self) -> tuple[int, ...]:
        """Indexes into :attr:`name` of characters the card replaced by a substitute (代替文字)."""
        return _positions(self.name_substitutes, len(self.name))

    @property
    def address_substitute_positions(self) -> tuple[int, ...]:
        return _positions(self.address_substitutes, len(self.address))

    @property
    def fields_with_substitutes(self) -> tuple[str, ...]:
        """``("氏名", "住所")`` or a part of it: the facts in which the card used 代替文字."""
        return tuple(label for label, text, flags in (("氏名", self.name, self.name_substitutes),
                                                      ("住所", self.address, self.address_substitutes))
                     if "1" in flags[:len(text)])  # as the positions would say, without listing them


def read_basic_facts(cert: x509.Certificate | CertificateInfo | bytes) -> BasicFacts:
    """The basic facts of a signing certificate (an ``x509.Certificate``, its DER, or the
    :class:`~gateway.models.CertificateInfo` verification returned).

    From a ``CertificateInfo`` that path validation filled, the facts are read from the
    subjectAltName entries the library decoded then (it decodes them for every certificate it
    accepts): nothing is parsed again. Otherwise cryptography reads the certificate.

    Other ``otherName`` entries and other name types are ignored (a later card generation may
    add 旧氏 or フリガナ under new arcs).

    :raises BasicFactsError: ``absent=True`` when there is no subjectAltName with the facts
        (e.g. a user-authentication certificate); otherwise undecodable or repeated extensions,
        a malformed or repeated entry, a value that is not a UTF8String, 性別 not 1-3,
        生年月日 not ``EYYYYMMDD``, flags not ``0``/``1``. The message names the field, never
        its value.
    """
    if isinstance(cert, CertificateInfo):
        if cert.verified_client is not None:
            names = cert.verified_client.subjects
            return _facts(None if names is None else _other_names(names))
        cert = cert.der
    if isinstance(cert, bytes):
        try:
            cert = x509.load_der_x509_certificate(cert)
        except ValueError as exc:
            raise BasicFactsError("証明書を解析できません") from exc
    return _facts(_san_entries(cert))


def _facts(entries: list[tuple[str, bytes]] | None) -> BasicFacts:
    if entries is None:
        raise BasicFactsError("subjectAltName（基本4情報）がありません", absent=True)
    values: dict[str, str] = {}
    for key, value in entries:
        if key in values:
            raise BasicFactsError(f"基本4情報の{_LABELS[key]}が複数あります")
        values[key] = _utf8string(value, _LABELS[key])
    if not values:
        raise BasicFactsError("subjectAltName に基本4情報がありません", absent=True)
    missing = [_LABELS[k] for k in _REQUIRED if not values.get(k)]
    if missing:
        raise BasicFactsError(f"基本4情報の{'・'.join(missing)}がありません")
    if values["sex"] not in SEX_LABELS:
        raise BasicFactsError("基本4情報の性別が 1・2・3 のいずれでもありません")
    birth = values["birth"]
    if not (len(birth) == 9 and birth.isascii() and birth.isdigit() and birth[0] in "012345"):
        raise BasicFactsError("基本4情報の生年月日が EYYYYMMDD（元号コード＋西暦8桁）ではありません")
    for key in ("name_substitutes", "address_substitutes"):
        if values.get(key, "").strip("01"):
            raise BasicFactsError(f"基本4情報の{_LABELS[key]}フラグが 0/1 の並びではありません")
    return BasicFacts(**values)


def _san_entries(cert: x509.Certificate) -> list[tuple[str, bytes]] | None:
    """(field, DER value) of each fact in the subjectAltName, as cryptography reads it; None: no SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:  # undecodable, repeated
        raise BasicFactsError("証明書の拡張を解析できません") from exc
    return _other_names(san)


def _other_names(names: Iterable[x509.GeneralName]) -> list[tuple[str, bytes]]:
    """(field, DER value) of each fact among decoded subjectAltName entries, in their order."""
    return [(key, name.value) for name in names
            if isinstance(name, x509.OtherName) and (key := _FIELDS.get(name.type_id)) is not None]


def _positions(flags: str, length: int) -> tuple[int, ...]:
    # A flag string longer than its value flags nothing beyond the value's end.
    return tuple(i for i, flag in enumerate(flags[:length]) if flag == "1")


def _utf8string(der: bytes, label: str) -> str:
    """Decode one DER UTF8String TLV exactly (no trailing bytes, minimal length)."""
    if len(der) < 2 or der[0] != _UTF8STRING:
        raise BasicFactsError(f"基本4情報の{label}が UTF8String ではありません")
    first, offset = der[1], 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count or der[2] == 0:
            raise BasicFactsError(f"基本4情報の{label}の長さが不正です")
        length, offset = int.from_bytes(der[2:2 + count], "big"), 2 + count
        if length < 0x80:  # DER: the short form is mandatory below 128
            raise BasicFactsError(f"基本4情報の{label}の長さが不正です")
    if len(der) != offset + length:
        raise BasicFactsError(f"基本4情報の{label}の長さが不正です")
    try:
        return der[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BasicFactsError(f"基本4情報の{label}が UTF-8 ではありません") from exc


__all__ = ["JPKI_FACT_ARC", "OID_ADDRESS", "OID_ADDRESS_FLAGS", "OID_BIRTH", "OID_NAME", "OID_NAME_FLAGS",
           "OID_SEX", "SEX_LABELS", "BasicFacts", "BasicFactsError", "read_basic_facts"]
