"""Configuration layers: defaults < config/gateway.toml < GATEWAY_CONFIG < GATEWAY_* < overrides."""

from __future__ import annotations

from gateway.config import DEFAULTS, limits_from, load_config


def test_defaults_and_derived_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg["LIMITS"]["MAX_MEMBERS"] == DEFAULTS["LIMITS"]["MAX_MEMBERS"] == 20
    assert cfg["DATABASE_URL"] == f"sqlite:///{tmp_path / 'var' / 'gateway.db'}"
    assert cfg["CHANNELS"]["filedrop"]["DIR"] == str(tmp_path / "var" / "drop")
    assert limits_from(cfg).max_package_bytes == 10 * 1024 * 1024


def test_layers_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "gateway.toml").write_text(
        'ALLOW_TEST_ROOTS = true\nMUNICIPALITIES = ["131016"]\n[LIMITS]\nMAX_MEMBERS = 5\nMAX_PACKAGE_BYTES = 1000\n',
        encoding="utf-8")
    named = tmp_path / "site.toml"
    named.write_text('[LIMITS]\nMAX_MEMBERS = 7\n', encoding="utf-8")
    monkeypatch.setenv("GATEWAY_CONFIG", str(named))
    monkeypatch.setenv("GATEWAY_LIMITS__MAX_PACKAGE_BYTES", "2000")
    monkeypatch.setenv("GATEWAY_API_TOKENS", '{"portal": "secret"}')
    cfg = load_config(overrides={"MUNICIPALITIES": ["271004"]})
    assert cfg["ALLOW_TEST_ROOTS"] is True  # file
    assert cfg["LIMITS"]["MAX_MEMBERS"] == 7  # GATEWAY_CONFIG over the file
    assert cfg["LIMITS"]["MAX_PACKAGE_BYTES"] == 2000  # env over both, nested with __
    assert cfg["LIMITS"]["MAX_UNCOMPRESSED_BYTES"] == DEFAULTS["LIMITS"]["MAX_UNCOMPRESSED_BYTES"]
    assert cfg["API_TOKENS"] == {"portal": "secret"}  # JSON-parsed
    assert cfg["MUNICIPALITIES"] == ["271004"]  # overrides last


def test_test_config_replaces_file_and_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_ALLOW_TEST_ROOTS", "true")
    assert load_config({"LOG_LEVEL": "DEBUG"})["ALLOW_TEST_ROOTS"] is False


def test_missing_named_config_stops_startup(tmp_path, monkeypatch):
    import pytest

    from gateway.errors import StartupError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(StartupError):
        load_config()
