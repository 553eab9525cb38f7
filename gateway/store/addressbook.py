"""The 宛名番号 table: which resident signed, by the signing certificate's serial number.

``jpki-profile.md``: the resident-registry system keeps a table of signing-certificate serials
and 宛名番号; serials are unique only per issuing key, so the key is (issuer key identifier,
serial). The gateway imports that table whole (:meth:`AddressBook.import_file`, ``gateway
applicants import``) and probes it once per package (:meth:`AddressBook.lookup`, one
primary-key lookup).

The CSV (``docs/configuration.md``, ``ADDRESS_BOOK``):

* a header row naming the columns, in any order; other columns are ignored:
  ``発行者鍵識別子`` (or ``issuer_key_id``), ``シリアル番号`` (``serial``), ``宛名番号``
  (``address_number``);
* 発行者鍵識別子: the issuing root's key identifier (the certificate's authorityKeyIdentifier)
  in hex, colons and spaces allowed;
* シリアル番号: **hex** by default, as ``openssl x509 -serial`` and the gateway's own evidence
  print it (``0x`` prefix, colons and spaces allowed); ``SERIAL_FORMAT = "decimal"`` for a
  registry that exports decimal. A number never changes meaning silently: the format is one
  setting (or ``--serial-format``) for the whole file, never guessed per row;
* 宛名番号: digits (full-width digits are accepted), check digit only with ``CHECK_DIGIT``;
* UTF-8 (a BOM is fine) unless ``ENCODING`` says otherwise (``cp932``); blank lines are skipped;
  the same key twice with the same 宛名番号 is taken once, with another 宛名番号 it is an error.

Nothing is imported unless every row is valid: the errors come back as
:class:`AddressBookError` with one Japanese message per line (``3行目: …``). A re-import
replaces every entry in one transaction; a lookup running meanwhile sees the old table or the
new one, never a mix. Messages and logs never repeat a serial or a 宛名番号.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gateway.errors import GatewayError, Problem
from gateway.identifiers import check_atena_number
from gateway.store import engine as engines
from gateway.store.lifecycle import new_id
from gateway.store.prepared import Prepared
from gateway.store.schema import address_book, address_book_imports

COLUMNS = {"issuer_key_id": ("発行者鍵識別子", "issuer_key_id"), "serial": ("シリアル番号", "serial"),
           "address_number": ("宛名番号", "address_number")}
SERIAL_FORMATS = ("hex", "decimal")
MAX_SERIAL_BITS = 160  # RFC 5280: at most 20 octets
MAX_ADDRESS_NUMBER = 32
MAX_PROBLEMS = 100
_CHUNK = 5000
_HEX = re.compile(r"[0-9a-f]+")


class AddressBookError(GatewayError):
    """The table cannot be imported; ``problems`` has one entry per bad line. Nothing changed."""

    code = "address-book-invalid"
    status = 422
    title = "宛名番号対応表を取り込めません"


@dataclass(frozen=True)
class Settings:
    """``ADDRESS_BOOK`` in the configuration."""

    csv: str = ""
    serial_format: str = "hex"
    encoding: str = "utf-8"
    check_digit: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        section = config.get("ADDRESS_BOOK") or {}
        settings = cls(csv=str(section.get("CSV") or ""), serial_format=str(section.get("SERIAL_FORMAT", "hex")),
                       encoding=str(section.get("ENCODING") or "utf-8"),
                       check_digit=bool(section.get("CHECK_DIGIT", False)))
        if settings.serial_format not in SERIAL_FORMATS:
            raise ValueError(f"ADDRESS_BOOK.SERIAL_FORMAT は hex か decimal です: {settings.serial_format!r}")
        return settings


@dataclass(frozen=True)
class Entry:
    """One signer found in the table."""

    address_number: str
    import_id: int
    imported_at: dt.datetime


@dataclass(frozen=True)
class ImportInfo:
    """One import of the table (the latest one is in force)."""

    import_id: int
    imported_at: dt.datetime
    source: str
    sha256: str
    rows: int
    actor: str
    unchanged: bool = False
    """True when ``if_changed`` found the same file already in force (nothing was done)."""
    ignored_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedTable:
    rows: tuple[tuple[str, str, str], ...]
    """(issuer key id hex, serial hex, 宛名番号), in file order, duplicates removed."""
    ignored_columns: tuple[str, ...] = ()


def key_of(issuer_key_id: bytes | str, serial: int) -> tuple[str, str]:
    """The table's key for a certificate: lower-case hex without separators or leading zeros."""
    kid = issuer_key_id.hex() if isinstance(issuer_key_id, bytes) else issuer_key_id.replace(":", "").lower()
    return kid, format(serial, "x")


# --------------------------------------------------------------------------- parsing


def parse_csv(data: bytes, settings: Settings = Settings()) -> ParsedTable:
    """Validate the whole file; :raises AddressBookError: listing every bad line (up to 100)."""
    text = _decode(data, settings.encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Problem] = []  # the first MAX_PROBLEMS; bad_lines counts them all
    bad_lines = 0

    def report(line: int, message: str) -> None:
        nonlocal bad_lines
        bad_lines += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(_problem(line, message))

    header_line, header = _header(reader)
    index = _columns(header, header_line)
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    rows: list[tuple[str, str, str]] = []
    line = reader.line_num
    for record in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) < len(header):
            report(start, f"列が足りません（{len(header)}列必要、{len(record)}列です）")
            continue
        cells = {name: unicodedata.normalize("NFKC", record[i]).strip() for name, i in index.items()}
        kid, serial = _issuer(cells["issuer_key_id"]), _serial(cells["serial"], settings.serial_format)
        number = _address_number(cells["address_number"], settings.check_digit)
        if isinstance(kid, _Bad) or isinstance(serial, _Bad) or isinstance(number, _Bad):
            report(start, "、".join(v.message for v in (kid, serial, number) if isinstance(v, _Bad)))
            continue
        key = (kid, serial)
        if key in seen:
            earlier_number, earlier_line = seen[key]
            if earlier_number != number:
                report(start, f"発行者鍵識別子とシリアル番号の組が {earlier_line}行目と同じで、宛名番号が異なります")
            continue
        seen[key] = (number, start)
        rows.append((kid, serial, number))
    if bad_lines:
        more = f"（最初の {len(problems)} 行を示します）" if bad_lines > len(problems) else ""
        raise AddressBookError(f"{bad_lines} 行に誤りがあります。何も取り込んでいません{more}", problems=problems)
    ignored = tuple(name for i, name in enumerate(header) if i not in index.values())
    return ParsedTable(tuple(rows), ignored)


class _Bad:
    def __init__(self, message: str) -> None:
        self.message = message


def _problem(line: int, message: str) -> Problem:
    return Problem(path=f"{line}行目", message=f"{line}行目: {message}", line=line, code="address-book-row")


def _fail(line: int, message: str) -> AddressBookError:
    return AddressBookError(f"{line}行目: {message}", problems=[_problem(line, message)])


def _decode(data: bytes, encoding: str) -> str:
    try:
        text = data.decode("utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as exc:
        raise _fail(data[:exc.start].count(b"\n") + 1, f"文字コード {encoding} として読めません") from exc
    except LookupError as exc:
        raise AddressBookError(f"ADDRESS_BOOK.ENCODING の文字コードが不明です: {encoding}") from exc
    return text


def _header(reader: Any) -> tuple[int, list[str]]:
    """The first non-blank row and its line number (``reader`` is a :func:`csv.reader`)."""
    for record in reader:
        if any(cell.strip() for cell in record):
            return reader.line_num, [unicodedata.normalize("NFKC", c).strip() for c in record]
    raise AddressBookError("宛名番号対応表が空です（見出し行もありません）")


def _columns(header: list[str], line: int) -> dict[str, int]:
    index: dict[str, int] = {}
    for name, aliases in COLUMNS.items():
        found = [i for i, cell in enumerate(header) if cell.lower() in aliases]
        if not found:
            raise _fail(line, f"見出し行に「{aliases[0]}」（または {aliases[1]}）の列がありません")
        if len(found) > 1:
            raise _fail(line, f"見出し行に「{aliases[0]}」の列が複数あります")
        index[name] = found[0]
    return index


def _issuer(cell: str) -> str | _Bad:
    value = re.sub(r"[:\s]", "", cell).lower()
    if not value:
        return _Bad("発行者鍵識別子が空です")
    if not _HEX.fullmatch(value) or len(value) % 2 or len(value) > 64:
        return _Bad("発行者鍵識別子は16進数（最大32バイト）で書いてください")
    return value


def _serial(cell: str, serial_format: str) -> str | _Bad:
    if not cell:
        return _Bad("シリアル番号が空です")
    if serial_format == "decimal":
        if not (cell.isascii() and cell.isdigit()):
            return _Bad("シリアル番号は10進数で書いてください（SERIAL_FORMAT = decimal）")
        number = int(cell)
    else:
        value = re.sub(r"[:\s]", "", cell).lower().removeprefix("0x")
        if not _HEX.fullmatch(value):
            return _Bad("シリアル番号は16進数で書いてください（SERIAL_FORMAT = hex）")
        number = int(value, 16)
    if number <= 0 or number.bit_length() > MAX_SERIAL_BITS:
        return _Bad("シリアル番号は20バイト以下の正の整数です")
    return format(number, "x")


def _address_number(cell: str, check_digit: bool) -> str | _Bad:
    if not cell:
        return _Bad("宛名番号が空です")
    if len(cell) > MAX_ADDRESS_NUMBER or not check_atena_number(cell, check_digit=False):
        return _Bad(f"宛名番号は{MAX_ADDRESS_NUMBER}桁以下の数字です")
    if check_digit and not check_atena_number(cell, check_digit=True):
        return _Bad("宛名番号の検査用数字が一致しません")
    return cell


# --------------------------------------------------------------------------- the table


# Once per package: prepared (see gateway.store.prepared), one primary-key probe on the DBAPI cursor.
_LOOKUP = Prepared(
    sa.select(address_book.c.address_number, address_book.c.import_id, address_book_imports.c.imported_at)
    .join(address_book_imports, address_book_imports.c.id == address_book.c.import_id)
    .where(address_book.c.issuer_key_id == sa.bindparam("kid"), address_book.c.serial == sa.bindparam("serial")))
_LATEST = sa.select(address_book_imports).order_by(address_book_imports.c.id.desc()).limit(1)


class AddressBook:
    """Reads and replaces the table; share one per process (it holds only the engine)."""

    def __init__(self, engine: sa.Engine, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def lookup(self, issuer_key_id: bytes | str, serial: int) -> Entry | None:
        """The 宛名番号 of the certificate (issuer key identifier, serial), or None."""
        kid, hex_serial = key_of(issuer_key_id, serial)
        # One statement sees one state of the table (the old one or the new one), so it needs no
        # transaction of its own: BEGIN and COMMIT would cost more than the probe.
        with self.engine.connect() as conn:
            row = _LOOKUP.first(conn, {"kid": kid, "serial": hex_serial})
        return None if row is None else Entry(row["address_number"], row["import_id"], row["imported_at"])

    def latest_import(self) -> ImportInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(_LATEST).mappings().first()
        return None if row is None else _info(row)

    def replace(self, table: ParsedTable, *, source: str, sha256: str, actor: str = "system",
                progress: Callable[[int], None] | None = None) -> ImportInfo:
        """Replace every entry by ``table`` in one transaction and record the import."""
        at = self.clock()
        with self.engine.connect() as conn:
            conn.execution_options(**{engines.WRITE: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # One importer at a time; plain reads (lookups) are not blocked.
                    conn.exec_driver_sql("LOCK TABLE address_book IN EXCLUSIVE MODE")
                import_id = new_id(conn.execute(address_book_imports.insert(), {
                    "imported_at": at, "source": source[:512], "sha256": sha256,
                    "row_count": len(table.rows), "actor": actor[:128]}))
                conn.execute(address_book.delete())
                for start in range(0, len(table.rows), _CHUNK):
                    chunk = table.rows[start:start + _CHUNK]
                    conn.execute(address_book.insert(), [
                        {"issuer_key_id": kid, "serial": serial, "address_number": number, "import_id": import_id}
                        for kid, serial, number in chunk])
                    if progress:
                        progress(len(chunk))
        return ImportInfo(import_id, at, source, sha256, len(table.rows), actor,
                          ignored_columns=table.ignored_columns)

    def import_file(self, path: str | Path, settings: Settings = Settings(), *, actor: str = "system",
                    if_changed: bool = False, progress: Callable[[int], None] | None = None,
                    on_parsed: Callable[[ParsedTable], None] | None = None) -> ImportInfo:
        """Validate and import a CSV file; with ``if_changed`` nothing happens when the latest
        import was of the same bytes read the same way (for a start-up or periodic re-read of
        ``ADDRESS_BOOK.CSV``).

        :raises AddressBookError: the file is unreadable or invalid (nothing changed).
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AddressBookError(f"宛名番号対応表を読めません: {path} ({exc.strerror})") from exc
        # The same bytes read with another serial format, encoding or check-digit rule are another
        # table: the fingerprint covers how the file is read, so a changed setting re-imports.
        reading = f"{settings.serial_format}|{settings.encoding}|{settings.check_digit}|".encode()
        sha256 = hashlib.sha256(reading + data).hexdigest()
        if if_changed and (latest := self.latest_import()) is not None and latest.sha256 == sha256:
            return ImportInfo(latest.import_id, latest.imported_at, latest.source, latest.sha256, latest.rows,
                              latest.actor, unchanged=True)
        table = parse_csv(data, settings)
        if on_parsed:
            on_parsed(table)
        return self.replace(table, source=str(path), sha256=sha256, actor=actor, progress=progress)


def _info(row: Mapping[str, Any]) -> ImportInfo:
    return ImportInfo(row["id"], row["imported_at"], row["source"], row["sha256"], row["row_count"], row["actor"])


__all__ = ["AddressBook", "AddressBookError", "Entry", "ImportInfo", "ParsedTable", "Settings", "key_of",
           "parse_csv"]
