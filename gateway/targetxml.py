"""Building a procedure's target record: the pieces every transform shares.

A transform reads a schema-valid form and writes the target core system's XML with plain
lxml, one pass, no templates and no re-parsing (it runs once per application). What every
target format has in common lives here, so each procedure's ``target.py`` says only what is
its own::

    xml = TargetBuilder(TARGET_NAMESPACE, FORM_NAMESPACE)

    def transform(context: FormContext) -> TargetRecord:
        root = xml.root("児童手当認定請求データ")
        xml.add_management(root, context)
        claimant = xml.items(context.form.find("f:請求者", NS))
        block = xml.add(root, "請求者")
        xml.copy(block, claimant, "氏名", ("フリガナ", "氏名カナ"))
        xml.add_date(block, "生年月日", claimant["生年月日"])
        ...
        xml.add_attachments(root, context)
        return xml.record(root, context, target=TARGET, schema=TARGET_SCHEMA)

The common blocks follow the gateway's target formats (``schemas/targets/*``): ``管理情報``
from the manifest first, ``添付書類一覧`` last, and every date as a ``日付型`` block.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from gateway.models import FormContext, TargetRecord
from gateway.wareki import parse_date

SEX_CODES = {"男": "1", "女": "2"}
"""性別 as the 住民基本台帳 codes it (1 男, 2 女)."""

Item = str | tuple[str, str]
"""A form item to copy: its name, or ``(form name, target name)`` when the target renames it."""


def xs_boolean(written: str | None) -> str:
    """An xs:boolean as the form may write it (``true``/``1``) → the canonical ``true``/``false``."""
    return "true" if (written or "").strip() in ("true", "1") else "false"


class TargetBuilder:
    """Adds elements in one target namespace, reading items from one form namespace."""

    def __init__(self, target_namespace: str, form_namespace: str) -> None:
        self.target_namespace = target_namespace
        self.form_namespace = form_namespace
        self._target = f"{{{target_namespace}}}"
        self._form = f"{{{form_namespace}}}"

    # ------------------------------------------------------------------ elements

    def root(self, name: str, version: str = "1") -> etree._Element:
        """The record's root, the target namespace as default, its format version in ``版``."""
        root = etree.Element(self._target + name, nsmap={None: self.target_namespace})
        root.set("版", version)
        return root

    def add(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        """A child element of ``parent`` in the target namespace, with ``text`` if given."""
        elem = etree.SubElement(parent, self._target + name)
        if text is not None:
            elem.text = text
        return elem

    def items(self, block: etree._Element | None) -> dict[str, str]:
        """A form block's child items as ``{local name: stripped text}``: one pass, no path lookups.

        ``{}`` when the block is absent. Children are assumed in the form namespace (the
        schema guaranteed it); comments and processing instructions are skipped.
        """
        if block is None:
            return {}
        cut = len(self._form)
        return {child.tag[cut:]: (child.text or "").strip() for child in block if isinstance(child.tag, str)}

    def copy(self, parent: etree._Element, values: dict[str, str], *names: Item) -> None:
        """Copy the optional items ``names`` (in this order) that the form has, from :meth:`items`."""
        for name in names:
            form_name, target_name = (name, name) if isinstance(name, str) else name
            value = values.get(form_name)
            if value is not None:
                self.add(parent, target_name, value)

    def copy_block(self, parent: etree._Element, form_parent: etree._Element, name: str, *names: Item,
                   as_name: str | None = None) -> etree._Element | None:
        """Copy the optional block ``name`` of ``form_parent`` (as ``as_name`` if given) with the
        items :meth:`copy` takes; nothing when the form has no such block."""
        block = form_parent.find(self._form + name)
        if block is None:
            return None
        target_block = self.add(parent, as_name or name)
        self.copy(target_block, self.items(block), *names)
        return target_block

    # ------------------------------------------------------------------ common blocks

    def add_date(self, parent: etree._Element, name: str, written: str) -> etree._Element:
        """A ``日付型`` block: ``原文`` always; ``西暦`` (YYYYMMDD) and ``和暦`` (era code + YYMMDD)
        only when the day is exactly known; ``精度`` says how much of it is."""
        parsed = parse_date(written)
        block = self.add(parent, name)
        block.set("精度", parsed.precision.value)
        self.add(block, "原文", written.strip())
        if parsed.value is not None:
            self.add(block, "西暦", parsed.western())
            self.add(block, "和暦", parsed.era_code_yymmdd())
        return block

    def add_management(self, root: etree._Element, context: FormContext) -> etree._Element:
        """``管理情報`` from the signed manifest, and whether the signature vouches for the applicant."""
        manifest = context.package.manifest
        block = self.add(root, "管理情報")
        self.add(block, "到達番号", manifest.arrival_number)
        self.add(block, "受付団体コード", manifest.municipality_code)
        self.add(block, "手続コード", manifest.procedure_code)
        self.add(block, "様式バージョン", manifest.form_version)
        self.add(block, "申請種別", manifest.application_kind)
        if manifest.original_arrival_number:
            self.add(block, "初回到達番号", manifest.original_arrival_number)
        if manifest.applied_at is not None:
            self.add(block, "申請日時", manifest.applied_at.isoformat())
        self.add(block, "本人確認", "電子署名" if context.package.signed else "要本人確認")
        return block

    def add_attachments(self, root: etree._Element, context: FormContext) -> etree._Element:
        """``添付書類一覧``: every attachment of the manifest (名称, ファイル名, メディア型) and ``件数``."""
        attachments = context.package.manifest.attachments
        listing = self.add(root, "添付書類一覧")
        listing.set("件数", str(len(attachments)))
        for attachment in attachments:
            block = self.add(listing, "添付書類")
            self.add(block, "名称", attachment.title)
            self.add(block, "ファイル名", attachment.filename)
            self.add(block, "メディア型", attachment.media_type)
        return listing

    # ------------------------------------------------------------------ the result

    def record(self, root: etree._Element, context: FormContext, *, target: str,
               schema: Path | None) -> TargetRecord:
        """The finished record: UTF-8 XML named ``{到達番号}_{手続コード}.xml``."""
        manifest = context.package.manifest
        return TargetRecord(
            content=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
            media_type="application/xml",
            filename=f"{manifest.arrival_number}_{manifest.procedure_code}.xml",
            target=target,
            schema=schema,
        )
