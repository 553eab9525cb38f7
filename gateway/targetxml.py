"""Building a procedure's target record: the pieces every transform shares.

A transform reads a schema-valid form and writes the target core system's XML with plain
lxml, one pass, no template language (XSLT, Jinja) and no re-parsing (it runs once per
application). What every
target format has in common lives here, so each procedure's ``target.py`` says only what is
its own::

    xml = TargetBuilder(TARGET_NAMESPACE, FORM_NAMESPACE)

    def transform(context: FormContext) -> TargetRecord:
        claim = read_claim(context)  # the form as the checks read it (once_per_package)
        root = xml.root("児童手当認定請求データ")
        xml.add_management(root, context)
        claimant = texts_of(claim.claimant)  # or xml.items(block) for a block not read yet
        block = xml.add(root, "請求者")
        xml.copy(block, claimant, "氏名", ("フリガナ", "氏名カナ"))
        xml.add_date(block, "生年月日", claimant["生年月日"], claim.dates)
        ...
        xml.add_attachments(root, context)
        return xml.record(root, context, target=TARGET, schema=TARGET_SCHEMA)

The common blocks follow the gateway's target formats (``schemas/targets/*``): ``管理情報``
from the manifest first, ``添付書類一覧`` last, and every date as a ``日付型`` block.

A record has some seventy elements and every accepted application makes one. Creating an
element in a namespace costs lxml more than a microsecond (the name is split and checked, the
namespace looked up), so the builder makes each run of elements it adds
(:meth:`TargetBuilder.add_all`, a date block, a copied block, the root) as one C-level copy of
an empty tree of that run's names (a "template"), made on first use and kept per thread: about
a third of a transform's cost less. The API stays element by element: what a method returns is
an ordinary element of the record. And :meth:`TargetBuilder.record` keeps the tree with the
bytes (:class:`BuiltRecord`) for the target schema to check the tree itself rather than the
bytes parsed back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway.models import FormContext, TargetRecord
from gateway.wareki import JapaneseDate, parse_date

SEX_CODES = {"男": "1", "女": "2"}
"""性別 as the 住民基本台帳 codes it (1 男, 2 女)."""

Item = str | tuple[str, str]
"""A form item to copy: its name, or ``(form name, target name)`` when the target renames it."""


def _pair(item: Item) -> tuple[str, str]:
    return (item, item) if isinstance(item, str) else item


TEMPLATES_PER_THREAD = 512
"""Shapes of runs and blocks kept as templates, per builder and thread. Their names come from the
transform's code (which optional items a form has picks among a few), so a procedure needs a few
dozen; past the limit a shape is still copied from a template, made for that call."""


@dataclass(frozen=True)
class BuiltRecord(TargetRecord):
    """A record made by :meth:`TargetBuilder.record`, with the tree its bytes were serialised from.

    The pipeline checks every record against its target schema
    (:func:`gateway.validation.validate_target`); with the tree at hand it validates the tree
    itself instead of parsing the bytes back (~40 µs a record). The bytes are exactly
    ``etree.tostring(tree)``: the transform hands the record on and never changes the tree again.
    """

    tree: etree._Element | None = field(default=None, repr=False, compare=False)


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
        self._per_thread = threading.local()
        self._pairs: dict[tuple[Item, ...], tuple[tuple[str, str], ...]] = {}

    # ------------------------------------------------------------------ templates

    def _templates(self) -> dict[object, etree._Element]:
        try:
            return self._per_thread.templates  # type: ignore[no-any-return]
        except AttributeError:
            # Per thread: a template is only read (copied), but lxml trees are best not shared
            # between threads at all, and a few dozen small trees per thread are cheap.
            templates: dict[object, etree._Element] = {}
            self._per_thread.templates = templates
            return templates

    def _block(self, name: str | None, names: tuple[str, ...], attribute: str | None = None) -> etree._Element:
        """A new element ``name`` (with ``attribute``, empty) holding new empty elements ``names``,
        all in the target namespace and not yet in the record: the caller fills and appends it.

        ``name`` None: a wrapper whose children are a run for the caller to move into a parent.
        Either way it is a copy of the template kept for this thread and key (one libxml2 call).
        """
        key = (name, names, attribute)
        templates = self._templates()
        template = templates.get(key)
        if template is None:
            target = self._target
            template = etree.Element(target + "_", nsmap={None: self.target_namespace})
            block = template if name is None else etree.SubElement(
                template, target + name, None if attribute is None else {attribute: ""})
            for child in names:
                etree.SubElement(block, target + child)
            if len(templates) < TEMPLATES_PER_THREAD:
                templates[key] = template
        # lxml's copy of an element is deep (copy.deepcopy calls it, through a memo we need not).
        copied = template.__copy__()
        return copied if name is None else copied[0]

    # The copies above are children of a wrapper that declares the target namespace as default.
    # Moved (append/extend) under an element of a record whose root declares it too (root()),
    # they declare nothing of their own: the bytes are those of elements made in place with
    # etree.SubElement. Under another parent lxml reconciles the namespace as it does for a new
    # element (tests/test_targetxml.py compares both ways of building, bytes for bytes).

    # ------------------------------------------------------------------ elements

    def root(self, name: str, version: str = "1") -> etree._Element:
        """The record's root, the target namespace as default, its format version in ``版``."""
        # A copy of a template root (the same element, made once per thread) is a new document's root.
        templates = self._templates()
        template = templates.get(name)
        if template is None:
            template = etree.Element(self._target + name, {"版": ""}, nsmap={None: self.target_namespace})
            if len(templates) < TEMPLATES_PER_THREAD:
                templates[name] = template
        root = template.__copy__()
        root.set("版", version)
        return root

    def add(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        """A child element of ``parent`` in the target namespace, with ``text`` if given."""
        elem = etree.SubElement(parent, self._target + name)
        if text is not None:
            elem.text = text
        return elem

    def add_all(self, parent: etree._Element, items: Iterable[tuple[str, str]]) -> None:
        """:meth:`add` for each ``(name, text)`` of ``items``, in this order."""
        items = tuple(items)
        if items:
            run = list(self._block(None, tuple([name for name, _ in items])))
            for elem, (_, text) in zip(run, items):
                elem.text = text
            parent.extend(run)

    def items(self, block: etree._Element | None) -> dict[str, str]:
        """A form block's child items as ``{local name: stripped text}``: one pass, no path lookups.

        ``{}`` when the block is absent. Children are assumed in the form namespace (the
        schema guaranteed it); comments and processing instructions are skipped.
        """
        if block is None:
            return {}
        cut = len(self._form)
        # iterchildren(etree.Element) skips the others in C: each .tag is a new string, made once.
        return {child.tag[cut:]: (child.text or "").strip() for child in block.iterchildren(etree.Element)}

    def _present(self, values: dict[str, str], names: tuple[Item, ...]) -> list[tuple[str, str]]:
        """``(target name, value)`` of the items ``names`` that ``values`` has, in this order."""
        pairs = self._pairs.get(names)
        if pairs is None:  # ``names`` are the transform's own literals: a handful per procedure
            pairs = tuple(map(_pair, names))
            if len(self._pairs) < TEMPLATES_PER_THREAD:
                self._pairs[names] = pairs
        return [(target_name, value) for form_name, target_name in pairs
                if (value := values.get(form_name)) is not None]

    def copy(self, parent: etree._Element, values: dict[str, str], *names: Item) -> None:
        """Copy the optional items ``names`` (in this order) that the form has, from :meth:`items`."""
        self.add_all(parent, self._present(values, names))

    def copy_block(self, parent: etree._Element, form_parent: etree._Element, name: str, *names: Item,
                   as_name: str | None = None) -> etree._Element | None:
        """Copy the optional block ``name`` of ``form_parent`` (as ``as_name`` if given) with the
        items :meth:`copy` takes; nothing when the form has no such block."""
        block = form_parent.find(self._form + name)
        return self.add_block(parent, name, None if block is None else self.items(block), *names, as_name=as_name)

    def add_block(self, parent: etree._Element, name: str, values: dict[str, str] | None, *names: Item,
                  as_name: str | None = None) -> etree._Element | None:
        """:meth:`copy_block` for a block already read: ``values`` as :meth:`items` gives them,
        None when the form has no such block (then nothing is added)."""
        if values is None:
            return None
        return self._add_block(parent, as_name or name, self._present(values, names))

    def _add_block(self, parent: etree._Element, name: str, items: list[tuple[str, str]],
                   attribute: tuple[str, str] | None = None) -> etree._Element:
        """A new block ``name`` holding ``items`` (``(name, text)``), with ``attribute`` if given."""
        block = self._block(name, tuple([item for item, _ in items]), attribute and attribute[0])
        if attribute is not None:
            block.set(*attribute)
        for elem, (_, text) in zip(block, items):
            elem.text = text
        parent.append(block)
        return block

    # ------------------------------------------------------------------ common blocks

    def add_date(self, parent: etree._Element, name: str, written: str,
                 parse: Callable[[str], JapaneseDate] = parse_date) -> etree._Element:
        """A ``日付型`` block: ``原文`` always; ``西暦`` (YYYYMMDD) and ``和暦`` (era code + YYMMDD)
        only when the day is exactly known; ``精度`` says how much of it is.

        ``parse``: :func:`~gateway.wareki.parse_date`, or the package's
        :class:`gateway.validation.Dates` (which the rules have read the dates with already).
        """
        parsed = parse(written)
        items = [("原文", written.strip())]
        if parsed.value is not None:
            items += [("西暦", parsed.western()), ("和暦", parsed.era_code_yymmdd())]
        return self._add_block(parent, name, items, ("精度", parsed.precision.value))

    def add_management(self, root: etree._Element, context: FormContext) -> etree._Element:
        """``管理情報`` from the signed manifest, and whether the signature vouches for the applicant."""
        manifest = context.package.manifest
        items = [("到達番号", manifest.arrival_number), ("受付団体コード", manifest.municipality_code),
                 ("手続コード", manifest.procedure_code), ("様式バージョン", manifest.form_version),
                 ("申請種別", manifest.application_kind)]
        if manifest.original_arrival_number:
            items.append(("初回到達番号", manifest.original_arrival_number))
        if manifest.applied_at is not None:
            items.append(("申請日時", manifest.applied_at.isoformat()))
        items.append(("本人確認", "電子署名" if context.package.signed else "要本人確認"))
        return self._add_block(root, "管理情報", items)

    def add_attachments(self, root: etree._Element, context: FormContext) -> etree._Element:
        """``添付書類一覧``: every attachment of the manifest (名称, ファイル名, メディア型) and ``件数``."""
        attachments = context.package.manifest.attachments
        listing = self._add_block(root, "添付書類一覧", [("添付書類", None)] * len(attachments),
                                  ("件数", str(len(attachments))))
        for entry, attachment in zip(listing, attachments):
            self.add_all(entry, (
                ("名称", attachment.title), ("ファイル名", attachment.filename), ("メディア型", attachment.media_type)))
        return listing

    # ------------------------------------------------------------------ the result

    def record(self, root: etree._Element, context: FormContext, *, target: str,
               schema: Path | None) -> BuiltRecord:
        """The finished record: UTF-8 XML named ``{到達番号}_{手続コード}.xml``.

        The last step of a transform: ``root`` must not change afterwards (see :class:`BuiltRecord`).
        """
        manifest = context.package.manifest
        return BuiltRecord(
            content=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
            media_type="application/xml",
            filename=f"{manifest.arrival_number}_{manifest.procedure_code}.xml",
            target=target,
            schema=schema,
            tree=root,
        )
