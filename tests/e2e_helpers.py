"""Shared helpers for the end-to-end tests: the real ``gateway`` command, its environment, the drop folder.

These tests drive the gateway the way an operator does — environment variables, the console
script, HTTP — so nothing here reaches into the app's internals except to validate what was
delivered against the target system's own schema.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from gateway.config import load_config
from gateway.models import Procedure, TargetRecord
from gateway.packaging import build_package, make_signed_package
from gateway.samples import new_arrival_number, procedure_of, signing_residents
from gateway.testpki import TestPKI
from gateway.validation import validate_target

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GATEWAY_BIN = Path(sys.executable).parent / "gateway"
"""The console script installed into the virtualenv (``.venv/bin/gateway``)."""
HTTP_TIMEOUT = 10.0
_LISTENING = re.compile(r"http://127\.0\.0\.1:(\d+)")


# --------------------------------------------------------------------------- packages


@functools.lru_cache(maxsize=None)
def procedure(code: str) -> Procedure:
    """A built-in procedure as the entry points register it."""
    return procedure_of(load_config({}), code)


def signed_package(pki: TestPKI, code: str = "childcare-01", variant: str = "valid", *,
                   arrival_number: str | None = None, **sign_options: Any) -> tuple[str, bytes]:
    """``(到達番号, package)``: a procedure's own sample signed by the first ordinary test resident.

    What :func:`gateway.samples.make_sample_package` makes, but signed with the already loaded
    session PKI (reloading its keys from disk costs about a second per package).
    """
    proc = procedure(code)
    sample = proc.sample(variant)
    signer = signing_residents(pki)[0]
    number = arrival_number or new_arrival_number()
    data = make_signed_package(sample.form_xml, form_filename=f"{code}.xml", procedure_code=code,
                               municipality_code=signer.municipality.code, form_version=proc.version,
                               arrival_number=number, signer=signer, attachments=dict(sample.attachments),
                               **sign_options)
    return number, data


def change_one_form_byte(package: bytes) -> bytes:
    """The same package with one digit of the form's content changed in place after signing.

    The form stays well-formed and schema-valid (a date or a number moves by one), so only the
    signature's digest can tell.
    """
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    form_name = next(n for n in members if n != "kousei.xml" and n.endswith(".xml"))
    form = members[form_name]
    found = re.search(rb">(\d)", form)
    assert found, "the form has no element starting with a digit"
    at = found.start(1)
    members[form_name] = form[:at] + str((int(form[at:at + 1]) + 1) % 10).encode() + form[at + 1:]
    kousei = members.pop("kousei.xml")
    return build_package(members, kousei)


# --------------------------------------------------------------------------- environment


def gateway_settings(data_dir: Path, pki: TestPKI, **settings: Any) -> dict[str, str]:
    """``GATEWAY_*`` variables for a gateway on ``data_dir`` that trusts the test PKI's roots.

    ``settings`` use the configuration's key names with ``__`` nesting
    (``WORKER__POLL_SECONDS=0.1``); values that are not strings are written as JSON, the way
    ``load_config`` reads them back.
    """
    env = {
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_TRUST_ANCHORS": json.dumps([str(p) for p in pki.root_paths]),
        "GATEWAY_ALLOW_TEST_ROOTS": "true",
        "GATEWAY_REVOCATION_DIR": str(pki.directory / "crl"),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    for key, value in settings.items():
        env[f"GATEWAY_{key}"] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return env


def foreign_gateway_variables(environ: Mapping[str, str]) -> list[str]:
    """``GATEWAY_*`` variables of the caller's shell that would leak into a test's configuration."""
    return [k for k in environ if k.startswith("GATEWAY_") and not k.startswith("GATEWAY_TEST_")]


def subprocess_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The current environment without any stray ``GATEWAY_*`` settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if k not in foreign_gateway_variables(os.environ)}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: Mapping[str, str]) -> None:
    """Make ``settings`` the only ``GATEWAY_*`` variables of this process (CliRunner tests)."""
    for key in foreign_gateway_variables(os.environ):
        monkeypatch.delenv(key)
    for key, value in settings.items():
        monkeypatch.setenv(key, value)


# --------------------------------------------------------------------------- the real server


class GatewayProcess:
    """``gateway serve`` (or any subcommand) as its own process, killed for real in tests."""

    def __init__(self, args: Iterable[str], *, cwd: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.args = [str(GATEWAY_BIN), *args]
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        """Start the server on a port the OS picks, and wait until ``/healthz`` answers."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            if port is None and (found := _LISTENING.search(self.log())):
                port = int(found.group(1))
                self.base_url = f"http://127.0.0.1:{port}"
            if port is not None and self._healthy():
                return self
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"gateway did not become healthy in {timeout} s:\n{self.log()}")

    def _healthy(self) -> bool:
        try:
            return http().get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def kill(self) -> None:
        """``kill -9``: no clean-up, no atexit, no flushing — a power cut for the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def run_gateway(args: Iterable[str], *, cwd: Path, env: Mapping[str, str],
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run one ``gateway`` subcommand to completion (``worker --once``, ``--help``)."""
    return subprocess.run([str(GATEWAY_BIN), *args], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def http() -> requests.Session:
    """A session that ignores proxy variables: these tests only ever talk to 127.0.0.1."""
    session = requests.Session()
    session.trust_env = False
    return session


# --------------------------------------------------------------------------- what was delivered


def drop_files(drop_dir: Path) -> list[Path]:
    """Delivered files (``<target>/<file>``), without the channel's hidden temporary files."""
    if not drop_dir.exists():
        return []
    return sorted(p for p in drop_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def assert_valid_target_file(path: Path, procedure_code: str) -> etree._Element:
    """The delivered file validates against the procedure's target schema; returns its root."""
    proc = procedure(procedure_code)
    assert path.parent.name == proc.target, f"{path} is not in the {proc.target} folder"
    validate_target(TargetRecord(content=path.read_bytes(), media_type="application/xml", filename=path.name,
                                 target=proc.target, schema=proc.target_schema))
    return etree.fromstring(path.read_bytes())


def delivered_arrival_number(root: etree._Element) -> str:
    """The 到達番号 written into a target record's 管理情報."""
    found = root.xpath("//*[local-name()='管理情報']/*[local-name()='到達番号']/text()")
    assert found, "target record has no 管理情報/到達番号"
    return str(found[0])


def transitions_to(view: Mapping[str, Any], state: str) -> list[Mapping[str, Any]]:
    """History entries of a ``GET /api/v1/applications/<n>`` answer that entered ``state``."""
    return [t for t in view["history"] if t["to"] == state]


def my_numbers(form_xml: bytes) -> list[str]:
    """Every 個人番号 written in a form, to check that none of them reaches a log."""
    root = etree.fromstring(form_xml)
    return [e.text.strip() for e in root.iter() if isinstance(e.tag, str)
            and etree.QName(e).localname == "個人番号" and e.text and e.text.strip()]
