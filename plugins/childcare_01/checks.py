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
from dataclasses import dataclass, field

from lxml import etree

from gateway import FormContext, Problem
from gateway.identifiers import check_my_number
from gateway.validation import (
    Dates,
    Items,
    date_problem,
    has_attachment,
    items_of,
    once_per_package,
    problem_at,
    reference_date,
    text_of,
)
from gateway.wareki import reaches_age_on

FORM_NAMESPACE = "urn:jp:gateway:form:childcare-01:1"
NS = {"f": FORM_NAMESPACE}

CHILD_AGE_LIMIT = 18
"""高校生年代: paid until the first 31 March on or after the day the child reaches 18."""

SEPARATION_DOCUMENT = ("別居監護申立書",)
HEALTH_INSURANCE_DOCUMENT = ("健康保険", "資格")


@dataclass(frozen=True)
class Claim:
    """The form's blocks as the rules and the transform read them: items by local name.

    The schema fixes the order (請求年月日, 請求者, 配偶者?, 児童+, 振込先), so the blocks
    below are in document order too.
    """

    claim_date: etree._Element
    claimant: Items
    spouse: Items | None
    children: tuple[Items, ...]
    payee: etree._Element
    """振込先: 公金受取口座を利用 or 口座, the rules say which."""
    public_account: etree._Element | None
    account: Items | None
    dates: Dates = field(default_factory=Dates)
    """parse_date for this form's dates: the rules and the transform read each one once."""

    def my_numbers(self) -> Iterator[etree._Element]:
        """Every 個人番号 (請求者, 配偶者, 児童), in document order."""
        for person in (self.claimant, self.spouse or {}, *self.children):
            if (number := person.get("個人番号")) is not None:
                yield number


@once_per_package
def read_claim(context: FormContext) -> Claim:
    """The schema-valid form's blocks, read once per package: the checks and the transform share it."""
    blocks: Items = {}
    children: list[Items] = []
    for elem in context.form.iterchildren(etree.Element):
        name = elem.tag.rpartition("}")[2]
        if name == "児童":
            children.append(items_of(elem))
        else:
            blocks[name] = elem
    spouse = blocks.get("配偶者")
    payee = items_of(blocks["振込先"])
    account = payee.get("口座")
    return Claim(claim_date=blocks["請求年月日"], claimant=items_of(blocks["請求者"]),
                 spouse=items_of(spouse) if spouse is not None else None, children=tuple(children),
                 payee=blocks["振込先"], public_account=payee.get("公金受取口座を利用"),
                 account=items_of(account) if account is not None else None)


def is_true(elem: etree._Element | None) -> bool:
    """xs:boolean as written: ``true`` or ``1``."""
    return elem is not None and (elem.text or "").strip() in ("true", "1")


def claim_date(context: FormContext) -> dt.date:
    """請求年月日 when it is an exact day, else the application's arrival day."""
    claim = read_claim(context)
    return claim.dates(claim.claim_date.text or "").value or reference_date(context)


def check_my_numbers(context: FormContext) -> Iterator[Problem]:
    """Every 個人番号 (請求者, 配偶者, 児童) must carry its check digit."""
    for elem in read_claim(context).my_numbers():
        if not check_my_number(text_of(elem)):
            yield problem_at(elem, "個人番号の検査用数字が一致しません。番号を確認してください",
                             "rule-mynumber-check-digit")


def check_dates(context: FormContext) -> Iterator[Problem]:
    """請求年月日 is an exact past day; birth dates may be partial, as the register allows."""
    today = reference_date(context)
    claim = read_claim(context)
    if problem := date_problem(claim.claim_date, today=today, parse=claim.dates):
        yield problem
    for person in (claim.claimant, *claim.children):
        if problem := date_problem(person["生年月日"], today=today, register_form=True, parse=claim.dates):
            yield problem


def check_child_age(context: FormContext) -> Iterator[Problem]:
    """Each child is within 高校生年代 on the claim date (unknown birth dates are left to staff)."""
    on = claim_date(context)
    claim = read_claim(context)
    for child in claim.children:
        elem = child["生年月日"]
        born = claim.dates(elem.text or "").value
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
    for child in read_claim(context).children:
        status = child["同居別居"]
        if text_of(status) != "別居":
            continue
        if not text_of(child.get("別居の場合の住所")):
            yield problem_at(status, "別居の児童は別居先の住所を記入してください", "rule-separated-address")
        if not has_document:
            yield problem_at(status, "別居の児童がいるときは「別居監護申立書」を添付してください",
                             "rule-attachment-missing")


def check_pension_document(context: FormContext) -> Iterator[Problem]:
    """厚生年金等 needs 健康保険の資格確認書類, unless the municipality switched it off."""
    if not context.settings.get("REQUIRE_HEALTH_INSURANCE_DOCUMENT", True):
        return
    pension = read_claim(context).claimant["加入年金"]
    if pension.text == "厚生年金等" and not has_attachment(context, *HEALTH_INSURANCE_DOCUMENT):
        yield problem_at(pension, "厚生年金等に加入の方は「健康保険の資格確認書類」を添付してください",
                         "rule-attachment-missing")


def check_public_servant(context: FormContext) -> Iterator[Problem]:
    """公務員 are paid by their employer (児童手当法第17条), not by the municipality."""
    elem = read_claim(context).claimant["公務員"]
    if is_true(elem):
        yield problem_at(elem, "公務員の方の児童手当は勤務先（所属庁）が認定します。勤務先に請求してください",
                         "rule-public-servant")


def check_account_choice(context: FormContext) -> Iterator[Problem]:
    """振込先 is either an account or 公金受取口座, exactly one of them."""
    claim = read_claim(context)
    if is_true(claim.public_account) == (claim.account is not None):
        yield problem_at(claim.payee, "振込先は口座を記入するか公金受取口座の利用を選ぶか、どちらか一方にしてください",
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
