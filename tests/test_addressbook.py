"""The 宛名番号 table: CSV validation, atomic replacement, the per-package lookup, the CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from gateway.cli import main
from gateway.store import Store
from gateway.store.addressbook import AddressBook, AddressBookError, Settings, key_of, parse_csv
from gateway.store.schema import metadata
from tests.e2e_helpers import use_settings
from tests.pg import database_url  # noqa: F401  (fixture)

KID = "3a0f" * 5  # a 20-byte key identifier
HEADER = "発行者鍵識別子,シリアル番号,宛名番号\n"


def csv_bytes(*rows: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return (header + "".join(f"{r}\n" for r in rows)).encode(encoding)


def problems_of(data: bytes, settings: Settings = Settings()) -> list[str]:
    with pytest.raises(AddressBookError) as err:
        parse_csv(data, settings)
    return [p.message for p in err.value.problems]


# --------------------------------------------------------------------------- parsing


def test_a_valid_table():
    table = parse_csv(csv_bytes(f"{KID},1F2E3D,000123", f"{KID.upper()},0x00ab,000124"))
    assert table.rows == ((KID, "1f2e3d", "000123"), (KID, "ab", "000124"))


def test_header_in_english_any_order_extra_columns_bom_and_separators():
    data = "\ufeffaddress_number,氏名,serial,issuer_key_id\n000123,見本　太郎,1f:2e:3d, 3A:0F:3A:0F:3A:0F:3A:0F:3A:0F \n"
    table = parse_csv(data.encode("utf-8"))
    assert table.rows == (("3a0f3a0f3a0f3a0f3a0f", "1f2e3d", "000123"),) and table.ignored_columns == ("氏名",)


def test_decimal_serials_cp932_full_width_digits_blank_lines_and_repeated_rows():
    data = csv_bytes(f"{KID},255,０００１２３", "", f"{KID},255,000123", f"{KID},256,000200", encoding="cp932")
    table = parse_csv(data, Settings(serial_format="decimal", encoding="cp932"))
    assert table.rows == ((KID, "ff", "000123"), (KID, "100", "000200"))


def test_every_bad_line_is_reported_with_its_number_and_no_value():
    data = csv_bytes(
        f"{KID},1f,000123",          # 2: fine
        f"{KID},xyz,000124",         # 3: not hex
        f"{KID},0,000125",           # 4: not positive
        f"{KID[:-1]},20,000126",     # 5: odd-length key id
        f"{KID},21,",                # 6: empty 宛名番号
        f"{KID},22,12-34",           # 7: not digits
        f"{KID},1F,000999",          # 8: same key as line 2, other 宛名番号
        f"{KID},23",                 # 9: a column short
        f'{KID},24,"000\n127"',      # 10-11: a quoted field over two lines, not digits
        f"{KID},{'f' * 41},000128",  # 12: over 20 octets
    )
    messages = problems_of(data)
    assert [m.split("行目")[0] for m in messages] == ["3", "4", "5", "6", "7", "8", "9", "10", "12"]
    assert "16進数" in messages[0] and "正の整数" in messages[1] and "発行者鍵識別子" in messages[2]
    assert "宛名番号が空" in messages[3] and "数字" in messages[4] and "2行目と同じ" in messages[5]
    assert "列が足りません" in messages[6]
    assert not any("xyz" in m or "000999" in m for m in messages)


def test_a_hopeless_file_reports_the_first_hundred_lines():
    messages = problems_of(csv_bytes(*[f"{KID},zz,1"] * 150))
    assert len(messages) == 100 and messages[0].startswith("2行目") and messages[-1].startswith("101行目")
    with pytest.raises(AddressBookError, match="150 行に誤り"):
        parse_csv(csv_bytes(*[f"{KID},zz,1"] * 150))


def test_decimal_format_refuses_hex_digits():
    assert "10進数" in problems_of(csv_bytes(f"{KID},1f,000123"), Settings(serial_format="decimal"))[0]


def test_check_digit_only_when_configured():
    data = csv_bytes(f"{KID},1,12345")
    assert parse_csv(data).rows
    assert "検査用数字" in problems_of(data, Settings(check_digit=True))[0]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "空です"),
    ("シリアル番号,宛名番号\n1,2\n".encode(), "1行目: 見出し行に「発行者鍵識別子」"),
    ("\n\nserial,serial,issuer_key_id,宛名番号\n".encode(), "3行目: 見出し行に「シリアル番号」の列が複数"),
    (HEADER.encode() + b"3a0f,1,\xff\xfe\n", "2行目: 文字コード utf-8 として読めません"),
])
def test_file_level_errors(data, message):
    with pytest.raises(AddressBookError) as err:
        parse_csv(data)
    assert message in err.value.detail


def test_settings_from_config():
    assert Settings.from_config({}) == Settings()
    assert Settings.from_config({"ADDRESS_BOOK": {"SERIAL_FORMAT": "decimal", "CHECK_DIGIT": True}}) == Settings(
        serial_format="decimal", check_digit=True)
    with pytest.raises(ValueError, match="SERIAL_FORMAT"):
        Settings.from_config({"ADDRESS_BOOK": {"SERIAL_FORMAT": "auto"}})


def test_key_of_matches_the_evidence_spelling():
    assert key_of(bytes.fromhex(KID), 0x00AB) == (KID, "ab") == key_of(":".join(["3A:0F"] * 5), 171)


# --------------------------------------------------------------------------- the table


@pytest.fixture
def book(database_url):  # noqa: F811
    store = Store(database_url)
    store.upgrade()
    yield AddressBook(store.engine)
    store.close()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_migrations_build_the_declared_tables(database_url):  # noqa: F811
    store = Store(database_url)
    store.upgrade()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    inspector = sa.inspect(store.engine)
    assert inspector.get_pk_constraint("address_book")["constrained_columns"] == ["issuer_key_id", "serial"]
    store.close()


def test_import_lookup_and_atomic_replacement(book, tmp_path):
    first = book.import_file(write(tmp_path, "a.csv", csv_bytes(f"{KID},1f,000123", f"{KID},20,000124")))
    assert first.rows == 2 and not first.unchanged
    found = book.lookup(bytes.fromhex(KID), 0x1F)
    assert found is not None and found.address_number == "000123" and found.import_id == first.import_id
    assert found.imported_at.tzinfo is not None
    assert book.lookup(bytes.fromhex(KID), 0x21) is None
    assert book.lookup(bytes.fromhex("ff" * 20), 0x1F) is None  # serials are per issuing key

    second = book.import_file(write(tmp_path, "b.csv", csv_bytes(f"{KID},21,000125")))
    assert second.import_id > first.import_id
    assert book.lookup(bytes.fromhex(KID), 0x1F) is None  # replaced, not merged
    assert book.lookup(bytes.fromhex(KID), 0x21).address_number == "000125"
    assert book.latest_import().import_id == second.import_id

    with pytest.raises(AddressBookError):  # an invalid file changes nothing
        book.import_file(write(tmp_path, "c.csv", csv_bytes(f"{KID},22,000126", f"{KID},zz,1")))
    assert book.lookup(bytes.fromhex(KID), 0x21).address_number == "000125"
    assert book.latest_import().import_id == second.import_id


def test_lookups_during_a_reimport_see_the_old_table(book, tmp_path):
    book.import_file(write(tmp_path, "a.csv", csv_bytes(f"{KID},1f,000123")))
    seen_meanwhile = []

    def meanwhile(_rows: int) -> None:  # called inside the import's transaction, before it commits
        seen_meanwhile.append((book.lookup(KID, 0x1F), book.lookup(KID, 0x20)))

    book.import_file(write(tmp_path, "b.csv", csv_bytes(f"{KID},20,000124")), progress=meanwhile)
    assert [(old.address_number, new) for old, new in seen_meanwhile] == [("000123", None)]
    assert book.lookup(KID, 0x1F) is None and book.lookup(KID, 0x20).address_number == "000124"


def test_import_if_changed(book, tmp_path):
    path = write(tmp_path, "a.csv", csv_bytes(f"{KID},1f,000123"))
    first = book.import_file(path, if_changed=True)
    again = book.import_file(path, if_changed=True)
    assert again.unchanged and again.import_id == first.import_id
    path.write_bytes(csv_bytes(f"{KID},1f,000999"))
    assert not book.import_file(path, if_changed=True).unchanged
    assert book.lookup(bytes.fromhex(KID), 0x1F).address_number == "000999"


def test_the_same_file_read_another_way_is_imported_again(book, tmp_path):
    # "10" is 0x10 as hex and 10 as decimal: keeping the old import would silently move every number.
    path = write(tmp_path, "a.csv", csv_bytes(f"{KID},10,000123"))
    book.import_file(path, if_changed=True)
    assert book.lookup(bytes.fromhex(KID), 0x10).address_number == "000123"
    again = book.import_file(path, Settings(serial_format="decimal"), if_changed=True)
    assert not again.unchanged
    assert book.lookup(bytes.fromhex(KID), 10).address_number == "000123"
    assert book.lookup(bytes.fromhex(KID), 0x10) is None


def test_a_large_table_imports_in_chunks_with_progress(book, tmp_path):
    rows = [f"{KID},{n:x},{n:012d}" for n in range(1, 12_001)]
    seen: list[int] = []
    info = book.import_file(write(tmp_path, "big.csv", csv_bytes(*rows)), progress=seen.append)
    assert info.rows == 12_000 and sum(seen) == 12_000 and len(seen) == 3
    assert book.lookup(bytes.fromhex(KID), 11_999).address_number == f"{11_999:012d}"


def test_missing_file(book, tmp_path):
    with pytest.raises(AddressBookError, match="読めません"):
        book.import_file(tmp_path / "none.csv")


def test_the_lookup_is_an_index_probe(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.upgrade()
    with store.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT address_number FROM address_book WHERE issuer_key_id = 'a' AND serial = 'b'"))
    assert "USING INDEX" in plan and "SCAN" not in plan
    store.close()


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    use_settings(monkeypatch, {"GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_LOG_LEVEL": "WARNING"})
    return tmp_path


def test_cli_import_and_status(workdir):
    runner = CliRunner()
    result = runner.invoke(main, ["applicants", "status"])
    assert result.exit_code == 0 and "まだ取り込まれていません" in result.output
    path = write(workdir, "table.csv", csv_bytes(f"{KID},1f,000123", f"{KID},20,000124"))
    result = runner.invoke(main, ["applicants", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 件" in result.output and "取込番号 1" in result.output
    result = runner.invoke(main, ["applicants", "import", "--if-changed", str(path)])
    assert result.exit_code == 0 and "変更はありません" in result.output
    result = runner.invoke(main, ["applicants", "status"])
    assert "取込番号 1: 2 件" in result.output and "cli" in result.output


def test_cli_uses_the_configured_file_and_serial_format(workdir, monkeypatch):
    path = write(workdir, "table.csv", csv_bytes(f"{KID},31,000123"))
    monkeypatch.setenv("GATEWAY_ADDRESS_BOOK__CSV", str(path))
    result = CliRunner().invoke(main, ["applicants", "import", "--serial-format", "decimal"])
    assert result.exit_code == 0, result.output
    store = Store(f"sqlite:///{workdir / 'var' / 'gateway.db'}")
    assert AddressBook(store.engine).lookup(KID, 31).address_number == "000123"
    store.close()


def test_cli_reports_bad_lines_and_changes_nothing(workdir):
    path = write(workdir, "table.csv", csv_bytes(f"{KID},1f,000123", f"{KID},zz,000124", f"{KID},21,"))
    result = CliRunner().invoke(main, ["applicants", "import", str(path)])
    assert result.exit_code == 1
    assert "2 行に誤りがあります" in result.output and "3行目:" in result.output and "4行目:" in result.output
    assert "取込番号" not in result.output


def test_cli_needs_a_file(workdir):
    result = CliRunner().invoke(main, ["applicants", "import"])
    assert result.exit_code == 2 and "ADDRESS_BOOK.CSV" in result.output


def test_clock_is_recorded_in_utc(book, tmp_path):
    book.clock = lambda: dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    info = book.import_file(write(tmp_path, "a.csv", csv_bytes(f"{KID},1f,000123")))
    assert book.latest_import().imported_at == info.imported_at == dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.UTC)
