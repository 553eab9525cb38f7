"""childcare-01 form → ``jidou-teate`` record (``schemas/targets/jidou-teate/1``).

The form as :func:`.checks.read_claim` read it for the rules, written with
:class:`gateway.targetxml.TargetBuilder`, which writes the common blocks (管理情報, dates as
原文 + 西暦 + 和暦, 添付書類一覧). Here only what is the procedure's own:
性別 → 性別コード (1 男, 2 女), children → 児童一覧 with 連番, 振込先 → 口座 or 公金受取口座.
"""

from __future__ import annotations

from gateway import FormContext, TargetRecord
from gateway.config import SCHEMAS_DIR
from gateway.targetxml import SEX_CODES, TargetBuilder, xs_boolean
from gateway.validation import texts_of

from .checks import FORM_NAMESPACE, read_claim

TARGET = "jidou-teate"
TARGET_NAMESPACE = "urn:jp:gateway:target:jidou-teate:1"
TARGET_SCHEMA = SCHEMAS_DIR / "targets" / TARGET / "1" / "jidou-teate.xsd"

xml = TargetBuilder(TARGET_NAMESPACE, FORM_NAMESPACE)

NAME = ("氏名", ("フリガナ", "氏名カナ"))
"""氏名 and its reading, renamed as the target calls it."""


def transform(context: FormContext) -> TargetRecord:
    """Build the 児童手当認定請求データ record from a schema-valid, rule-checked form."""
    claim = read_claim(context)  # as the checks read it: the form is not walked again
    root = xml.root("児童手当認定請求データ")
    xml.add_management(root, context)
    xml.add_date(root, "請求年月日", claim.claim_date.text or "", claim.dates)

    claimant = texts_of(claim.claimant)
    block = xml.add(root, "請求者")
    xml.copy(block, claimant, *NAME)
    xml.add_date(block, "生年月日", claimant["生年月日"], claim.dates)
    xml.add(block, "性別コード", SEX_CODES[claimant["性別"]])
    xml.copy(block, claimant, "郵便番号", "住所", "電話番号", "個人番号", "職業", "加入年金")
    xml.add(block, "公務員", xs_boolean(claimant["公務員"]))

    xml.add_block(root, "配偶者", texts_of(claim.spouse), *NAME, "個人番号", "職業")

    listing = xml.add(root, "児童一覧")
    listing.set("件数", str(len(claim.children)))
    for number, child in enumerate(claim.children, start=1):
        fields = texts_of(child)
        block = xml.add(listing, "児童")
        block.set("連番", str(number))
        xml.copy(block, fields, *NAME)
        xml.add_date(block, "生年月日", fields["生年月日"], claim.dates)
        xml.copy(block, fields, "続柄", ("同居別居", "同居別居区分"), ("別居の場合の住所", "別居先住所"), "個人番号")

    block = xml.add(root, "振込先")
    if not claim.account:
        xml.add(block, "公金受取口座")
    else:
        xml.copy(xml.add(block, "口座"), texts_of(claim.account),
                 "金融機関コード", "支店コード", "預金種別", "口座番号", "口座名義カナ")

    xml.add_attachments(root, context)
    return xml.record(root, context, target=TARGET, schema=TARGET_SCHEMA)
