"""The 構成情報 of ``kousei.xml`` as a :class:`~gateway.models.Manifest`.

:func:`parse_manifest` reads the element the signature covers (signxml's verified output), so
nothing unsigned reaches the manifest. :func:`peek_arrival_number` is the one exception: it
reads the unverified 到達番号 so the store can record an arrival before verification, and its
result must never be used for anything else. ``kousei.xml`` is parsed once per package
(:func:`parse_kousei`): the tree peeked here is the very tree verification then checks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from lxml import etree

from gateway.archive import MANIFEST_MEMBER
from gateway.errors import MunicipalityError, PackageError
from gateway.identifiers import check_arrival_number, check_municipality_code
from gateway.models import Applicant, AttachmentInfo, Manifest
from gateway.xmlsafe import parse_xml

MANIFEST_TAG = "構成情報"
APPLICATION_KINDS = ("新規申請", "再提出", "取下げ")
"""申請種別: a new application, a resubmission after 差戻し, a withdrawal."""
ATTACHMENT_MEDIA_TYPES = frozenset({"application/pdf", "image/jpeg", "image/png"})
_PROCEDURE_CODE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_XML_SPACE = " \t\r\n"
"""Only XML whitespace is trimmed: 氏名 keeps its full-width space, even at an end."""


def parse_manifest(root: etree._Element) -> Manifest:
    """Build the manifest from the signed 構成情報 element ``root``.

    :raises PackageError: ``package-manifest-structure`` (missing, repeated or nested
        elements) or ``package-manifest-invalid`` (a bad value: 到達番号, 手続ID, 申請種別,
        初回到達番号, 申請日時, メディア型, file names).
    :raises MunicipalityError: ``municipality-code-invalid``.
    """
    if root.tag != MANIFEST_TAG:
        raise _structure(f"構成情報 要素ではありません（{root.tag}）")
    top = _children(root)
    admin = _children(_one(top, "管理情報"))
    arrival_number = _text(admin, "到達番号")
    if not check_arrival_number(arrival_number):
        raise _invalid("到達番号は16～18桁の数字です")
    procedure_code = _text(admin, "手続ID")
    if not _PROCEDURE_CODE.fullmatch(procedure_code):
        raise _invalid(f"手続ID の形式が不正です: {procedure_code!r}")
    municipality_code = _text(admin, "提出先団体コード")
    if not check_municipality_code(municipality_code):
        raise MunicipalityError(f"提出先団体コードが不正です（検査数字）: {municipality_code!r}",
                                code="municipality-code-invalid")
    kind = _text(admin, "申請種別")
    if kind not in APPLICATION_KINDS:
        raise _invalid(f"申請種別が不正です: {kind!r}")
    original = _text(admin, "初回到達番号", required=False)
    if kind == "新規申請" and original:
        raise _invalid("新規申請に初回到達番号は指定できません")
    if kind != "新規申請" and not check_arrival_number(original):
        raise _invalid(f"{kind}には初回到達番号（16～18桁の数字）が必要です")
    form = _children(_one(top, "申請書属性情報"))
    attachments = tuple(_attachment(node) for node in top.get("添付書類属性情報", ()))
    manifest = Manifest(
        arrival_number=arrival_number, procedure_code=procedure_code, municipality_code=municipality_code,
        application_kind=kind, original_arrival_number=original,
        applied_at=_applied_at(_text(admin, "申請日時")), applicant=_applicant(_one(admin, "申請者情報")),
        form_id=_text(form, "申請書様式ID"), form_version=_text(form, "申請書様式バージョン"),
        form_filename=_text(form, "申請書ファイル名称"), attachments=attachments)
    _check_file_names(manifest)
    return manifest


def manifest_file_names(manifest: Manifest) -> tuple[str, ...]:
    """Every member the manifest names: the form first, then the attachments in order."""
    return (manifest.form_filename, *(a.filename for a in manifest.attachments))


def parse_kousei(members: Mapping[str, bytes]) -> etree._Element | None:
    """``kousei.xml`` parsed by the hardened parser (unverified), or ``None`` when it is missing.

    Parsed once per package: :func:`peek_arrival_number` reads this tree, and the pipeline hands
    the same tree to :func:`gateway.verification.verify_package`, which checks all of it.

    :raises XmlError: the parser's own refusal (``xml-dtd``, ``xml-malformed`` …), so that a
        hostile kousei.xml is recorded under its specific code.
    """
    data = members.get(MANIFEST_MEMBER)
    return None if data is None else parse_xml(data, what=MANIFEST_MEMBER)


def peek_arrival_number(kousei: etree._Element | None) -> str | None:
    """The **unverified** 到達番号 of ``kousei`` (:func:`parse_kousei`), or ``None`` when it
    cannot be read.

    Only for recording the arrival before verification (and answering a replay); every
    decision uses the verified manifest.
    """
    if kousei is None or kousei.tag != "DataRoot":
        return None
    # kousei.findall("構成情報/管理情報/到達番号") must find exactly one: the same child steps
    # (iterchildren by tag is what ElementPath runs for each step), without its machinery.
    found = None
    for manifest in kousei.iterchildren(MANIFEST_TAG):
        for admin in manifest.iterchildren("管理情報"):
            for number in admin.iterchildren("到達番号"):
                if found is not None:
                    return None
                found = number
    if found is None or len(found):
        return None
    value = (found.text or "").strip(_XML_SPACE)
    return value if check_arrival_number(value) else None


# --------------------------------------------------------------------------- helpers


def _structure(detail: str) -> PackageError:
    """An element missing, repeated, empty or with children where a value belongs."""
    return PackageError(f"構成情報: {detail}", code="package-manifest-structure")


def _invalid(detail: str) -> PackageError:
    """A value out of its domain (the detail names the field in Japanese)."""
    return PackageError(f"構成情報: {detail}", code="package-manifest-invalid")


def _children(parent: etree._Element) -> dict[Any, list[etree._Element]]:
    """``parent``'s children by tag, in order: one walk serves every lookup below."""
    children: dict[Any, list[etree._Element]] = {}
    for child in parent:
        tag = child.tag
        if tag in children:
            children[tag].append(child)
        else:
            children[tag] = [child]
    return children


def _one(children: Mapping[Any, list[etree._Element]], tag: str, *,
         required: bool = True) -> etree._Element | None:
    found = children.get(tag, ())
    if len(found) > 1:
        raise _structure(f"{tag} が複数あります")
    if not found:
        if required:
            raise _structure(f"{tag} がありません")
        return None
    return found[0]


def _text(children: Mapping[Any, list[etree._Element]], tag: str, *, required: bool = True) -> str:
    found = children.get(tag)  # _one, inline: ~20 values a manifest
    if not found:
        if required:
            raise _structure(f"{tag} がありません")
        return ""
    if len(found) > 1:
        raise _structure(f"{tag} が複数あります")
    node = found[0]
    if len(node):
        raise _structure(f"{tag} に子要素があります")
    value = (node.text or "").strip(_XML_SPACE)
    if required and not value:
        raise _structure(f"{tag} が空です")
    return value


def _applied_at(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise _invalid(f"申請日時の形式が不正です: {value!r}") from exc
    if when.tzinfo is None or "T" not in value:
        raise _invalid("申請日時には日時と時差（例 +09:00）が必要です")
    return when


def _applicant(node: etree._Element) -> Applicant:
    items = _children(node)
    return Applicant(
        name=_text(items, "氏名"), name_kana=_text(items, "氏名フリガナ", required=False),
        postal_code=_text(items, "郵便番号", required=False), address=_text(items, "住所", required=False),
        phone=_text(items, "電話番号", required=False), email=_text(items, "電子メールアドレス", required=False))


def _attachment(node: etree._Element) -> AttachmentInfo:
    items = _children(node)
    media_type = _text(items, "メディア型")
    if media_type not in ATTACHMENT_MEDIA_TYPES:
        raise _invalid(f"添付書類のメディア型は PDF・JPEG・PNG のみです: {media_type!r}")
    return AttachmentInfo(title=_text(items, "添付書類名称"), filename=_text(items, "添付書類ファイル名称"),
                          media_type=media_type)


def _check_file_names(manifest: Manifest) -> None:
    names = manifest_file_names(manifest)
    if len(set(names)) != len(names):
        raise _invalid("同じファイル名称が複数回指定されています")
    if MANIFEST_MEMBER in names:
        raise _invalid(f"{MANIFEST_MEMBER} は申請書・添付書類の名称に使えません")
