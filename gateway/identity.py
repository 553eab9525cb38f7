"""Who signed: the certificate's basic facts against what the applicant wrote, and the 宛名番号.

:func:`identify` runs once per signed package after the form is parsed. It never refuses: a
difference between the card's 基本4情報 and the manifest's 申請者情報 or the form's applicant
block is a **flag for staff** (``基本4情報不一致``), listing the fields that differ and never
their values; a signer missing from the 宛名番号 table is flagged ``宛名未特定``. What counts as
"the same" is :mod:`gateway.normalisation`.

Where a procedure's form holds the signer's own facts is the procedure's business: it declares
:class:`ApplicantFields` (paths from the form root, ``f:`` is the form's namespace) or, when it
depends on the form (the insured person or a family member filing for them), a function from
the parsed form to :class:`DeclaredFacts`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from lxml import etree

from gateway.basicfacts import BasicFacts, BasicFactsError, read_basic_facts
from gateway.models import (
    Applicant,
    CertificateInfo,
    FormContext,
    Manifest,
    Procedure,
    VerifiedPackage,
)
from gateway.normalisation import (
    NO_VARIANTS,
    Folding,
    Outcome,
    compare_birth,
    compare_sex,
    folding,
)

if TYPE_CHECKING:
    from gateway.store import Store
    from gateway.store.addressbook import Entry

log = logging.getLogger(__name__)

FLAG_FACTS_MISMATCH = "基本4情報不一致"
FLAG_FACTS_MISMATCH_SUBSTITUTE = "基本4情報不一致（代替文字）"
"""A field where the card used 代替文字 differs (most likely that character); beside
:data:`FLAG_FACTS_MISMATCH` when fields without substitutes differ too."""
FLAG_FACTS_UNREADABLE = "基本4情報読取不可"
FLAG_ADDRESS_NUMBER_UNKNOWN = "宛名未特定"
FLAGS = (FLAG_FACTS_MISMATCH, FLAG_FACTS_MISMATCH_SUBSTITUTE, FLAG_FACTS_UNREADABLE, FLAG_ADDRESS_NUMBER_UNKNOWN)
SOURCE_MANIFEST = "申請者情報"
SOURCE_FORM = "申請書"
FACTS = ("氏名", "性別", "生年月日", "住所")
# Looking a member up on an Enum class costs ~0.2 µs, and _compare does it per fact and place.
_NOT_COMPARED, _MISMATCH, _MISMATCH_SUBSTITUTE = Outcome.NOT_COMPARED, Outcome.MISMATCH, Outcome.MISMATCH_SUBSTITUTE


@dataclass(frozen=True, slots=True)
class DeclaredFacts:
    """What the applicant wrote about themself in one place; None where that place has no such field."""

    source: str
    """``申請者情報`` (the manifest) or ``申請書`` (the form)."""
    name: str | None = field(default=None, repr=False)
    sex: str | None = field(default=None, repr=False)
    birth: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    paths: Mapping[str, str] = field(default_factory=dict)
    """Fact (``氏名`` …) → where it is in the form, for staff: ``請求者/氏名``."""


@dataclass(frozen=True)
class ApplicantFields:
    """Where the signer's own facts are in a procedure's form: paths from the form's root element,
    ``f:`` standing for the form's namespace, e.g. ``ApplicantFields(name="f:請求者/f:氏名", …)``.
    A fact the form does not ask for stays None and is not compared."""

    name: str | None = None
    sex: str | None = None
    birth: str | None = None
    address: str | None = None

    def extract(self, form: etree._Element) -> DeclaredFacts:
        tag = form.tag  # "{namespace}name", as etree.QName(form) reads it
        namespace = tag[1:tag.index("}")] if tag[:1] == "{" else ""
        steps, paths = _plan(self, namespace)
        found: dict[str, str | None] = {}
        blocks: dict[tuple[str, ...], dict[str, etree._Element]] = {}
        for attr, path, parent, leaf in steps:
            if leaf is None:
                node = form.find(path, {"f": namespace})
            else:
                children = blocks.get(parent)
                if children is None:  # the block's children are listed once for all its facts
                    block = _first(form, parent) if parent else form
                    children = blocks[parent] = {} if block is None else _first_children(block)
                node = children.get(leaf)
                if node is None and parent:  # a later block of that name may hold it
                    node = _first(form, (*parent, leaf))
            found[attr] = None if node is None else (node.text or "")
        return DeclaredFacts(SOURCE_FORM, paths=paths, **found)


_CHILD_STEP = re.compile(r"f:[^\W\d]\w*")
_Step = tuple[str, str, tuple[str, ...], "str | None"]


@functools.lru_cache(maxsize=256)
def _plan(fields: ApplicantFields, namespace: str) -> tuple[tuple[_Step, ...], Mapping[str, str]]:
    """(attribute, path, parent, leaf) of each declared fact, and fact → path for staff.

    A path of plain child steps (``f:請求者/f:氏名``) is read as ``form.find`` would (the first
    match in document order), from its parent block's children listed once: ``parent`` and
    ``leaf`` are its steps as Clark names. Any other path has ``leaf`` None and ElementPath
    reads it (``find`` costs four times as much, and the form is read once per package).
    """
    steps: list[_Step] = []
    paths: dict[str, str] = {}
    for attr, fact in (("name", "氏名"), ("sex", "性別"), ("birth", "生年月日"), ("address", "住所")):
        path = getattr(fields, attr)
        if path is None:
            continue
        parts = path.split("/")
        if namespace and all(_CHILD_STEP.fullmatch(part) for part in parts):
            *parent, leaf = (f"{{{namespace}}}{part[2:]}" for part in parts)
            steps.append((attr, path, tuple(parent), leaf))
        else:
            steps.append((attr, path, (), None))
        paths[fact] = path.replace("f:", "")
    return tuple(steps), MappingProxyType(paths)


def _first_children(block: etree._Element) -> dict[str, etree._Element]:
    """``block``'s first child element of each tag (what ``block.find(tag)`` gives), in one pass:
    a tag lookup per fact (``iterchildren(tag)``) costs more than listing a block's children."""
    children: dict[str, etree._Element] = {}
    for child in block.iterchildren(etree.Element):  # elements only, in document order
        children.setdefault(child.tag, child)
    return children


def _first(node: etree._Element, tags: tuple[str, ...]) -> etree._Element | None:
    """What ``node.find("a/b")`` finds: the first match in document order."""
    if len(tags) == 1:
        return next(node.iterchildren(tags[0]), None)
    for child in node.iterchildren(tags[0]):
        found = _first(child, tags[1:])
        if found is not None:
            return found
    return None


ApplicantSource = ApplicantFields | Callable[[etree._Element], "DeclaredFacts | None"]
"""What a procedure declares; a function returns None when the form names no signer facts."""


class AddressNumberLookup(Protocol):
    """:class:`gateway.store.addressbook.AddressBook` or anything that looks up like it."""

    def lookup(self, issuer_key_id: bytes | str, serial: int) -> Entry | None: ...


@dataclass(frozen=True, slots=True)
class FactMismatch:
    """One fact that differs between the card and one place the applicant wrote it."""

    source: str
    fact: str
    substitutes: bool
    """The card used 代替文字 in this fact."""
    path: str = ""

    @property
    def label(self) -> str:
        """``申請書.氏名`` or ``申請書.氏名（代替文字あり）``: what staff and logs see."""
        return f"{self.source}.{self.fact}" + ("（代替文字あり）" if self.substitutes else "")


@dataclass(frozen=True, slots=True)
class IdentityResult:
    """What :func:`identify` found; JSON-safe ``evidence`` holds no personal data."""

    flags: tuple[str, ...] = ()
    address_number: str | None = field(default=None, repr=False)
    """宛名番号 from the table, or None (flagged ``宛名未特定`` when the table was consulted)."""
    mismatches: tuple[FactMismatch, ...] = ()
    evidence: Mapping[str, object] = field(default_factory=dict)
    facts: BasicFacts | None = field(default=None, repr=False)
    """The card's facts, for procedures whose target wants the register's spelling."""

    @property
    def mismatch_labels(self) -> tuple[str, ...]:
        """``("申請書.住所", "申請者情報.氏名（代替文字あり）")``: for the history reason and the console."""
        return tuple(m.label for m in self.mismatches)


def identify(signer: x509.Certificate | CertificateInfo | None, manifest: Manifest,
             form: etree._Element | None = None, *, applicant_fields: ApplicantSource | None = None,
             address_book: AddressNumberLookup | None = None,
             variants: Mapping[str, str] = NO_VARIANTS, rules: Folding | None = None) -> IdentityResult:
    """Compare the signer's basic facts with the manifest and the form, and find the 宛名番号.

    :param signer: the verified signing certificate; None for an unsigned package (nothing to
        do: verification already flagged it 要本人確認).
    :param form: the parsed form (root element), compared through ``applicant_fields``.
    :param address_book: None skips the lookup (no flag); otherwise a signer not in the table
        is flagged 宛名未特定.
    :param variants: extra kanji folding pairs (``IDENTITY.KANJI_VARIANTS``).
    :param rules: the folding made from ``variants`` (:class:`Identity` makes it once).
    """
    if signer is None:
        return IdentityResult(evidence={"signed": False})
    flags: list[str] = []
    evidence: dict[str, object] = {"signed": True}
    mismatches: tuple[FactMismatch, ...] = ()
    facts: BasicFacts | None = None
    try:
        facts = read_basic_facts(signer)  # from what path validation decoded, when it ran
    except BasicFactsError as exc:
        flags.append(FLAG_FACTS_UNREADABLE)
        evidence["basic_facts"] = {"read": False, "reason": str(exc)}  # the reason names fields, not values
    if facts is not None:
        declared = [_from_manifest(manifest.applicant), *_from_form(form, applicant_fields, manifest)]
        outcomes, mismatches = _compare(facts, declared, rules or folding(variants))
        evidence["basic_facts"] = {"read": True, "substitutes": list(facts.fields_with_substitutes),
                                   "comparison": outcomes}
        if mismatches:
            if any(not m.substitutes for m in mismatches):
                flags.append(FLAG_FACTS_MISMATCH)
            if any(m.substitutes for m in mismatches):
                flags.append(FLAG_FACTS_MISMATCH_SUBSTITUTE)
            if log.isEnabledFor(logging.INFO):
                log.info("申請 %s: 基本4情報が一致しません: %s", manifest.arrival_number,
                         ", ".join(m.label for m in mismatches))  # field names only, never values
    address_number = None
    if address_book is not None:
        # The root verification chose by signature, when given; else the certificate's own AKI.
        if isinstance(signer, CertificateInfo):
            serial, kid = signer.serial_number, signer.issuer_key_id
            if not kid:
                kid = _aki(x509.load_der_x509_certificate(signer.der))
        else:
            serial, kid = signer.serial_number, _aki(signer)
        address_number, evidence["address_book"] = _lookup(serial, kid, address_book)
        if address_number is None:
            flags.append(FLAG_ADDRESS_NUMBER_UNKNOWN)
            log.info("申請 %s: 宛名番号対応表に署名者の証明書がありません（宛名未特定）", manifest.arrival_number)
    return IdentityResult(tuple(flags), address_number, mismatches, evidence, facts)


_MANIFEST_PATHS: Mapping[str, str] = MappingProxyType({"氏名": "申請者情報/氏名", "住所": "申請者情報/住所"})


def _from_manifest(applicant: Applicant) -> DeclaredFacts:
    return DeclaredFacts(SOURCE_MANIFEST, name=applicant.name, address=applicant.address or None,
                         paths=_MANIFEST_PATHS)


def _from_form(form: etree._Element | None, source: ApplicantSource | None, manifest: Manifest) -> list[DeclaredFacts]:
    if form is None or source is None:
        return []
    try:
        found = source.extract(form) if isinstance(source, ApplicantFields) else source(form)
    except Exception:  # a plugin's extractor must not turn a flag into a refusal
        log.exception("申請 %s: 申請書から申請者の基本4情報を取り出せません（手続の定義の誤り）", manifest.arrival_number)
        return []
    return [] if found is None else [found]


def _compare(facts: BasicFacts, declared: list[DeclaredFacts],
             rules: Folding) -> tuple[dict[str, str], tuple[FactMismatch, ...]]:
    outcomes: dict[str, str] = {}
    mismatches: list[FactMismatch] = []
    # The card's side is folded once per package, however many places declare the facts.
    name = rules.card_name(facts.name, facts.name_substitutes)
    address = rules.card_address(facts.address, facts.address_substitutes)
    birth = facts.birth_date
    for place in declared:
        results = (("氏名", name.compare(place.name)), ("性別", compare_sex(facts.sex, place.sex)),
                   ("生年月日", compare_birth(birth, place.birth)), ("住所", address.compare(place.address)))
        for fact, outcome in results:
            if outcome is _NOT_COMPARED and fact not in place.paths:
                continue  # the place has no such field at all
            outcomes[f"{place.source}.{fact}"] = outcome._value_  # (``.value`` is a slow Enum property)
            if outcome is _MISMATCH or outcome is _MISMATCH_SUBSTITUTE:
                mismatches.append(FactMismatch(place.source, fact, outcome is _MISMATCH_SUBSTITUTE,
                                               place.paths.get(fact, "")))
    return outcomes, tuple(mismatches)


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except (x509.ExtensionNotFound, ValueError):
        return None


def _lookup(serial_number: int, kid: bytes | None,
            address_book: AddressNumberLookup) -> tuple[str | None, dict[str, object]]:
    serial = format(serial_number, "x")
    if not kid:
        return None, {"found": False, "serial": serial, "reason": "発行者鍵識別子がわかりません"}
    entry = address_book.lookup(kid, serial_number)
    evidence: dict[str, object] = {"found": entry is not None, "issuer_key_id": kid.hex(), "serial": serial}
    if entry is None:
        return None, evidence
    evidence.update(import_id=entry.import_id, imported_at=entry.imported_at.isoformat())
    return entry.address_number, evidence


@dataclass(frozen=True)
class Identity:
    """The identity step as the pipeline runs it, with this gateway's table and settings.

    The 宛名番号 table is consulted once it is in use: ``ADDRESS_BOOK.CSV`` is configured (it is
    imported at start-up when it changed) or a table was imported before. Without one, no
    package is flagged 宛名未特定 for a table nobody loaded.
    """

    address_book: AddressNumberLookup | None = None
    variants: Mapping[str, str] = field(default_factory=dict)
    rules: Folding = field(init=False, repr=False, compare=False)
    """The folding for :attr:`variants`, made once (not per package)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", folding(self.variants or NO_VARIANTS))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store: Store) -> Identity:
        from gateway.store.addressbook import AddressBook, Settings

        book, settings = AddressBook(store.engine), Settings.from_config(config)
        if settings.csv:
            info = book.import_file(settings.csv, settings, if_changed=True)
            if not info.unchanged:
                log.info("宛名番号対応表を取り込みました: %s (%d 件)", settings.csv, info.rows)
        in_use = bool(settings.csv) or book.latest_import() is not None
        return cls(address_book=book if in_use else None,
                   variants=dict(config.get("IDENTITY", {}).get("KANJI_VARIANTS") or {}))

    def identify(self, verified: VerifiedPackage, procedure: Procedure, context: FormContext) -> IdentityResult:
        return identify(verified.signer, verified.manifest, context.form, applicant_fields=procedure.applicant_fields,
                        address_book=self.address_book, rules=self.rules)


__all__ = ["FACTS", "FLAGS", "FLAG_ADDRESS_NUMBER_UNKNOWN", "FLAG_FACTS_MISMATCH", "FLAG_FACTS_MISMATCH_SUBSTITUTE",
           "FLAG_FACTS_UNREADABLE", "AddressNumberLookup", "ApplicantFields", "ApplicantSource", "DeclaredFacts",
           "FactMismatch", "Identity", "IdentityResult", "identify"]
