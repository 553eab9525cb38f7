"""Form and target validation: fast path, located problems on failure, helpers for checks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import threading
import time
import weakref
from pathlib import Path

import pytest
from lxml import etree

from gateway.errors import GatewayError, Problem, SchemaError, StartupError
from gateway.models import (
    Applicant,
    AttachmentInfo,
    FormContext,
    Manifest,
    Procedure,
    TargetRecord,
    VerifiedPackage,
)
from gateway.targetxml import BuiltRecord, TargetBuilder
from gateway.validation import (
    MAX_PROBLEMS,
    Dates,
    compiled_schema,
    date_problem,
    element_path,
    has_attachment,
    items_of,
    load_schemas,
    once_per_package,
    problem_at,
    reference_date,
    run_checks,
    text_of,
    texts_of,
    validate_form,
    validate_target,
)
from gateway.wareki import JapaneseDate, Precision, parse_date
from gateway.xmlsafe import parse_xml
from tests.test_wareki_golden import corpus

NS = "urn:test:form:1"
XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{NS}" targetNamespace="{NS}"
           elementFormDefault="qualified">
  <xs:element name="申請書">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="氏名" type="xs:string"/>
        <xs:element name="フリガナ">
          <xs:simpleType>
            <xs:restriction base="xs:string"><xs:pattern value="[\\p{{IsKatakana}}&#x3000;]+"/></xs:restriction>
          </xs:simpleType>
        </xs:element>
        <xs:element name="性別">
          <xs:simpleType>
            <xs:restriction base="xs:string">
              <xs:enumeration value="男"/><xs:enumeration value="女"/>
            </xs:restriction>
          </xs:simpleType>
        </xs:element>
        <xs:element name="児童" maxOccurs="unbounded">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="生年月日" type="xs:date"/>
              <xs:element name="個人番号" type="xs:string"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:element name="同意" type="xs:boolean"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""

VALID = f"""<?xml version="1.0" encoding="UTF-8"?>
<申請書 xmlns="{NS}">
  <氏名>見本　太郎</氏名>
  <フリガナ>ミホン　タロウ</フリガナ>
  <性別>男</性別>
  <児童><生年月日>2015-06-01</生年月日><個人番号>123456789018</個人番号></児童>
  <児童><生年月日>2016-07-01</生年月日><個人番号>234567890121</個人番号></児童>
  <同意>true</同意>
</申請書>
"""


@pytest.fixture(scope="module")
def procedure(tmp_path_factory: pytest.TempPathFactory) -> Procedure:
    path = tmp_path_factory.mktemp("xsd") / "test-01.xsd"
    path.write_text(XSD, encoding="utf-8")
    return Procedure(code="test-01", version="1", title="試験", target="test", form_namespace=NS,
                     form_schema=path, transform=lambda context: None)  # type: ignore[arg-type,return-value]


def form(text: str) -> etree._Element:
    return parse_xml(text.encode("utf-8"), what="test-01.xml")


def problems_of(procedure: Procedure, text: str) -> list[Problem]:
    with pytest.raises(SchemaError) as caught:
        validate_form(procedure, text.encode("utf-8"), form(text))
    assert caught.value.code == "schema-invalid" and caught.value.status == 422
    return list(caught.value.problems)


def context(*, attachments: tuple[str, ...] = (), applied_at: dt.datetime | None = None,
            xml: str = VALID) -> FormContext:
    manifest = Manifest(
        arrival_number="202611280000012345", procedure_code="test-01", municipality_code="131016",
        application_kind="新規申請", original_arrival_number="", applied_at=applied_at,
        applicant=Applicant(name="見本　太郎"), form_id="test-01", form_version="1",
        form_filename="test-01.xml",
        attachments=tuple(AttachmentInfo(title, f"a{i}.pdf", "application/pdf") for i, title in enumerate(attachments)))
    return FormContext(package=VerifiedPackage(manifest=manifest, form_xml=xml.encode()), form=form(xml))


# --------------------------------------------------------------------------- forms


def test_valid_form_passes(procedure: Procedure) -> None:
    validate_form(procedure, VALID.encode(), form(VALID))


def test_wrong_namespace_is_its_own_error(procedure: Procedure) -> None:
    text = VALID.replace(NS, "urn:test:form:2")
    with pytest.raises(SchemaError) as caught:
        validate_form(procedure, text.encode(), form(text))
    err = caught.value
    assert err.code == "schema-namespace"
    assert [(p.path, p.line, p.code) for p in err.problems] == [("/申請書", 2, "schema-namespace")]
    assert "urn:test:form:1" in err.problems[0].message


def test_pattern_error_is_located_with_path_and_line(procedure: Procedure) -> None:
    (problem,) = problems_of(procedure, VALID.replace("ミホン　タロウ", "みほん　たろう"))
    assert problem.path == "/申請書/フリガナ" and problem.line == 4
    assert problem.code == "schema-invalid"
    assert problem.message.startswith("様式に適合しません: /申請書/フリガナ: フリガナ の書き方が正しくありません")
    assert "pattern" in problem.message  # xmlschema's own reason follows


def test_repeated_elements_get_an_index(procedure: Procedure) -> None:
    (problem,) = problems_of(procedure, VALID.replace("2016-07-01", "2016-07-32"))
    assert problem.path == "/申請書/児童[2]/生年月日" and problem.line == 7


def test_date_and_boolean_errors_say_how_to_write_them(procedure: Procedure) -> None:
    date_problem_, bool_problem = problems_of(
        procedure, VALID.replace("2016-07-01", "2016/07/01").replace("<同意>true", "<同意>はい"))
    assert "生年月日 は日付を 2026-11-28 の形で記入してください" in date_problem_.message
    assert bool_problem.path == "/申請書/同意" and "true または false" in bool_problem.message


def test_enumeration_error_lists_the_choices(procedure: Procedure) -> None:
    (problem,) = problems_of(procedure, VALID.replace("<性別>男</性別>", "<性別>不明</性別>"))
    assert problem.path == "/申請書/性別" and "男、女" in problem.message


def test_missing_last_item_names_it(procedure: Procedure) -> None:
    (problem,) = problems_of(procedure, VALID.replace("  <同意>true</同意>\n", ""))
    assert problem.path == "/申請書/同意" and problem.line == 2
    assert "必要な項目 同意 がありません" in problem.message and "urn:test" not in problem.message


def test_misplaced_item_is_reported_where_it_stands(procedure: Procedure) -> None:
    (problem,) = problems_of(procedure, VALID.replace("  <性別>男</性別>\n", ""))
    assert problem.path == "/申請書/児童[1]" and problem.line == 5
    assert "性別 が必要です" in problem.message


def test_several_problems_are_all_reported_and_bounded(procedure: Procedure) -> None:
    many = "".join(f"<児童><生年月日>2015-13-{i:02d}</生年月日><個人番号>1</個人番号></児童>" for i in range(1, 80))
    text = VALID.replace("<同意>", many + "<同意>").replace("男</性別>", "X</性別>")
    problems = problems_of(procedure, text)
    assert len(problems) == MAX_PROBLEMS
    assert problems[0].path == "/申請書/性別"


def test_an_attribute_flood_is_reported_by_libxml2_without_the_slow_pass(procedure: Procedure) -> None:
    # xmlschema renders the element into one error per attribute: thousands took minutes.
    attributes = " ".join(f'a{i}="1"' for i in range(5000))
    text = VALID.replace("<性別>男</性別>", f"<性別 {attributes}>男</性別>")
    started = time.perf_counter()
    problems = problems_of(procedure, text)
    assert time.perf_counter() - started < 2
    assert 0 < len(problems) <= MAX_PROBLEMS
    assert all(p.code == "schema-invalid" and p.message.startswith("様式に適合しません: ") for p in problems)
    assert problems[0].line == 5


def test_schema_is_compiled_once_per_thread(procedure: Procedure) -> None:
    here = compiled_schema(procedure.form_schema)
    assert compiled_schema(procedure.form_schema) is here
    seen: list[etree.XMLSchema] = []
    thread = threading.Thread(target=lambda: seen.append(compiled_schema(procedure.form_schema)))
    thread.start()
    thread.join()
    assert seen and seen[0] is not here


def test_concurrent_validation_keeps_results_apart(procedure: Procedure) -> None:
    bad = VALID.replace("男</性別>", "X</性別>")
    results: list[tuple[bool, str]] = []
    lock = threading.Lock()

    def work(text: str, ok: bool) -> None:
        for _ in range(50):
            try:
                validate_form(procedure, text.encode(), form(text))
                outcome = (True, "")
            except SchemaError as err:
                outcome = (False, err.problems[0].path)
            with lock:
                results.append((outcome[0] == ok, outcome[1]))

    threads = [threading.Thread(target=work, args=(t, ok)) for t, ok in ((VALID, True), (bad, False)) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 300 and all(correct for correct, _ in results)
    assert {path for _, path in results} == {"", "/申請書/性別"}


def test_broken_or_missing_schema_stops_start_up(tmp_path: Path, procedure: Procedure) -> None:
    broken = tmp_path / "broken.xsd"
    broken.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a" type="nope"/></xs:schema>')
    for path in (broken, tmp_path / "missing.xsd"):
        with pytest.raises(StartupError) as caught:
            compiled_schema(path)
        assert caught.value.code == "startup-schema"
    load_schemas(procedure, detailed=True)


def test_remote_imports_are_not_fetched(tmp_path: Path) -> None:
    remote = tmp_path / "remote.xsd"
    remote.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:o="urn:o" targetNamespace="urn:t">'
        '<xs:import namespace="urn:o" schemaLocation="http://example.invalid/o.xsd"/>'
        '<xs:element name="a" type="o:T"/></xs:schema>')
    with pytest.raises(StartupError):
        compiled_schema(remote)


# --------------------------------------------------------------------------- checks and targets


def test_run_checks_collects_every_checks_problems_in_order(procedure: Procedure) -> None:
    def first(ctx: FormContext):
        yield problem_at(ctx.form[0], "一", "rule-one")

    def second(ctx: FormContext):
        return [problem_at(child, "二", "rule-two") for child in ctx.form.iterfind(f"{{{NS}}}児童")]

    def silent(ctx: FormContext):
        return None

    proc = Procedure(**{**procedure.__dict__, "checks": (first, second, silent)})
    found = run_checks(proc, context())
    assert [(p.code, p.path, p.line) for p in found] == [
        ("rule-one", "/申請書/氏名", 3), ("rule-two", "/申請書/児童[1]", 6), ("rule-two", "/申請書/児童[2]", 7)]


def test_validate_target(tmp_path: Path, procedure: Procedure) -> None:
    record = TargetRecord(content=VALID.encode(), media_type="application/xml", filename="t.xml",
                          target="test", schema=procedure.form_schema)
    validate_target(record)
    validate_target(TargetRecord(content=b"not xml", media_type="text/plain", filename="t", target="t"))

    bad = TargetRecord(content=VALID.replace("男</性別>", "X</性別>").encode(), media_type="application/xml",
                       filename="t.xml", target="test", schema=procedure.form_schema)
    with pytest.raises(GatewayError) as caught:
        validate_target(bad)
    assert caught.value.code == "schema-target-invalid" and caught.value.status == 500
    assert [p.path for p in caught.value.problems] == ["/申請書/性別"]

    garbled = TargetRecord(content=b"<a>", media_type="application/xml", filename="t.xml", target="test",
                           schema=procedure.form_schema)
    with pytest.raises(GatewayError) as caught:
        validate_target(garbled)
    assert caught.value.code == "schema-target-invalid"


def test_element_path_indexes_only_repeated_names() -> None:
    root = form(VALID)
    children = root.findall(f"{{{NS}}}児童")
    assert element_path(root) == "/申請書"
    assert element_path(root[0]) == "/申請書/氏名"
    assert element_path(children[1][1]) == "/申請書/児童[2]/個人番号"


def test_reference_date_is_the_arrival_day_in_japan() -> None:
    late_utc = dt.datetime(2026, 11, 28, 16, 30, tzinfo=dt.timezone.utc)  # 01:30 JST on the 29th
    assert reference_date(context(applied_at=late_utc)) == dt.date(2026, 11, 29)
    assert reference_date(context(applied_at=dt.datetime(2026, 11, 28, 10, 0))) == dt.date(2026, 11, 28)


def test_has_attachment_matches_keywords_after_normalisation() -> None:
    ctx = context(attachments=("健康保険の資格を確認できる書類", "別居監護申立書（様式２）"))
    assert has_attachment(ctx, "健康保険", "資格")
    assert has_attachment(ctx, "別居監護申立書")
    assert not has_attachment(ctx, "医療保険")
    assert not has_attachment(context(), "別居監護申立書")


@pytest.mark.parametrize("text,register,code", [
    ("2026-11-28", False, None),
    ("令和8年11月28日", False, None),
    ("令和8年11月29日", False, "rule-date-future"),
    ("令和8年2月30日", False, "rule-date-invalid"),
    ("平成31年5月1日", False, "rule-date-era"),
    ("令和8年", False, "rule-date-incomplete"),
    ("年月日不詳", False, "rule-date-incomplete"),
    ("平成31年5月1日", True, "rule-date-era"),
    ("昭和20年2月30日", True, None),       # the register may hold it
    ("年月日不詳", True, None),
    ("令和○年頃", True, None),
    ("明治5年1月1日", True, None),
    ("令和9年", True, "rule-date-future"),
    ("そのうち", True, "rule-date-invalid"),
    # Before 明治6年1月1日 (1873-01-01) no era can express a Western date: refused, register or not.
    ("1873-01-01", False, None),
    ("1873-01-01", True, None),
    ("1872-12-31", False, "rule-date-era"),
    ("1872-12-31", True, "rule-date-era"),
    ("1800-01-01", True, "rule-date-era"),
    ("0001-01-01", False, "rule-date-era"),
    ("1872-12-31+09:00", True, "rule-date-era"),
    ("18721231", True, "rule-date-era"),
    ("18720000", True, "rule-date-era"),      # partial, but wholly before 1873
    ("18720000", False, "rule-date-incomplete"),
    ("18730000", True, None),
    ("118700101", True, "rule-date-era"),      # the certificate's EYYYYMMDD: 明治 + 1870-01-01
    ("00000000", True, None),                # year 0: no year, a non-calendar date as before
    ("明治5年12月2日", True, None),           # the register's lunisolar date, in 和暦: accepted as before
    ("明治5年12月2日", False, "rule-date-invalid"),
])
def test_date_problem(text: str, register: bool, code: str | None) -> None:
    elem = etree.fromstring(f"<生年月日>{text}</生年月日>")
    problem = date_problem(elem, today=dt.date(2026, 11, 28), register_form=register)
    assert (problem.code if problem else None) == code
    if problem:
        assert problem.path == "/生年月日" and problem.line == 1


def _date_problem_as_first_written(elem: etree._Element, *, today: dt.date, register_form: bool) -> Problem | None:
    """date_problem before it was reordered for speed: the reference it must still agree with."""
    parsed = parse_date(elem.text or "")
    name = etree.QName(elem).localname
    shown = parsed.original.strip()
    if parsed.precision is Precision.OUT_OF_ERA:
        return problem_at(elem, f"{name}「{shown}」はその元号の期間外の日付です"
                                f"（例: 平成31年5月1日は令和元年5月1日と書きます）", "rule-date-era")
    if parsed.precision is Precision.UNRECOGNISED or (
            not register_form and parsed.precision in (Precision.NOT_A_DATE, Precision.LUNAR)):
        return problem_at(elem, f"{name}「{shown}」は暦にない日付です", "rule-date-invalid")
    if not register_form and not parsed.exact:
        return problem_at(elem, f"{name} は年月日まで記入してください", "rule-date-incomplete")
    if (parsed.value and parsed.value > today) or (not parsed.value and parsed.year and parsed.year > today.year):
        return problem_at(elem, f"{name}「{shown}」が未来の日付です", "rule-date-future")
    return None


def _before_1873_in_western_form(parsed: JapaneseDate, *, register_form: bool) -> bool:
    """What the first definition let through and the transform could not write (era_of raised)."""
    if parsed.value is not None:
        return parsed.value < dt.date(1873, 1, 1)
    return register_form and parsed.era is None and 1 <= (parsed.year or 0) <= 1872


def test_date_problem_agrees_with_its_first_definition_on_every_form() -> None:
    """The same as the first definition, but that a Western date before 1873 it let through
    (and the transform then failed on) is now refused as outside the era system."""
    elem = etree.fromstring("<生年月日/>")
    dates = Dates()
    refused_now = 0
    for text in corpus():
        if any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in text):
            continue
        elem.text = text
        for today in (dt.date(2026, 11, 28), dt.date(2019, 4, 30), dt.date(1989, 1, 7)):
            for register_form in (False, True):
                expected = _date_problem_as_first_written(elem, today=today, register_form=register_form)
                if expected is None and _before_1873_in_western_form(parse_date(text), register_form=register_form):
                    refused_now += 1
                    expected = problem_at(elem, f"生年月日「{text.strip()}」は明治6年1月1日（1873年1月1日）より前の日付です。"
                                                "太陽暦の施行前の日付は和暦に換算できないため受け付けられません",
                                          "rule-date-era")
                assert date_problem(elem, today=today, register_form=register_form) == expected, text
                assert date_problem(elem, today=today, register_form=register_form, parse=dates) == expected, text
    assert refused_now >= 30  # 1868-01-25, 1872-12-31, 0001-01-01 in every form, both kinds of item


def test_no_date_date_problem_accepts_makes_the_transform_fail() -> None:
    """Whatever date the rules let through, the transform can write (the bug: 1800-01-01)."""
    builder = TargetBuilder("urn:test:target:1", NS)
    elem = etree.fromstring("<生年月日/>")
    for text in corpus():
        if any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in text):
            continue
        elem.text = text
        for register_form in (False, True):
            if date_problem(elem, today=dt.date(2026, 11, 28), register_form=register_form) is None:
                builder.add_date(etree.Element("r"), "生年月日", text)  # raises if it cannot


# --------------------------------------------------------------------------- reading a form once


def test_items_of_a_block_by_local_name_without_comments() -> None:
    root = form(VALID.replace("<性別>", "<!-- 見本 --><性別>"))
    items = items_of(root)
    assert list(items) == ["氏名", "フリガナ", "性別", "児童", "同意"]  # a repeated name: its last element
    assert items["児童"] is root[-2] and text_of(items["氏名"]) == "見本　太郎"
    assert items_of(None) == {} and text_of(None) == "" and text_of(etree.Element("x")) == ""
    assert items_of(items["児童"]) == {"生年月日": items["児童"][0], "個人番号": items["児童"][1]}
    padded = etree.fromstring("<b><x>  a b </x><y/></b>")
    assert texts_of(items_of(padded)) == {"x": "a b", "y": ""} and texts_of(None) is None


class _Read:
    """A read's result, weakly referable so that the tests can see it go."""


def test_once_per_package_reads_each_package_once() -> None:
    reads: list[FormContext] = []

    @once_per_package
    def read(ctx: FormContext) -> _Read:
        reads.append(ctx)
        return _Read()

    first, second = context(), context()
    result = read(first)
    assert read(first) is result and reads == [first]
    assert read(dataclasses.replace(first, address_number="000001")) is result  # as the pipeline hands it on
    assert read(second) is not result and reads[-1] is second  # the same text is another package
    assert read(first) is result  # both kept while both are being processed
    reparsed = dataclasses.replace(first, form=form(VALID))
    assert read(reparsed) is not result and reads[-1] is reparsed  # another form object: read again


def test_once_per_package_keeps_nothing_past_the_package() -> None:
    @once_per_package
    def read(ctx: FormContext) -> _Read:
        return _Read()

    ctx = context()
    result, package = weakref.ref(read(ctx)), weakref.ref(ctx.package)
    assert result() is not None
    del ctx
    gc.collect()
    assert package() is None and result() is None  # the form and its read went with the package
    later = context()
    assert read(later) is read(later)


def test_once_per_package_does_not_keep_a_failed_read() -> None:
    calls = []

    @once_per_package
    def read(ctx: FormContext) -> int:
        calls.append(ctx)
        if len(calls) == 1:
            raise ValueError("plugin bug")
        return len(calls)

    ctx = context()
    with pytest.raises(ValueError):
        read(ctx)
    assert read(ctx) == 2 and read(ctx) == 2


def test_dates_parse_each_text_once() -> None:
    dates = Dates()
    first = dates("令和8年11月28日")
    assert first == parse_date("令和8年11月28日") and dates("令和8年11月28日") is first
    assert dates(" 令和8年11月28日") is not first and dates(" 令和8年11月28日").value == first.value


# --------------------------------------------------------------------------- records built by TargetBuilder


def _built(procedure: Procedure, sex: str = "男") -> BuiltRecord:
    xml = TargetBuilder(NS, NS)
    root = xml.root("申請書")
    del root.attrib["版"]  # the test schema has no version attribute
    xml.add_all(root, [("氏名", "見本　太郎"), ("フリガナ", "ミホン　タロウ"), ("性別", sex)])
    for born, number in (("2015-06-01", "123456789018"), ("2016-07-01", "234567890121")):
        xml.add_all(xml.add(root, "児童"), [("生年月日", born), ("個人番号", number)])
    xml.add(root, "同意", "true")
    record = xml.record(root, context(), target="test", schema=procedure.form_schema)
    assert isinstance(record, BuiltRecord) and record.tree is root
    return record


def test_a_built_record_is_validated_as_its_tree(procedure: Procedure, monkeypatch: pytest.MonkeyPatch) -> None:
    record = _built(procedure)
    assert record.content == etree.tostring(record.tree, xml_declaration=True, encoding="UTF-8")
    monkeypatch.setattr("gateway.validation.parse_xml", None)  # a valid tree needs no parse of the bytes
    validate_target(record)


def test_an_invalid_built_record_is_reported_from_its_bytes(procedure: Procedure) -> None:
    record = _built(procedure, sex="X")
    as_bytes = TargetRecord(content=record.content, media_type=record.media_type, filename=record.filename,
                            target=record.target, schema=record.schema)
    problems = []
    for each in (record, as_bytes):
        with pytest.raises(GatewayError) as caught:
            validate_target(each)
        assert caught.value.code == "schema-target-invalid"
        problems.append((caught.value.detail, caught.value.problems))
    assert problems[0] == problems[1]
    assert [(p.path, p.line) for p in problems[0][1]] == [("/申請書/性別", 2)]  # located in the bytes
