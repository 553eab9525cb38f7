"""Configuration, loaded the way Flask users expect.

Order (later wins): :data:`DEFAULTS`, ``config/gateway.toml`` in the working directory, the
TOML file named by ``GATEWAY_CONFIG``, environment variables ``GATEWAY_*`` (``__`` nests into
tables, values parsed as JSON as Flask's ``from_prefixed_env`` does), then ``test_config``.
Every key is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Config

from gateway.models import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = PROJECT_ROOT / "schemas"

DEFAULTS: dict[str, Any] = {
    "DATA_DIR": "var",
    "DATABASE_URL": "",  # empty: sqlite:///<DATA_DIR>/gateway.db
    "TRUST_ANCHORS": ["config/trust/*.pem"],
    "ALLOW_TEST_ROOTS": False,
    "REVOCATION_DIR": "",  # empty: <DATA_DIR>/crl
    "REVOCATION_CHECK": "crl",  # crl | crl+ocsp | ocsp | none
    "REVOCATION_SOURCES": {},  # CRL distribution point (RFC 4514) -> file path or http(s) URL, or a list
    "REVOCATION_INDEX_DIR": "",  # empty: <DATA_DIR>/revocation
    "REVOCATION_GRACE_SECONDS": 0,
    "REVOCATION_REFRESH_SECONDS": 3600,
    "REVOCATION_POLL_SECONDS": 10,
    "REVOCATION_FETCH_TIMEOUT_SECONDS": 30,
    "REVOCATION_MAX_CRL_BYTES": 268435456,
    "REVOCATION_OCSP_URL": "",
    "REVOCATION_OCSP_TIMEOUT_SECONDS": 5,
    "REVOCATION_OCSP_MAX_AGE_SECONDS": 900,
    "MUNICIPALITIES": [],  # accepted 提出先団体コード; empty accepts any well-formed code
    "API_TOKENS": {},  # client name -> bearer token for the intake API
    "AUTH_DISABLED": False,  # true: no token needed (development only; logged loudly)
    "STATUS_TOKENS": {},  # core system name -> bearer token for the decision endpoint
    "LIMITS": {
        "MAX_PACKAGE_BYTES": Limits.max_package_bytes,
        "MAX_UNCOMPRESSED_BYTES": Limits.max_uncompressed_bytes,
        "MAX_MEMBERS": Limits.max_members,
        "MAX_MEMBER_BYTES": Limits.max_member_bytes,
        "MAX_COMPRESSION_RATIO": Limits.max_compression_ratio,
    },
    "CHANNELS": {"filedrop": {"DIR": ""}},  # empty DIR: <DATA_DIR>/drop
    "ROUTES": {},  # {"<団体コード>": {"<procedure>": "<channel>"}} or {"*": {...}}
    "PROCEDURES": {},  # per-procedure settings, e.g. {"disaster-01": {"UNSIGNED_ALLOWED": true}}
    "WORKER": {"POLL_SECONDS": 1.0, "MAX_ATTEMPTS": 8, "BACKOFF_SECONDS": 5.0, "LEASE_SECONDS": 300.0},
    # 宛名番号 table (certificate serial → 宛名番号): gateway/store/addressbook.py
    "ADDRESS_BOOK": {"CSV": "", "SERIAL_FORMAT": "hex", "ENCODING": "utf-8", "CHECK_DIGIT": False},
    "IDENTITY": {"KANJI_VARIANTS": {}},  # extra old→new kanji pairs for comparing 基本4情報
    "DISABLED_PLUGINS": [],
    "LOAD_ENTRYPOINTS": True,
    "LOG_LEVEL": "INFO",
}


def load_config(test_config: Mapping[str, Any] | None = None, *,
                overrides: Mapping[str, Any] | None = None, root: str | Path | None = None) -> Config:
    """Build the configuration mapping (a :class:`flask.Config`) in the documented order.

    :param test_config: Replaces the file and environment layers (tests).
    :param overrides: Applied last, on top of every layer (command-line options, the demo).
    """
    cfg = Config(root or os.getcwd())
    cfg.from_mapping(copy.deepcopy(DEFAULTS))
    if test_config is None:
        _merge_toml(cfg, Path(cfg.root_path) / "config" / "gateway.toml")
        if named := os.environ.get("GATEWAY_CONFIG"):
            _merge_toml(cfg, Path(named), required=True)
        _merge_env(cfg)
    else:
        _deep_update(cfg, test_config)
    if overrides:
        _deep_update(cfg, overrides)
    _derive_paths(cfg)
    return cfg


def limits_from(cfg: Mapping[str, Any]) -> Limits:
    lim = cfg["LIMITS"]
    return Limits(
        max_package_bytes=int(lim["MAX_PACKAGE_BYTES"]),
        max_uncompressed_bytes=int(lim["MAX_UNCOMPRESSED_BYTES"]),
        max_members=int(lim["MAX_MEMBERS"]),
        max_member_bytes=int(lim["MAX_MEMBER_BYTES"]),
        max_compression_ratio=int(lim["MAX_COMPRESSION_RATIO"]),
    )


def _merge_toml(cfg: Config, path: Path, required: bool = False) -> None:
    if not path.is_file():
        if required:
            from gateway.errors import StartupError

            raise StartupError(f"GATEWAY_CONFIG のファイルが見つかりません: {path}")
        return
    with path.open("rb") as fh:
        _deep_update(cfg, {k: v for k, v in tomllib.load(fh).items() if k.isupper()})


def _merge_env(cfg: Config) -> None:
    # Flask's own parser: GATEWAY_LIMITS__MAX_MEMBERS=5 sets cfg["LIMITS"]["MAX_MEMBERS"] = 5.
    env = Config(cfg.root_path)
    env.from_prefixed_env("GATEWAY")
    env.pop("CONFIG", None)
    for key, value in env.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            _deep_update(cfg[key], value)
        else:
            cfg[key] = value


def _deep_update(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_update(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _derive_paths(cfg: Config) -> None:
    data = Path(cfg.root_path, cfg["DATA_DIR"])
    cfg["DATA_DIR"] = str(data)
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{data / 'gateway.db'}"
    if not cfg["REVOCATION_DIR"]:
        cfg["REVOCATION_DIR"] = str(data / "crl")
    if not cfg["REVOCATION_INDEX_DIR"]:
        cfg["REVOCATION_INDEX_DIR"] = str(data / "revocation")
    drop = cfg["CHANNELS"].setdefault("filedrop", {})
    if not drop.get("DIR"):
        drop["DIR"] = str(data / "drop")
    else:
        drop["DIR"] = str(Path(cfg.root_path, drop["DIR"]))
