"""The ``gateway`` command line, used as an operator would: environment variables, files, exit codes.

Every test runs in its own working directory with ``GATEWAY_*`` variables pointing the data
directory there and pinning the session's test PKI roots; the commands are run through
click's runner on :func:`gateway.cli.main`, and once through the installed console script.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import etree

from gateway.cli import main
from gateway.config import load_config
from gateway.samples import new_arrival_number, sample_for, tamper_form
from gateway.testpki import TestPKI
from tests.e2e_helpers import (
    assert_valid_target_file,
    delivered_arrival_number,
    drop_files,
    gateway_settings,
    run_gateway,
    subprocess_env,
    use_settings,
)


@pytest.fixture
def workdir(tmp_path: Path, pki: TestPKI, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory whose gateway keeps its data in ``./var`` and trusts the test roots."""
    monkeypatch.chdir(tmp_path)
    use_settings(monkeypatch, gateway_settings(tmp_path / "var", pki))
    return tmp_path


def gateway(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    return result


def sample(pki: TestPKI, path: Path, procedure: str = "childcare-01", **options: str) -> Path:
    """``gateway sample <procedure> --out <path>`` signed by the session's test PKI."""
    extra = [arg for key, value in options.items() for arg in (f"--{key.replace('_', '-')}", value)]
    ok(gateway("sample", procedure, "--pki", pki.directory, "--out", path,
               "--arrival-number", new_arrival_number(), *extra))
    return path


# --------------------------------------------------------------------------- discovery


def test_console_script_is_installed_and_lists_every_command(tmp_path: Path, pki: TestPKI) -> None:
    done = run_gateway(["--help"], cwd=tmp_path, env=subprocess_env(gateway_settings(tmp_path / "var", pki)))
    assert done.returncode == 0, done.stderr
    for command in ("serve", "worker", "ingest", "verify", "procedures", "plugins", "sample", "testpki", "db"):
        assert command in done.stdout
    assert "電子申請ゲートウェイ" in done.stdout
    assert not (tmp_path / "var").exists(), "--help must not create a database"


def test_procedures_lists_both_built_in_procedures(workdir: Path) -> None:
    lines = ok(gateway("procedures")).stdout.splitlines()
    by_code = {line.split()[0]: line for line in lines}
    assert set(by_code) >= {"childcare-01", "care-01"}
    assert "jidou-teate" in by_code["childcare-01"] and "児童手当" in by_code["childcare-01"]
    assert "kaigo-hoken" in by_code["care-01"] and "要介護" in by_code["care-01"]


def test_plugins_lists_the_built_ins_with_their_hooks(workdir: Path) -> None:
    hooks = {line.split()[0]: line.split(None, 1)[1] for line in ok(gateway("plugins")).stdout.splitlines()}
    assert "register_procedures" in hooks["childcare_01"]
    assert "register_procedures" in hooks["care_01"]
    assert "register_channels" in hooks["filedrop"]
    assert "route_delivery" in hooks["builtin_defaults"]


# --------------------------------------------------------------------------- test PKI, samples, verify


def test_testpki_init_then_sample_then_verify_from_scratch(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator with nothing but the command: make a PKI, pin its roots, sign a sample, verify it."""
    result = ok(gateway("testpki", "init", "--dir", "pki"))
    roots = sorted((workdir / "pki" / "roots").glob("*.pem"))
    crls = sorted((workdir / "pki" / "crl").rglob("*.crl"))
    assert len(roots) == 2 and len(crls) == 4
    assert "テスト用PKIを作成しました" in result.output and "CRL: 4 件" in result.output
    monkeypatch.setenv("GATEWAY_TRUST_ANCHORS", json.dumps(["pki/roots/*.pem"]))  # relative to the cwd
    monkeypatch.setenv("GATEWAY_REVOCATION_DIR", "pki/crl")
    monkeypatch.setenv("GATEWAY_DATA_DIR", "var-own-pki")  # its own revocation index, for its own roots

    ok(gateway("sample", "childcare-01", "--pki", "pki", "--out", "app.zip"))
    assert zipfile.is_zipfile(workdir / "app.zip")
    report = ok(gateway("verify", "app.zip")).stdout
    for label in ("[OK ] パッケージ (ZIP)", "[OK ] 電子署名 (XMLDSig)", "[OK ] 署名用電子証明書",
                  "[OK ] 構成情報 (署名対象)", "[OK ] 様式・業務ルール", "結果: 受付可能"):
        assert label in report
    assert "(テスト用ルート)" in report and "childcare-01" in report


def test_verify_reports_ok_in_japanese_and_as_json(workdir: Path, pki: TestPKI) -> None:
    package = sample(pki, workdir / "app.zip")
    text = ok(gateway("verify", package)).stdout
    assert "結果: 受付可能" in text and "NG" not in text
    report = json.loads(ok(gateway("verify", "--json", package)).stdout)
    assert report["ok"] is True
    assert [s["label"] for s in report["steps"]][:2] == ["パッケージ (ZIP)", "電子署名 (XMLDSig)"]
    assert not (workdir / "var" / "drop").exists(), "verify must not store or deliver anything"


def test_verify_of_a_tampered_package_exits_1_naming_the_code(workdir: Path, pki: TestPKI) -> None:
    package = sample(pki, workdir / "app.zip")
    tampered = workdir / "tampered.zip"
    tampered.write_bytes(tamper_form(package.read_bytes()))
    result = gateway("verify", tampered)
    assert result.exit_code == 1
    assert "[NG ]" in result.stdout and "(signature-digest-mismatch)" in result.stdout
    assert "結果: 受付不可" in result.stdout
    as_json = json.loads(gateway("verify", "--json", tampered).stdout)
    assert as_json["ok"] is False and as_json["steps"][-1]["code"] == "signature-digest-mismatch"


def test_verify_of_a_rule_violation_lists_path_and_line(workdir: Path, pki: TestPKI) -> None:
    package = sample(pki, workdir / "bad.zip", variant="invalid-mynumber")
    result = gateway("verify", package)
    assert result.exit_code == 1
    assert "rule-" in result.stdout and "個人番号" in result.stdout and "(行 " in result.stdout


def test_sample_form_only_writes_the_procedures_form(workdir: Path) -> None:
    ok(gateway("sample", "care-01", "--form-only", "--out", "form.xml"))
    written = (workdir / "form.xml").read_bytes()
    assert written == sample_for(load_config({}), "care-01", "valid").form_xml
    assert etree.QName(etree.fromstring(written)).namespace == "urn:jp:gateway:form:care-01:1"
    to_stdout = ok(gateway("sample", "care-01", "--form-only"))
    assert to_stdout.stdout_bytes == written


# --------------------------------------------------------------------------- ingest and delivery


def test_ingest_a_single_package_then_replay_then_conflict(workdir: Path, pki: TestPKI) -> None:
    package = sample(pki, workdir / "app.zip")
    assert "queued 1" in ok(gateway("ingest", package)).stdout
    assert "replay 1" in ok(gateway("ingest", package)).stdout
    other = workdir / "tampered.zip"  # same 到達番号, other bytes
    other.write_bytes(tamper_form(package.read_bytes()))
    result = gateway("ingest", other)
    assert result.exit_code == 1
    assert "refused 1" in result.stdout and "tampered.zip: conflict" in result.stdout


def test_ingest_a_batch_zip_with_one_bad_package(workdir: Path, pki: TestPKI) -> None:
    """What staff download from the portal: one ZIP of packages. The bad one is named, the rest go through."""
    good1 = sample(pki, workdir / "a.zip").read_bytes()
    good2 = sample(pki, workdir / "b.zip", "care-01").read_bytes()
    bad = tamper_form(sample(pki, workdir / "c.zip").read_bytes())
    batch = workdir / "2026-11-28.zip"
    with zipfile.ZipFile(batch, "w") as zf:
        zf.writestr("001.zip", good1)
        zf.writestr("002.zip", bad)
        zf.writestr("003.zip", good2)
    result = gateway("ingest", batch)
    assert result.exit_code == 1
    assert "取り込み 3 件: queued 2, refused 1" in result.stdout
    assert "002.zip: signature-digest-mismatch" in result.stdout
    assert "001.zip" not in result.stdout.split("refused 1", 1)[1]

    assert "2 件を処理しました" in ok(gateway("worker", "--once")).stdout
    delivered = drop_files(workdir / "var" / "drop")
    assert sorted(p.parent.name for p in delivered) == ["jidou-teate", "kaigo-hoken"]


def test_ingest_a_folder_then_worker_delivers_valid_records_once(workdir: Path, pki: TestPKI) -> None:
    inbox = workdir / "inbox"
    inbox.mkdir()
    numbers = {}
    for name, code in (("a.zip", "childcare-01"), ("b.zip", "care-01")):
        package = sample(pki, inbox / name, code)
        with zipfile.ZipFile(package) as zf:
            numbers[code] = etree.fromstring(zf.read("kousei.xml")).findtext(".//到達番号")
    (inbox / "README.txt").write_text("not a package")  # only *.zip are taken
    assert "取り込み 2 件: queued 2" in ok(gateway("ingest", inbox)).stdout

    assert "2 件を処理しました" in ok(gateway("worker", "--once")).stdout
    assert "0 件を処理しました" in ok(gateway("worker", "--once")).stdout
    delivered = drop_files(workdir / "var" / "drop")
    assert len(delivered) == 2
    for path in delivered:
        code = "childcare-01" if path.parent.name == "jidou-teate" else "care-01"
        root = assert_valid_target_file(path, code)
        assert delivered_arrival_number(root) == numbers[code]
        assert path.name.startswith(numbers[code])


def test_ingest_of_a_file_that_is_not_a_zip_is_refused_not_a_crash(workdir: Path) -> None:
    (workdir / "download.zip").write_bytes(b"<html>session expired</html>")
    result = gateway("ingest", "download.zip")
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert "refused 1" in result.stdout and "download.zip: package-not-zip" in result.stdout


def test_db_upgrade_creates_the_schema_and_is_idempotent(workdir: Path) -> None:
    db = workdir / "var" / "gateway.db"
    first = ok(gateway("db", "upgrade"))
    assert f"sqlite:///{db}" in first.stdout
    ok(gateway("db", "upgrade"))
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"applications", "alembic_version"} <= tables


# --------------------------------------------------------------------------- configuration layers


def test_configuration_layers_as_the_operator_sees_them(workdir: Path, pki: TestPKI,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """defaults < ./config/gateway.toml < $GATEWAY_CONFIG < GATEWAY_* variables, observed via the CLI."""
    monkeypatch.delenv("GATEWAY_DATA_DIR")

    def database() -> str:
        return ok(gateway("db", "upgrade")).stdout.strip().rsplit(": ", 1)[1]

    assert database() == f"sqlite:///{workdir / 'var' / 'gateway.db'}"  # the default DATA_DIR is ./var
    (workdir / "config").mkdir()
    (workdir / "config" / "gateway.toml").write_text(
        'DATA_DIR = "from-toml"\n[LIMITS]\nMAX_PACKAGE_BYTES = 1000\n', encoding="utf-8")
    assert database() == f"sqlite:///{workdir / 'from-toml' / 'gateway.db'}"
    (workdir / "site.toml").write_text('DATA_DIR = "from-named"\n', encoding="utf-8")
    monkeypatch.setenv("GATEWAY_CONFIG", str(workdir / "site.toml"))
    assert database() == f"sqlite:///{workdir / 'from-named' / 'gateway.db'}"
    monkeypatch.setenv("GATEWAY_DATA_DIR", "from-env")
    assert database() == f"sqlite:///{workdir / 'from-env' / 'gateway.db'}"

    # A nested key from the TOML file still applies under the later layers ...
    package = sample(pki, workdir / "app.zip")
    refused = gateway("ingest", package)
    assert refused.exit_code == 1 and "package-too-large" in refused.stdout
    # ... and one nested environment variable overrides just that key, keeping its siblings.
    monkeypatch.setenv("GATEWAY_LIMITS__MAX_PACKAGE_BYTES", "1000000")
    assert "queued 1" in ok(gateway("ingest", package)).stdout


@pytest.mark.parametrize("args, env, message", [
    (["procedures"], {"GATEWAY_CONFIG": "/nonexistent/gateway.toml"}, "GATEWAY_CONFIG"),
    (["sample", "nosuch-01"], {}, "nosuch-01"),
])
def test_startup_errors_are_one_line_messages(tmp_path: Path, pki: TestPKI, args: list[str],
                                              env: dict[str, str], message: str) -> None:
    settings = {**gateway_settings(tmp_path / "var", pki), **env}
    done = run_gateway(args, cwd=tmp_path, env=subprocess_env(settings))
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_batch_of_packages_is_read_without_extracting(workdir: Path, pki: TestPKI) -> None:
    """A batch member that is not itself a package is refused and named; the others still go in."""
    good = sample(pki, workdir / "a.zip").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("001.zip", good)
        zf.writestr("notes.txt", "見てください")
    (workdir / "batch.zip").write_bytes(buffer.getvalue())
    result = gateway("ingest", "batch.zip")
    assert result.exit_code == 1
    assert "queued 1, refused 1" in result.stdout
    assert "notes.txt: package-" in result.stdout
    assert not list(workdir.glob("*.txt")), "nothing is extracted to disk"
