"""Forms and packages whose rule problems and target records are pinned in ``golden/``.

The reference plugins' checks and transforms were rewritten for speed; ``golden/*.json`` holds
what the code before that rewrite produced for every case here (problems with their messages,
paths and lines; the record bytes, as their SHA-256 but for the samples; the target schema's
verdict), and :mod:`test_golden` proves the current code still produces exactly that. Cases start from the procedures' samples and vary what a transform or a
rule reads: optional blocks present or not, 和暦 and Western dates at the era boundaries,
partial and unknown dates, whitespace, comments, characters that need escaping, the manifest's
optional parts.

Regenerate only on purpose (an intended change of output), with the code the change is to::

    .venv/bin/python -m tests.plugins_builtin.golden_cases

Intended changes since the rewrite (each checked to be the only difference when regenerated):

* Western dates before 明治6年1月1日 (1873-01-01): ``1800-01-01`` and ``0001-01-01`` used to
  pass every rule, and the transform then raised ``ValueError`` (no era can express them), which
  left a schema-valid application in ``validated``. Every date item now refuses them with
  ``rule-date-era``; the entries gained exactly that problem and nothing else. The transform is
  still run here and still fails on them (pinned, so that a change shows); the pipeline no
  longer reaches it (:func:`test_golden.test_the_rules_refuse_what_the_transform_cannot_take`).
  ``1872-12-31`` and the ``claimant-birth-*`` / ``age-*`` cases before 1873 were added with it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from lxml import etree

import plugins.care_01 as care
import plugins.childcare_01 as childcare
from gateway.errors import SchemaError, TransformError
from gateway.models import FormContext, Procedure
from gateway.validation import (
    compiled_schema,
    run_checks,
    validate_form,
    validate_target,
)
from tests.plugins_builtin import procedure_cases as cases

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

Mutation = Callable[[etree._Element], None]

# Dates on and around the era boundaries (spec/identifiers.md), partial and unknown ones.
ERA_DATES = (
    "明治6年1月1日", "明治5年12月2日", "明治45年7月30日", "大正元年7月30日", "大正元年7月29日",
    "大正15年12月25日", "昭和元年12月25日", "昭和元年12月24日", "昭和64年1月7日", "昭和64年1月8日",
    "平成元年1月7日", "平成元年1月8日", "平成31年4月30日", "平成31年5月1日", "令和元年4月30日",
    "令和元年5月1日", "令和2年2月29日", "令和3年2月29日", "昭和20年2月30日", "令和8年11月28日",
    "令和8年11月29日", "令和9年1月1日", "令和2年3月", "令和2年13月", "令和2年月日不詳", "令和2年",
    "令和○年頃", "令和2年3月頃", "令和2年3月4日頃", "平成2年4月日不詳", "年月日不詳", "昭和65年",
    "昭和0年1月1日", "令和○年○月○日", "明治元年1月1日",
)
WESTERN_DATES = (
    "1873-01-01", "1912-07-30", "1926-12-25", "1989-01-07", "1989-01-08", "2019-04-30",
    "2019-05-01", "2008-11-28", "2008-11-29", "2008-04-01", "2008-04-02", "2007-04-01",
    "2010-02-28", "2008-02-29", "2026-11-28", "2026-11-29", "2026-11-28Z", "2026-11-28+09:00",
    "1800-01-01", "0001-01-01", " 2026-11-28 ", "\t2008-11-28\n",
    "1872-12-31",  # added with the refusal of Western dates before 1873 (see above)
)
DATES = ERA_DATES + WESTERN_DATES


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    form_xml: bytes
    attachments: cases.Attachments
    signed: bool = True
    applied_at: dt.datetime | None = cases.APPLIED_AT
    original_arrival_number: str = ""
    settings: dict[str, object] = dataclasses.field(default_factory=dict)


def _form(procedure_module: ModuleType, variant: str, *mutations: Mutation) -> bytes:
    root = etree.fromstring(procedure_module.SAMPLES.form(variant))
    for mutate in mutations:
        mutate(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _ns(module: ModuleType) -> dict[str, str]:
    return {"f": module.checks.FORM_NAMESPACE}


def set_text(module: ModuleType, path: str, value: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        for elem in root.iterfind(path, _ns(module)):
            elem.text = value
    return mutate


def remove(module: ModuleType, path: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        for elem in list(root.iterfind(path, _ns(module))):
            elem.getparent().remove(elem)
    return mutate


def padded(module: ModuleType) -> Mutation:
    """Whitespace around every item whose type allows it (xs:date and xs:boolean collapse it,
    free text keeps it), to prove that what is read is stripped as before."""
    schema = compiled_schema(module.PROCEDURE.form_schema)

    def mutate(root: etree._Element) -> None:
        for elem in root.iter():
            if isinstance(elem.tag, str) and len(elem) == 0 and elem.text:
                for padding in (f"\n   {elem.text}\t ", f" {elem.text}　 "):
                    written, elem.text = elem.text, padding
                    if schema.validate(root.getroottree()):
                        break
                    elem.text = written
    return mutate


def comment_everywhere(root: etree._Element) -> None:
    """A comment at the start and at the end of every block (the hardened parser refuses PIs)."""
    for elem in list(root.iter()):
        if isinstance(elem.tag, str) and len(elem):
            elem.insert(0, etree.Comment(" 見本 "))
            elem.append(etree.Comment("end"))


def _with_attachments(module: ModuleType, variant: str) -> cases.Attachments:
    return module.SAMPLES.attachments(variant)


def childcare_cases() -> Iterator[Case]:
    m = childcare
    two, wareki = "valid-two-children", "valid-minimal-wareki"
    both = _with_attachments(m, two)
    for variant in m.SAMPLES.variants():
        yield Case(f"sample-{variant}", m.SAMPLES.form(variant), _with_attachments(m, variant))
    yield Case("no-attachments", m.SAMPLES.form(two), {})
    yield Case("unsigned", m.SAMPLES.form(two), both, signed=False)
    yield Case("resubmission", m.SAMPLES.form(wareki), {}, original_arrival_number="202611010000000001")
    yield Case("no-applied-at", m.SAMPLES.form(two), both, applied_at=None)
    yield Case("naive-applied-at", m.SAMPLES.form(two), both, applied_at=dt.datetime(2026, 11, 28, 23, 30))
    yield Case("utc-applied-at-next-day", m.SAMPLES.form(two), both,
               applied_at=dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC))
    yield Case("health-document-off", m.SAMPLES.form(two), {}, settings={"REQUIRE_HEALTH_INSURANCE_DOCUMENT": False})
    yield Case("no-spouse", _form(m, two, remove(m, "f:配偶者")), both)
    yield Case("spouse-name-only", _form(m, two, remove(m, "f:配偶者/f:フリガナ"), remove(m, "f:配偶者/f:個人番号"),
                                         remove(m, "f:配偶者/f:職業")), both)
    yield Case("child-without-number", _form(m, two, remove(m, "f:児童/f:個人番号")), both)
    yield Case("separated-without-address", _form(m, two, remove(m, "f:児童/f:別居の場合の住所")), both)
    yield Case("separated-blank-address", _form(m, two, set_text(m, "f:児童/f:別居の場合の住所", "　")), both)
    yield Case("both-payees", _form(m, two, _add_public_payee), both)
    yield Case("no-payee", _form(m, two, remove(m, "f:振込先/f:口座")), both)
    yield Case("public-payee-false", _form(m, wareki, set_text(m, "f:振込先/f:公金受取口座を利用", "0")), {})
    yield Case("public-payee-one", _form(m, wareki, set_text(m, "f:振込先/f:公金受取口座を利用", "1")), {})
    yield Case("public-servant-one", _form(m, two, set_text(m, "f:請求者/f:公務員", "1")), both)
    yield Case("public-servant-true", _form(m, two, set_text(m, "f:請求者/f:公務員", " true ")), both)
    yield Case("national-pension", _form(m, two, set_text(m, "f:請求者/f:加入年金", "国民年金")), {})
    yield Case("padded", _form(m, two, padded(m)), both)
    yield Case("padded-wareki", _form(m, wareki, padded(m)), {})
    yield Case("commented", _form(m, two, comment_everywhere), both)
    yield Case("escaped", _form(m, two, set_text(m, "f:請求者/f:住所", "東京都<千代田区>&\"'１－１"),
                                set_text(m, "f:児童/f:続柄", "長男&二男")), both)
    yield Case("twenty-children", _form(m, two, _children(20)), both)
    yield Case("bad-numbers", _form(m, two, set_text(m, ".//f:個人番号", "123456789012")), both)
    yield Case("odd-attachment-titles", m.SAMPLES.form(two), {
        "a.pdf": ("ｹﾝｺｳ保険の資格を確認できる書類 <写し> & 他", "application/pdf", b"%PDF"),
        "b.png": ("別居監護申立書", "image/png", b"png")})
    # The claimant's birth date alone (the children's keep the rules' other checks quiet):
    # before 1873 it was the one refusal no other rule made for it.
    for date in ("1800-01-01", "1872-12-31", "1873-01-01"):
        yield Case(f"claimant-birth-{date}", _form(m, two, set_text(m, "f:請求者/f:生年月日", date)), both)
    for i, date in enumerate(DATES):
        yield Case(f"claim-date-{i:02d}-{date}", _form(m, two, set_text(m, "f:請求年月日", date)), both)
        yield Case(f"birth-dates-{i:02d}-{date}", _form(m, two, set_text(m, ".//f:生年月日", date)), both)
        yield Case(f"child-birth-{i:02d}-{date}", _form(m, wareki, set_text(m, "f:児童/f:生年月日", date)), {})


def _add_public_payee(root: etree._Element) -> None:
    payee = root.find("f:振込先", _ns(childcare))
    flag = etree.Element(f"{{{childcare.checks.FORM_NAMESPACE}}}公金受取口座を利用")
    flag.text = "true"
    payee.insert(0, flag)


def _children(count: int) -> Mutation:
    def mutate(root: etree._Element) -> None:
        ns = _ns(childcare)
        first = root.find("f:児童", ns)
        for elem in root.findall("f:児童", ns):
            root.remove(elem)
        at = list(root).index(root.find("f:振込先", ns))
        for n in range(count):
            child = copy.deepcopy(first)
            child.find("f:氏名", ns).text = f"見本　{n + 1}郎"
            child.find("f:生年月日", ns).text = f"20{10 + n % 15:02d}-0{1 + n % 9}-1{n % 10}"
            root.insert(at + n, child)
    return mutate


def care_cases() -> Iterator[Case]:
    m = care
    first, second = "valid-first-category", "valid-second-category-wareki"
    for variant in m.SAMPLES.variants():
        yield Case(f"sample-{variant}", m.SAMPLES.form(variant), _with_attachments(m, variant))
    medical = _with_attachments(m, second)
    yield Case("unsigned", m.SAMPLES.form(first), {}, signed=False)
    yield Case("resubmission", m.SAMPLES.form(first), {}, original_arrival_number="202611010000000001")
    yield Case("no-applied-at", m.SAMPLES.form(first), {}, applied_at=None)
    yield Case("insurer-check-digit", m.SAMPLES.form(first), {}, settings={"INSURER_CHECK_DIGIT": "mod10-21"})
    yield Case("insurer-check-digit-second", m.SAMPLES.form(second), medical,
               settings={"INSURER_CHECK_DIGIT": "mod10-21"})
    optional = ("f:提出代行者", "f:医療保険", "f:特定疾病名", "f:申請者/f:氏名", "f:被保険者/f:被保険者番号",
                "f:主治医/f:診療科",
                "f:医療保険/f:記号", "f:本人の居所/f:施設名", "f:提出代行者/f:事業所番号", "f:申請者/f:住所")
    for path in optional:
        yield Case(f"first-without-{path}", _form(m, first, remove(m, path)), {})
        yield Case(f"second-without-{path}", _form(m, second, remove(m, path)), medical)
    yield Case("no-optional", _form(m, first, *(remove(m, p) for p in optional)), {})
    yield Case("consent-one", _form(m, first, set_text(m, "f:情報提供への同意", "1")), {})
    yield Case("consent-zero", _form(m, first, set_text(m, "f:情報提供への同意", "0")), {})
    yield Case("category-mismatch", _form(m, first, set_text(m, "f:被保険者/f:被保険者区分", "第2号")), medical)
    yield Case("agent-other", _form(m, first, set_text(m, "f:提出代行者/f:種別", "その他"),
                                    remove(m, "f:提出代行者/f:事業所番号")), {})
    yield Case("home-facility", _form(m, second, set_text(m, "f:本人の居所/f:区分", "自宅")), medical)
    yield Case("blank-disease", _form(m, second, set_text(m, "f:特定疾病名", "　")), medical)
    yield Case("short-numbers", _form(m, first, set_text(m, "f:被保険者/f:被保険者番号", "12345"),
                                      set_text(m, "f:被保険者/f:保険者番号", "12345"),
                                      set_text(m, "f:提出代行者/f:事業所番号", "137")), {})
    yield Case("bad-my-number", _form(m, first, set_text(m, "f:被保険者/f:個人番号", "789012345678")), {})
    yield Case("padded", _form(m, first, padded(m)), {})
    yield Case("padded-second", _form(m, second, padded(m)), medical)
    yield Case("commented", _form(m, second, comment_everywhere), medical)
    yield Case("escaped", _form(m, first, set_text(m, "f:主治医/f:医療機関", "<見本>&\"病院'")), {})
    for i, date in enumerate(DATES):
        yield Case(f"application-date-{i:02d}-{date}", _form(m, first, set_text(m, "f:申請年月日", date)), {})
        yield Case(f"birth-date-{i:02d}-{date}", _form(m, second, set_text(m, "f:被保険者/f:生年月日", date)), medical)
    for age_day in ("1961-11-28", "1961-11-29", "1986-11-28", "1986-11-29", "1960-02-29", "昭和36年11月29日",
                    "1800-01-01", "1872-12-31", "1873-01-01"):  # 第1号 at 153 or more: only the date refuses
        yield Case(f"age-{age_day}", _form(m, second, set_text(m, "f:被保険者/f:生年月日", age_day)), medical)
        yield Case(f"age-first-{age_day}", _form(m, first, set_text(m, "f:被保険者/f:生年月日", age_day)), {})


PROCEDURES: dict[str, tuple[Procedure, Callable[[], Iterator[Case]]]] = {
    "childcare-01": (childcare.PROCEDURE, childcare_cases),
    "care-01": (care.PROCEDURE, care_cases),
}


def context_of(procedure: Procedure, case: Case) -> FormContext:
    context = cases.context_for(procedure, case.form_xml, case.attachments, case.settings, signed=case.signed)
    manifest = dataclasses.replace(context.package.manifest, applied_at=case.applied_at,
                                   original_arrival_number=case.original_arrival_number)
    return dataclasses.replace(context, package=dataclasses.replace(context.package, manifest=manifest))


def outcome(procedure: Procedure, case: Case) -> dict[str, object]:
    """What the rules and the transform make of ``case`` (a schema-invalid form: only that)."""
    context = context_of(procedure, case)
    try:
        validate_form(procedure, case.form_xml, context.form)
    except SchemaError:
        return {"schema": "invalid"}
    problems = [p.as_dict() for p in run_checks(procedure, context)]
    try:
        record = procedure.transform(context)
    except Exception as exc:  # noqa: BLE001 - pinned as it is
        return {"problems": problems, "transform_error": type(exc).__name__}
    try:
        validate_target(record)
        target_problems = []
    except TransformError as exc:
        target_problems = [p.as_dict() for p in exc.problems]
    return {"problems": problems, "filename": record.filename, "target": record.target,
            "media_type": record.media_type, "record": record.content.decode("utf-8"),
            "target_problems": target_problems}


def pinned(case: Case, outcome: dict[str, object]) -> dict[str, object]:
    """What ``golden/`` keeps of an outcome: everything, but a record only as its SHA-256
    (in full for the samples, to be read), which keeps the files small."""
    if "record" not in outcome or case.name.startswith("sample-"):
        return outcome
    record = str(outcome["record"]).encode("utf-8")
    return {**{k: v for k, v in outcome.items() if k != "record"}, "record_sha256": hashlib.sha256(record).hexdigest()}


def golden_path(code: str) -> Path:
    return GOLDEN_DIR / f"{code}.json"


def write_golden() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for code, (procedure, make_cases) in PROCEDURES.items():
        kept = {case.name: pinned(case, outcome(procedure, case)) for case in make_cases()}
        golden_path(code).write_text(json.dumps(kept, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_golden()
