"""Business rules of childcare-01 (児童手当 認定請求), run after the form passed its schema.

Each check takes the :class:`~gateway.FormContext` and yields located problems with a stable
``rule-…`` code. Messages never repeat a 個人番号 (problems are stored and shown to staff).

Settings (``PROCEDURES."childcare-01"`` in the gateway configuration):

``REQUIRE_HEALTH_INSURANCE_DOCUMENT`` (default true)
    Ask for 健康保険の資格確認書類 when the claimant is in 厚生年金等. Some municipalities
    no longer ask for it; they switch it off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from lxml import etree

from gateway import FormContext, Problem
from gateway.identifiers import check_my_number
from gateway.validation import date_problem, has_attachment, problem_at, reference_date
from gateway.wareki import parse_date, reaches_age_on

FORM_NAMESPACE = "urn:jp:gateway:form:childcare-01:1"
NS = {"f": FORM_NAMESPACE}

CHILD_AGE_LIMIT = 18
"""高校生年代: paid until the first 31 March on or after the day the child reaches 18."""

SEPARATION_DOCUMENT = ("別居監護申立書",)
HEALTH_INSURANCE_DOCUMENT = ("健康保険", "資格")


def is_true(elem: etree._Element | None) -> bool:
    """xs:boolean as written: ``true`` or ``1``."""
    return elem is not None and (elem.text or "").strip() in ("true", "1")


def claim_date(context: FormContext) -> dt.date:
    """請求年月日 when it is an exact day, else the application's arrival day."""
    written = parse_date(context.form.findtext("f:請求年月日", namespaces=NS) or "")
    return written.value or reference_date(context)


def check_my_numbers(context: FormContext) -> Iterator[Problem]:
    """Every 個人番号 (請求者, 配偶者, 児童) must carry its check digit."""
    for elem in context.form.iterfind(".//f:個人番号", NS):
        if not check_my_number((elem.text or "").strip()):
            yield problem_at(elem, "個人番号の検査用数字が一致しません。番号を確認してください",
                             "rule-mynumber-check-digit")


def check_dates(context: FormContext) -> Iterator[Problem]:
    """請求年月日 is an exact past day; birth dates may be partial, as the register allows."""
    today = reference_date(context)
    form = context.form
    items = [(form.find("f:請求年月日", NS), False)]
    items += [(elem, True) for elem in form.iterfind(".//f:生年月日", NS)]
    for elem, register_form in items:
        if elem is not None and (problem := date_problem(elem, today=today, register_form=register_form)):
            yield problem


def check_child_age(context: FormContext) -> Iterator[Problem]:
    """Each child is within 高校生年代 on the claim date (unknown birth dates are left to staff)."""
    on = claim_date(context)
    for child in context.form.iterfind("f:児童", NS):
        elem = child.find("f:生年月日", NS)
        born = parse_date(elem.text or "").value
        if born is None or born > on:
            continue  # not exact, or a future date already reported by check_dates
        reaches = reaches_age_on(born, CHILD_AGE_LIMIT)
        limit = dt.date(reaches.year if reaches.month <= 3 else reaches.year + 1, 3, 31)
        if on > limit:
            yield problem_at(elem, f"児童手当の支給対象（18歳到達後最初の3月31日＝{limit:%Y年%m月%d日}まで）"
                                   "を過ぎています", "rule-child-age")


def check_separated_children(context: FormContext) -> Iterator[Problem]:
    """別居 needs the child's address and the 別居監護申立書 attachment."""
    has_document = has_attachment(context, *SEPARATION_DOCUMENT)
    for child in context.form.iterfind("f:児童", NS):
        status = child.find("f:同居別居", NS)
        if status is None or (status.text or "").strip() != "別居":
            continue
        if not (child.findtext("f:別居の場合の住所", namespaces=NS) or "").strip():
            yield problem_at(status, "別居の児童は別居先の住所を記入してください", "rule-separated-address")
        if not has_document:
            yield problem_at(status, "別居の児童がいるときは「別居監護申立書」を添付してください",
                             "rule-attachment-missing")


def check_pension_document(context: FormContext) -> Iterator[Problem]:
    """厚生年金等 needs 健康保険の資格確認書類, unless the municipality switched it off."""
    if not context.settings.get("REQUIRE_HEALTH_INSURANCE_DOCUMENT", True):
        return
    pension = context.form.find("f:請求者/f:加入年金", NS)
    if pension is not None and pension.text == "厚生年金等" and not has_attachment(context, *HEALTH_INSURANCE_DOCUMENT):
        yield problem_at(pension, "厚生年金等に加入の方は「健康保険の資格確認書類」を添付してください",
                         "rule-attachment-missing")


def check_public_servant(context: FormContext) -> Iterator[Problem]:
    """公務員 are paid by their employer (児童手当法第17条), not by the municipality."""
    elem = context.form.find("f:請求者/f:公務員", NS)
    if is_true(elem):
        yield problem_at(elem, "公務員の方の児童手当は勤務先（所属庁）が認定します。勤務先に請求してください",
                         "rule-public-servant")


def check_account_choice(context: FormContext) -> Iterator[Problem]:
    """振込先 is either an account or 公金受取口座, exactly one of them."""
    payee = context.form.find("f:振込先", NS)
    if payee is None:
        return
    public = is_true(payee.find("f:公金受取口座を利用", NS))
    account = payee.find("f:口座", NS) is not None
    if public == account:
        yield problem_at(payee, "振込先は口座を記入するか公金受取口座の利用を選ぶか、どちらか一方にしてください",
                         "rule-account-choice")


CHECKS = (
    check_my_numbers,
    check_dates,
    check_child_age,
    check_separated_children,
    check_pension_document,
    check_public_servant,
    check_account_choice,
)
