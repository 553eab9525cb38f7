"""care-01 form → ``kaigo-hoken`` record (``schemas/targets/kaigo-hoken/1``).

Plain lxml building, one pass over the form, no templates: about 0.2 ms, most of it lxml
creating elements. Dates are written in every form targets ask for (原文, 西暦 YYYYMMDD,
和暦 era code + YYMMDD); 性別 becomes the 住民基本台帳 code (1 男, 2 女), 被保険者区分 its
code (1 第1号, 2 第2号), and the age on the application date is added for the core system.
"""

from __future__ import annotations

from lxml import etree

from gateway import FormContext, TargetRecord
from gateway.config import SCHEMAS_DIR
from gateway.wareki import legal_age_on, parse_date

from .checks import FORM_NAMESPACE, NS, application_date

TARGET = "kaigo-hoken"
TARGET_NAMESPACE = "urn:jp:gateway:target:kaigo-hoken:1"
TARGET_SCHEMA = SCHEMAS_DIR / "targets" / TARGET / "1" / "kaigo-hoken.xsd"
SEX_CODES = {"男": "1", "女": "2"}
CATEGORY_CODES = {"第1号": "1", "第2号": "2"}

_T = f"{{{TARGET_NAMESPACE}}}"
_F = f"{{{FORM_NAMESPACE}}}"


def _add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    elem = etree.SubElement(parent, _T + name)
    if text is not None:
        elem.text = text
    return elem


def items(block: etree._Element | None) -> dict[str, str]:
    """The block's child items as ``{local name: stripped text}``: one pass, no path lookups."""
    if block is None:
        return {}
    cut = len(_F)
    return {child.tag[cut:]: (child.text or "").strip() for child in block if isinstance(child.tag, str)}


def _copy(parent: etree._Element, source: dict[str, str], name: str, as_name: str | None = None) -> None:
    """Copy an optional item of the form under the same (or another) name."""
    value = source.get(name)
    if value is not None:
        _add(parent, as_name or name, value)


def add_date(parent: etree._Element, name: str, written: str) -> None:
    """A date block: 原文 always, 西暦 and 和暦 only when the day is exactly known."""
    parsed = parse_date(written)
    block = _add(parent, name)
    block.set("精度", parsed.precision.value)
    _add(block, "原文", written.strip())
    if parsed.value is not None:
        _add(block, "西暦", parsed.western())
        _add(block, "和暦", parsed.era_code_yymmdd())


def add_management(root: etree._Element, context: FormContext) -> None:
    manifest = context.package.manifest
    block = _add(root, "管理情報")
    _add(block, "到達番号", manifest.arrival_number)
    _add(block, "受付団体コード", manifest.municipality_code)
    _add(block, "手続コード", manifest.procedure_code)
    _add(block, "様式バージョン", manifest.form_version)
    _add(block, "申請種別", manifest.application_kind)
    if manifest.original_arrival_number:
        _add(block, "初回到達番号", manifest.original_arrival_number)
    if manifest.applied_at is not None:
        _add(block, "申請日時", manifest.applied_at.isoformat())
    _add(block, "本人確認", "電子署名" if context.package.signed else "要本人確認")


def add_attachments(root: etree._Element, context: FormContext) -> None:
    attachments = context.package.manifest.attachments
    listing = _add(root, "添付書類一覧")
    listing.set("件数", str(len(attachments)))
    for attachment in attachments:
        block = _add(listing, "添付書類")
        _add(block, "名称", attachment.title)
        _add(block, "ファイル名", attachment.filename)
        _add(block, "メディア型", attachment.media_type)


def _block(root: etree._Element, form: etree._Element, name: str, fields: tuple[str, ...],
           as_name: str | None = None) -> None:
    """Copy an optional block of plain text items, keeping their names."""
    source = form.find(f"f:{name}", NS)
    if source is None:
        return
    values = items(source)
    block = _add(root, as_name or name)
    for field in fields:
        _copy(block, values, field)


def transform(context: FormContext) -> TargetRecord:
    """Build the 要介護認定申請データ record from a schema-valid, rule-checked form."""
    form = context.form
    root = etree.Element(_T + "要介護認定申請データ", nsmap={None: TARGET_NAMESPACE})
    root.set("版", "1")
    add_management(root, context)
    add_date(root, "申請年月日", form.findtext("f:申請年月日", namespaces=NS))
    _add(root, "申請区分", form.findtext("f:申請区分", namespaces=NS).strip())

    person = items(form.find("f:被保険者", NS))
    block = _add(root, "被保険者")
    for name in ("被保険者番号", "保険者番号", "個人番号", "氏名"):
        _copy(block, person, name)
    _copy(block, person, "フリガナ", "氏名カナ")
    add_date(block, "生年月日", person["生年月日"])
    _add(block, "性別コード", SEX_CODES[person["性別"]])
    for name in ("郵便番号", "住所", "電話番号"):
        _copy(block, person, name)
    _add(block, "被保険者区分コード", CATEGORY_CODES[person["被保険者区分"]])
    born = parse_date(person["生年月日"]).value
    if born is not None:
        _add(block, "申請時年齢", str(legal_age_on(born, application_date(context))))

    _block(root, form, "申請者", ("本人との関係", "氏名", "郵便番号", "住所", "電話番号"))
    _block(root, form, "提出代行者", ("種別", "名称", "事業所番号", "所在地", "電話番号"))
    _block(root, form, "本人の居所", ("区分", "施設名", "所在地", "電話番号"))
    _block(root, form, "主治医", ("氏名", "医療機関", "所在地", "電話番号", "診療科"))
    _block(root, form, "医療保険", ("保険者名", "記号", "番号"))
    disease = (form.findtext("f:特定疾病名", namespaces=NS) or "").strip()
    if disease:
        _add(root, "特定疾病名", disease)
    _block(root, form, "訪問調査の連絡先", ("氏名", "本人との関係", "電話番号"), as_name="訪問調査連絡先")
    consent = (form.findtext("f:情報提供への同意", namespaces=NS) or "").strip()
    _add(root, "情報提供同意", "true" if consent in ("true", "1") else "false")
    add_attachments(root, context)

    return TargetRecord(
        content=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
        media_type="application/xml",
        filename=f"{context.package.manifest.arrival_number}_{context.package.manifest.procedure_code}.xml",
        target=TARGET,
        schema=TARGET_SCHEMA,
    )
