"""PostgreSQL for the tests: a given server, or a throwaway cluster started on demand.

``GATEWAY_TEST_POSTGRES_URL`` names a database whose role may ``CREATE SCHEMA``; without it,
the first call starts a private cluster (``initdb`` + ``pg_ctl``, as the ``postgres`` user when
running as root) in a temporary directory on a free port of 127.0.0.1 and removes it at exit.
Each test gets its own schema. When PostgreSQL cannot be had, its tests are skipped with the
reason, unless ``GATEWAY_TEST_REQUIRE_POSTGRES=1`` (CI), which turns the skip into a failure.

Use the fixture by importing it into a test module: ``from tests.pg import database_url``.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

ENV_URL = "GATEWAY_TEST_POSTGRES_URL"
ENV_REQUIRE = "GATEWAY_TEST_REQUIRE_POSTGRES"
_state: dict[str, str | None] = {}


def postgres_url() -> str | None:
    """A server URL (``postgresql+psycopg://…``) for tests, or None; see :func:`why_not`."""
    if "url" not in _state:
        if given := os.environ.get(ENV_URL):
            _state["url"], _state["why"] = given, None
        else:
            try:
                _state["url"], _state["why"] = _start_cluster(), None
            except _Unavailable as exc:
                _state["url"], _state["why"] = None, str(exc)
    return _state["url"]


def why_not() -> str:
    """Why :func:`postgres_url` returned None."""
    return _state.get("why") or ""


def create_schema(server_url: str) -> tuple[str, str]:
    """Make an empty schema and a URL whose connections use it; returns (URL, schema name).

    A schema per test is as isolated as a database for the gateway's tables and costs
    milliseconds instead of a ``CREATE DATABASE``; it only needs ``CREATE`` on the database.
    """
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    url = _psycopg(server_url).update_query_dict({"options": f"-csearch_path={name}"})
    return url.render_as_string(hide_password=False), name


def drop_schema(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once on SQLite (a file) and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    with fresh_schema() as url:
        yield url


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL to an empty schema of the test cluster, dropped afterwards.

    Skips the test when PostgreSQL cannot be started, or fails it under
    ``GATEWAY_TEST_REQUIRE_POSTGRES=1`` (CI).
    """
    server = postgres_url()
    if server is None:
        message = f"PostgreSQL を起動できません: {why_not()}"
        if os.environ.get(ENV_REQUIRE) == "1":
            pytest.fail(message)
        pytest.skip(message)
    url, name = create_schema(server)
    try:
        yield url
    finally:
        drop_schema(server, name)


# --------------------------------------------------------------------------- the cluster


class _Unavailable(Exception):
    pass


def _admin(server_url: str) -> sa.Connection:
    engine = sa.create_engine(_psycopg(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    return engine.connect()


def _psycopg(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    return parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed


def _bindir() -> Path | None:
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_cluster() -> str:
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise _Unavailable("initdb/pg_ctl がありません (apt-get install -y postgresql)")
    run_as: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise _Unavailable("root で実行中ですが postgres ユーザーがいません") from None
        os.chown(home, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, log, port = home / "data", home / "server.log", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*run_as, *args], cwd=home, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise _Unavailable(f"{' '.join(args[:2])} failed: {done.stdout[-2000:]} {server_log}")

    # A throwaway cluster: durability settings off, it only has to be fast.
    run(str(bindir / "initdb"), "-D", str(data), "-U", "gateway", "--auth=trust", "-E", "UTF8",
        "--locale=C", "--no-sync")
    options = (f"-p {port} -h 127.0.0.1 -k {home} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=50")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")

    def stop() -> None:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       cwd=home, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False, timeout=60)
        shutil.rmtree(home, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql+psycopg://gateway@127.0.0.1:{port}/postgres"


if __name__ == "__main__":  # manual check: start a cluster, print its URL, stop on Enter
    print(postgres_url() or why_not())
    input("Enter で停止します ")
