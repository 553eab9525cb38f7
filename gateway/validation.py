"""Form and target validation: fast lxml check, precise xmlschema report only on failure.

libxml2 (``lxml.etree.XMLSchema``) validates a 10 KB form in ~0.03 ms against ~2.4 ms for
xmlschema (``perf-baselines.md``), but its messages are terse. So every form goes through
lxml, and only a form that fails is validated again by xmlschema to produce located,
staff-readable :class:`~gateway.errors.Problem` entries.

Threads: an ``XMLSchema`` object carries one error log that every call clears and refills,
so concurrent calls on one object would mix their logs. Each thread therefore compiles its
own instance (once per schema file, cached by path). The xmlschema objects of the slow path
are built once under a lock and are read-only afterwards.

Schemas are read from local files only: the XSD parser resolves no entities, loads no DTD
and has network access off, and xmlschema is built with ``allow="local"``.

The module also holds the small helpers procedure checks use to report a problem at an
element (:func:`problem_at`, :func:`element_path`), so plugins need nothing but the public API,
and those with which a procedure reads its form once per package for all its checks and its
transform (:func:`once_per_package`, :func:`items_of`, :class:`Dates`): every accepted application
runs them all, and a path lookup per item cost more than the rules themselves.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
import unicodedata
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import xmlschema
from elementpath import ElementPathError
from lxml import etree

from gateway.errors import Problem, SchemaError, StartupError, TransformError, XmlError
from gateway.models import FormContext, Procedure, TargetRecord, VerifiedPackage
from gateway.targetxml import BuiltRecord
from gateway.wareki import GREGORIAN_START, JapaneseDate, Precision, parse_date
from gateway.xmlsafe import parse_xml

MAX_PROBLEMS = 50
"""Report at most this many schema problems: enough to correct a form, bounded in cost."""

JST = dt.timezone(dt.timedelta(hours=9), "JST")

_XSD_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False}
_CLARK = re.compile(r"\{[^{}:]+:[^{}]*\}")  # a namespace URI in Clark notation
_per_thread = threading.local()
_detail_lock = threading.Lock()
_detail_schemas: dict[str, xmlschema.XMLSchemaBase] = {}


# --------------------------------------------------------------------------- schemas


def compiled_schema(path: Path) -> etree.XMLSchema:
    """This thread's compiled lxml schema for ``path`` (compiled on first use).

    :raises StartupError: the file is missing or is not a valid XSD (a plugin fault).
    """
    cache: dict[str, etree.XMLSchema] = _per_thread.__dict__.setdefault("schemas", {})
    key = str(path)
    schema = cache.get(key)
    if schema is None:
        try:
            doc = etree.parse(key, etree.XMLParser(**_XSD_PARSER_OPTIONS))
            schema = etree.XMLSchema(doc)
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise StartupError(f"スキーマを読み込めません: {path}: {exc}", code="startup-schema") from exc
        cache[key] = schema
    return schema


def _detail_schema(path: Path) -> xmlschema.XMLSchemaBase:
    key = str(path)
    with _detail_lock:
        schema = _detail_schemas.get(key)
        if schema is None:
            try:
                schema = xmlschema.XMLSchema10(key, allow="local", defuse="always")
            except (OSError, xmlschema.XMLSchemaException) as exc:
                raise StartupError(f"スキーマを読み込めません: {path}: {exc}", code="startup-schema") from exc
            _detail_schemas[key] = schema
    return schema


def load_schemas(procedure: Procedure, *, detailed: bool = False) -> None:
    """Compile a procedure's form and target schemas now, so a broken XSD stops start-up.

    :param detailed: Also build the xmlschema objects of the slow path (~50 ms each; they
        are otherwise built on the first invalid form).
    :raises StartupError: ``startup-schema``.
    """
    for path in (procedure.form_schema, procedure.target_schema):
        if path is not None:
            compiled_schema(path)
            if detailed:
                _detail_schema(path)


# --------------------------------------------------------------------------- forms


def validate_form(procedure: Procedure, form_xml: bytes, root: etree._Element) -> None:
    """Check the form's namespace and validate it against the procedure's form schema.

    :param form_xml: The signed form bytes (kept for the contract; ``root`` is what is read).
    :param root: The form's root element, parsed from ``form_xml`` by the hardened parser.
    :raises SchemaError: ``schema-namespace`` or ``schema-invalid`` with located problems.
    """
    namespace = etree.QName(root).namespace
    if namespace != procedure.form_namespace:
        raise SchemaError(
            f"申請書の名前空間が手続 {procedure.code} 版{procedure.version} の様式と一致しません",
            code="schema-namespace",
            problems=[Problem(path=element_path(root), line=root.sourceline, code="schema-namespace",
                              message=f"名前空間 {namespace or '(なし)'} は {procedure.form_namespace} である必要があります")])
    schema = compiled_schema(procedure.form_schema)
    if schema.validate(root.getroottree()):
        return
    problems = schema_problems(procedure.form_schema, root, schema)
    raise SchemaError(f"申請書が様式に適合しません（{len(problems)}件）", problems=problems)


def run_checks(procedure: Procedure, context: FormContext) -> list[Problem]:
    """Run the procedure's own business-rule checks, in order, and collect their problems.

    A check that raises is a plugin bug and is not swallowed.
    """
    return [*_missing_attachments(procedure, context),
            *(problem for check in procedure.checks for problem in check(context) or ())]


def _missing_attachments(procedure: Procedure, context: FormContext) -> list[Problem]:
    """``Procedure.required_attachments``: each title must be among the signed manifest's."""
    return [Problem(path="/DataRoot/構成情報/添付書類属性情報", code="rule-attachment-missing",
                    message=f"添付書類「{title}」がありません")
            for title in procedure.required_attachments if not has_attachment(context, title)]


def validate_target(record: TargetRecord) -> None:
    """Validate a transformed record against its target schema (tests, strict mode).

    :raises TransformError: ``schema-target-invalid`` (status 500: the transform is at fault,
        not the resident).
    """
    if record.schema is None:
        return
    # A BuiltRecord's bytes are its tree serialised: a valid tree needs no parse of them. An
    # invalid one takes the path below, so problems are located in the bytes as always.
    if (isinstance(record, BuiltRecord) and record.tree is not None
            and compiled_schema(record.schema).validate(record.tree.getroottree())):
        return
    try:
        root = parse_xml(record.content, what=record.filename)
    except XmlError as exc:
        raise TransformError(f"変換結果が整形式のXMLではありません: {exc.detail}") from exc
    schema = compiled_schema(record.schema)
    if not schema.validate(root.getroottree()):
        problems = schema_problems(record.schema, root, schema)
        raise TransformError(f"変換結果が連携先 {record.target} の形式に適合しません（{len(problems)}件）",
                             problems=problems)


DETAIL_MAX_ATTRIBUTES = 64
"""Beyond this many attributes on one element, schema errors come from libxml2 (see _attribute_flood)."""


def schema_problems(path: Path, root: etree._Element, fast: etree.XMLSchema | None = None) -> list[Problem]:
    """Located problems for a document that failed ``path`` (the slow, precise pass)."""
    if fast is not None and _attribute_flood(root):
        return _libxml2_problems(fast)
    problems: list[Problem] = []
    detail = _detail_schema(path)
    for error in detail.iter_errors(root):
        problems.append(_problem_from(error, detail))
        if len(problems) >= MAX_PROBLEMS:
            break
    if not problems and fast is not None:
        problems = _libxml2_problems(fast)  # the engines disagree (rare): libxml2's messages, not none
    return problems[:MAX_PROBLEMS]


def _attribute_flood(root: etree._Element) -> bool:
    # xmlschema makes one error per unexpected attribute and renders the whole element into
    # each: thousands of attributes on one element cost seconds to minutes (a denial of
    # service open to anyone with a signing certificate). No form needs more than a few.
    return any(len(element.attrib) > DETAIL_MAX_ATTRIBUTES for element in root.iter())


def _libxml2_problems(fast: etree.XMLSchema) -> list[Problem]:
    return [Problem(path=e.path, line=e.line, code="schema-invalid", message=f"様式に適合しません: {e.message}")
            for e in list(fast.error_log)[:MAX_PROBLEMS]]


def _problem_from(error: xmlschema.XMLSchemaValidationError, schema: xmlschema.XMLSchemaBase) -> Problem:
    elem = error.elem if isinstance(error.elem, etree._Element) else None
    if elem is None:
        return Problem(path=error.path or "/", line=None, code="schema-invalid",
                       message=f"様式に適合しません: {error.reason or error.message}")
    path, line = element_path(elem), elem.sourceline
    what = _describe(error, elem, schema)
    if isinstance(error, xmlschema.XMLSchemaChildrenValidationError):
        expected = [_local(t) for t in error.expected_tags]
        child = error.invalid_child
        if child is not None:
            path, line = element_path(child), child.sourceline
        elif len(expected) == 1:
            path = f"{path}/{expected[0]}"
    reason = _CLARK.sub("", error.reason or "")  # '{urn:…}性別' reads better as '性別'
    return Problem(path=path, line=line, code="schema-invalid",
                   message=f"様式に適合しません: {path}: {what}（{reason}）")


def _describe(error: xmlschema.XMLSchemaValidationError, elem: etree._Element,
              schema: xmlschema.XMLSchemaBase) -> str:
    """A Japanese summary of the failure; xmlschema's English reason follows it."""
    name = etree.QName(elem).localname
    if isinstance(error, xmlschema.XMLSchemaChildrenValidationError):
        expected = "、".join(_local(t) for t in error.expected_tags)
        if error.invalid_tag is None:
            return f"{name} に必要な項目 {expected} がありません" if expected else f"{name} の項目が不足しています"
        bad = _local(error.invalid_tag)
        return (f"{bad} はこの位置に記入できません（{expected} が必要です）" if expected
                else f"{bad} はこの位置に記入できません")
    primitives = _declared_primitives(schema, elem)
    if "date" in primitives:
        example = "2026-11-28 または 令和8年11月28日" if "string" in primitives else "2026-11-28"
        return f"{name} は日付を {example} の形で記入してください"
    if primitives == {"boolean"}:
        return f"{name} は true または false で記入してください"
    kind = type(error.validator).__name__
    if "Enumeration" in kind:
        choices = "、".join(str(v) for v in getattr(error.validator, "enumeration", ()))
        return f"{name} は次のいずれかです: {choices}"
    if "Pattern" in kind:
        return f"{name} の書き方が正しくありません"
    if "Length" in kind:
        return f"{name} の文字数が正しくありません"
    return f"{name} の値が正しくありません"


def _declared_primitives(schema: xmlschema.XMLSchemaBase, elem: etree._Element) -> set[str]:
    """Primitive types behind the element's declared simple type (a union has several).

    A union reports only its last member's failure (e.g. the 和暦 pattern for ``1988-13-15``),
    so the message is chosen from the declaration instead. Best effort: empty when unknown.
    """
    tags = [node.tag for node in elem.iterancestors()][::-1] + [elem.tag]
    try:
        declaration = schema.find("/" + "/".join(tags))
    except (ElementPathError, LookupError, ValueError):
        return set()
    xsd_type = getattr(declaration, "type", None)
    if xsd_type is None:
        return set()
    members = xsd_type.member_types if xsd_type.is_union() else [xsd_type]
    return {m.primitive_type.local_name for m in members if getattr(m, "primitive_type", None) is not None}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].split(":", 1)[-1]


# --------------------------------------------------------------------------- reading a form once


Items = dict[str, etree._Element]
"""A form block's child elements by local name (:func:`items_of`)."""

T = TypeVar("T")


def items_of(block: etree._Element | None) -> Items:
    """``block``'s child elements by local name, comments skipped; ``{}`` when there is no block.

    One pass over the children: a path lookup (``find("f:…", NS)``) costs ~4 µs an item, which
    made most of what rules cost. Names are unique within a block in a schema-valid form;
    a repeated one (``児童``) is read with ``block.iterchildren`` instead.
    """
    if block is None:
        return {}
    # iterchildren(etree.Element) skips comments in C; each .tag is a new string, made once.
    return {child.tag.rpartition("}")[2]: child for child in block.iterchildren(etree.Element)}


def text_of(elem: etree._Element | None) -> str:
    """An item's text, stripped; ``""`` for an empty or absent item."""
    return (elem.text or "").strip() if elem is not None else ""


def texts_of(items: Items | None) -> dict[str, str] | None:
    """:func:`items_of`'s elements as their stripped texts, for :class:`gateway.targetxml.TargetBuilder`."""
    if items is None:
        return None
    return {name: (elem.text or "").strip() for name, elem in items.items()}


class Dates:
    """:func:`~gateway.wareki.parse_date` with a memory, for one package's form.

    A rule, another rule and the transform each read the same few dates; the procedure's
    read of its form (:func:`once_per_package`) holds one of these, and passes it as ``parse``
    to :func:`date_problem` and :meth:`gateway.targetxml.TargetBuilder.add_date`.
    """

    __slots__ = ("_parsed",)

    def __init__(self) -> None:
        self._parsed: dict[str, JapaneseDate] = {}

    def __call__(self, written: str) -> JapaneseDate:
        parsed = self._parsed.get(written)
        if parsed is None:
            parsed = self._parsed[written] = parse_date(written)
        return parsed


def once_per_package(read: Callable[[FormContext], T]) -> Callable[[FormContext], T]:
    """Share ``read(context)`` between the checks and the transform of one package.

    A procedure reads its form once into the blocks its rules and its transform need
    (``read_claim`` in the childcare-01 plugin), and every check calls that read. ``read``
    reads ``context.form`` only. Its result is kept for that package and that form *object*
    while the package is being processed, and dropped with the package (a weak reference, so
    the form goes when the pipeline is done with it); it is never looked up by content, so
    nothing passes between packages. The gateway never changes a form after parsing it, and
    neither may a check or a ``check_form`` hook (see :func:`gateway.hookspecs.check_form`).
    """
    kept: dict[int, tuple[weakref.ref[VerifiedPackage], etree._Element, T]] = {}

    @functools.wraps(read)
    def read_once(context: FormContext) -> T:
        package, form = context.package, context.form
        key = id(package)
        entry = kept.get(key)
        if entry is not None and entry[0]() is package and entry[1] is form:
            return entry[2]
        result = read(context)
        try:
            package_ref = weakref.ref(package, lambda _: kept.pop(key, None))
        except TypeError:  # not weakly referable (a test double): read each time
            return result
        kept[key] = (package_ref, form, result)
        return result

    return read_once


# --------------------------------------------------------------------------- helpers for checks


def element_path(elem: etree._Element) -> str:
    """Readable location: local names, ``[n]`` (1-based) only where a name repeats.

    E.g. ``/認定請求書/児童[2]/個人番号``.
    """
    steps: list[str] = []
    node: etree._Element | None = elem
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent if s.tag == node.tag]
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def problem_at(elem: etree._Element, message: str, code: str) -> Problem:
    """A problem located at ``elem`` (its path and source line)."""
    return Problem(path=element_path(elem), line=elem.sourceline, message=message, code=code)


def reference_date(context: FormContext) -> dt.date:
    """The day rules judge "today" by: the application's 申請日時 in JST, else today in JST."""
    applied = context.package.manifest.applied_at
    if applied is not None:
        return (applied if applied.tzinfo else applied.replace(tzinfo=JST)).astimezone(JST).date()
    return dt.datetime.now(JST).date()


def has_attachment(context: FormContext, *keywords: str) -> bool:
    """Whether an attachment's 添付書類名称 contains every keyword (NFKC-normalised).

    Titles vary between portals (``健康保険の資格確認書類`` / ``健康保険の資格を確認できる書類``),
    so rules match on keywords rather than one exact title.
    """
    wanted = [unicodedata.normalize("NFKC", k) for k in keywords]
    for attachment in context.package.manifest.attachments:
        title = unicodedata.normalize("NFKC", attachment.title)
        if all(k in title for k in wanted):
            return True
    return False


def date_problem(elem: etree._Element, *, today: dt.date, register_form: bool = False,
                 parse: Callable[[str], JapaneseDate] = parse_date) -> Problem | None:
    """Check a date item (Western or 和暦): a real day, within its era, not after ``today``.

    A date before 明治6年1月1日 (1873-01-01, :data:`~gateway.wareki.GREGORIAN_START`) written
    in Western form (``1800-01-01``) is refused too (``rule-date-era``), register form or not:
    Japan's Gregorian calendar and the eras the targets write begin that day, so no era can
    express it (the transform could not write its 和暦), and the register keeps earlier days in
    the lunisolar 和暦 (``明治5年12月2日``), never as Western dates.

    :param register_form: The date is as the resident register records it (birth dates):
        unknown, partial, lunar and non-calendar dates are then accepted, because the public
        record may legitimately hold them; only out-of-era, pre-1873 Western and unreadable
        text are refused.
    :param parse: :func:`~gateway.wareki.parse_date`, or the package's :class:`Dates`.
    """
    parsed = parse(elem.text or "")
    precision, value = parsed.precision, parsed.value
    if precision is _DAY:  # the common case, first: only the future and the pre-Gregorian are left
        if value > today:
            return _date_problem(elem, parsed, "rule-date-future")
        return _date_problem(elem, parsed, _BEFORE_ERAS) if value < GREGORIAN_START else None
    if precision is _OUT_OF_ERA:
        return _date_problem(elem, parsed, "rule-date-era")
    if precision is _UNRECOGNISED or (not register_form and precision in _NOT_CALENDAR_DAYS):
        return _date_problem(elem, parsed, "rule-date-invalid")
    if not register_form:  # not exact (only a DAY is)
        return _date_problem(elem, parsed, "rule-date-incomplete")
    if parsed.era is None and parsed.year and parsed.year < GREGORIAN_START.year:
        # A partial Western date wholly before 1873 (``18500000``: 00 marks an unknown part).
        # Year 0 (``00000000``) is no year at all: a non-calendar date, accepted as before.
        return _date_problem(elem, parsed, _BEFORE_ERAS)
    if parsed.year and parsed.year > today.year:
        return _date_problem(elem, parsed, "rule-date-future")
    return None


_DAY, _OUT_OF_ERA, _UNRECOGNISED = Precision.DAY, Precision.OUT_OF_ERA, Precision.UNRECOGNISED
_NOT_CALENDAR_DAYS = (Precision.NOT_A_DATE, Precision.LUNAR)
_BEFORE_ERAS = "rule-date-era", "before-gregorian"
"""The code and message key of a day before 1873-01-01: outside the era system, as out-of-era dates are."""
_DATE_MESSAGES = {
    _BEFORE_ERAS: "{name}「{shown}」は明治6年1月1日（1873年1月1日）より前の日付です。"
                  "太陽暦の施行前の日付は和暦に換算できないため受け付けられません",
    "rule-date-era": "{name}「{shown}」はその元号の期間外の日付です（例: 平成31年5月1日は令和元年5月1日と書きます）",
    "rule-date-invalid": "{name}「{shown}」は暦にない日付です",
    "rule-date-incomplete": "{name} は年月日まで記入してください",
    "rule-date-future": "{name}「{shown}」が未来の日付です",
}


def _date_problem(elem: etree._Element, parsed: JapaneseDate, kind: str | tuple[str, str]) -> Problem:
    """``kind``: a code, or ``(code, message key)`` where one code has several messages."""
    message = _DATE_MESSAGES[kind].format(name=etree.QName(elem).localname, shown=parsed.original.strip())
    return problem_at(elem, message, kind if isinstance(kind, str) else kind[0])
