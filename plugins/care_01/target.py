"""care-01 form → ``kaigo-hoken`` record (``schemas/targets/kaigo-hoken/1``).

The form as :func:`.checks.read_application` read it for the rules, written with
:class:`gateway.targetxml.TargetBuilder`, which writes the common blocks (管理情報, dates as
原文 + 西暦 + 和暦, 添付書類一覧). Here only what is the procedure's own:
性別 → 性別コード (1 男, 2 女), 被保険者区分 → its code (1 第1号, 2 第2号), the age on the
application date for the core system, and the optional blocks copied as they are.
"""

from __future__ import annotations

from gateway import FormContext, TargetRecord
from gateway.config import SCHEMAS_DIR
from gateway.targetxml import SEX_CODES, TargetBuilder, xs_boolean
from gateway.validation import text_of, texts_of
from gateway.wareki import legal_age_on

from .checks import FORM_NAMESPACE, application_date, read_application

TARGET = "kaigo-hoken"
TARGET_NAMESPACE = "urn:jp:gateway:target:kaigo-hoken:1"
TARGET_SCHEMA = SCHEMAS_DIR / "targets" / TARGET / "1" / "kaigo-hoken.xsd"
CATEGORY_CODES = {"第1号": "1", "第2号": "2"}

xml = TargetBuilder(TARGET_NAMESPACE, FORM_NAMESPACE)


def transform(context: FormContext) -> TargetRecord:
    """Build the 要介護認定申請データ record from a schema-valid, rule-checked form."""
    app = read_application(context)  # as the checks read it: the form is not walked again
    root = xml.root("要介護認定申請データ")
    xml.add_management(root, context)
    xml.add_date(root, "申請年月日", app.form["申請年月日"].text or "", app.dates)
    xml.add(root, "申請区分", text_of(app.form["申請区分"]))

    person = texts_of(app.insured)
    block = xml.add(root, "被保険者")
    xml.copy(block, person, "被保険者番号", "保険者番号", "個人番号", "氏名", ("フリガナ", "氏名カナ"))
    xml.add_date(block, "生年月日", person["生年月日"], app.dates)
    xml.add(block, "性別コード", SEX_CODES[person["性別"]])
    xml.copy(block, person, "郵便番号", "住所", "電話番号")
    xml.add(block, "被保険者区分コード", CATEGORY_CODES[person["被保険者区分"]])
    born = app.dates(person["生年月日"]).value
    if born is not None:
        xml.add(block, "申請時年齢", str(legal_age_on(born, application_date(context))))

    xml.add_block(root, "申請者", texts_of(app.applicant), "本人との関係", "氏名", "郵便番号", "住所", "電話番号")
    xml.add_block(root, "提出代行者", texts_of(app.agent), "種別", "名称", "事業所番号", "所在地", "電話番号")
    xml.add_block(root, "本人の居所", texts_of(app.residence), "区分", "施設名", "所在地", "電話番号")
    xml.add_block(root, "主治医", texts_of(app.doctor), "氏名", "医療機関", "所在地", "電話番号", "診療科")
    xml.add_block(root, "医療保険", texts_of(app.medical_insurance), "保険者名", "記号", "番号")
    disease = text_of(app.form.get("特定疾病名"))
    if disease:
        xml.add(root, "特定疾病名", disease)
    xml.add_block(root, "訪問調査の連絡先", texts_of(app.contact), "氏名", "本人との関係", "電話番号",
                  as_name="訪問調査連絡先")
    xml.add(root, "情報提供同意", xs_boolean(app.form["情報提供への同意"].text))

    xml.add_attachments(root, context)
    return xml.record(root, context, target=TARGET, schema=TARGET_SCHEMA)
