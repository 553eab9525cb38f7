"""``gateway demo``: the whole path on the embedded default, narrated.

Makes (or reuses) a test PKI, starts the gateway with it pinned, signs each procedure's
sample, posts it over HTTP, shows a replay and two refusals, and waits for the worker to drop
the core-system records into the drop folder.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from gateway.config import load_config
from gateway.errors import GatewayError

Echo = Callable[[str], None]


def run_demo(*, port: int = 0, keep_running: bool = False, echo: Echo = print) -> int:
    """Run the demo; returns a process exit code (0 when everything went as shown)."""
    from gateway.app import create_app
    from gateway.samples import ensure_pki, make_sample_package, sample_for
    from gateway.serving import running_revocation_refresher, running_server, running_worker

    base = load_config()
    pki_dir = Path(base["DATA_DIR"]) / "testpki"
    pki = ensure_pki(pki_dir)
    token = secrets.token_urlsafe(24)
    overrides = {
        "ALLOW_TEST_ROOTS": True,
        "TRUST_ANCHORS": [str(p) for p in pki.root_paths],
        "REVOCATION_DIR": str(pki_dir / "crl"),  # the test PKI's CRLs, one per municipality
        "API_TOKENS": {"demo-portal": token},
        "WORKER": {"POLL_SECONDS": 0.2},
    }
    if not os.environ.get("GATEWAY_LOG_LEVEL"):
        overrides["LOG_LEVEL"] = "WARNING"  # the narration below says what happens
    app = create_app(overrides=overrides)
    cfg = app.config
    plugins = app.extensions["gateway"]
    echo("== 電子申請ゲートウェイ デモ ==")
    echo(f"データベース   {cfg['DATABASE_URL']}")
    echo(f"テスト用PKI    {pki_dir}  (ALLOW_TEST_ROOTS=true: デモ専用)")
    echo(f"配信フォルダ   {cfg['CHANNELS']['filedrop']['DIR']}")

    failures = 0
    app.extensions["gateway.pipeline"].revocation.refresh_now()  # the CRLs ensure_pki may have renewed
    with running_server(app, "127.0.0.1", port) as url, running_worker(app), running_revocation_refresher(app):
        post = _poster(url, token)
        echo(f"受付API        {url}/api/v1/applications\n")
        queued: list[str] = []
        for (code, _version), proc in sorted(plugins.procedures.items()):
            if proc.sample is None:
                continue
            sample = sample_for(cfg, code, "valid")
            data = make_sample_package(cfg, code, sample, pki_dir=pki_dir)
            saved = Path(cfg["DATA_DIR"]) / "demo" / f"{code}.zip"
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_bytes(data)
            status, body = post(data)
            echo(f"[{code}] {proc.title}\n  → HTTP {status} {body.get('state', body.get('code'))}"
                 f"  到達番号 {body.get('arrival_number', '-')}")
            failures += status != 202
            if status == 202:
                queued.append(body["arrival_number"])
                status2, body2 = post(data)
                echo(f"  同じパッケージを再送 → HTTP {status2} (重複受付なし)")
                failures += status2 != 200
        failures += _show_refusals(cfg, pki_dir, post, echo)
        echo("\n配信ワーカーの処理を待っています…")
        failures += _wait_delivered(app, queued, echo)
        drop = Path(cfg["CHANNELS"]["filedrop"]["DIR"])
        echo(f"\n配信フォルダ {drop} の中身:")
        for path in sorted(drop.rglob("*.xml")):
            echo(f"  {path.relative_to(drop)}  {path.stat().st_size:,} バイト")
        echo("\n確認方法:")
        echo(f"  GATEWAY_ALLOW_TEST_ROOTS=true GATEWAY_TRUST_ANCHORS='[\"{pki_dir}/roots/*.pem\"]' \\\n"
             f"  GATEWAY_REVOCATION_DIR={pki_dir}/crl ./dev gateway verify {Path(cfg['DATA_DIR']) / 'demo' / 'childcare-01.zip'}   (検証レポート)")
        if queued:
            echo(f"  ./dev gateway show {queued[0]}   (状態と履歴)")
        if keep_running:
            echo(f"  curl -H 'Authorization: Bearer {token}' {url}/api/v1/applications/"
                 f"{queued[0] if queued else '<到達番号>'}")
            echo(f"\nゲートウェイは {url} で動作中です (Ctrl+C で終了)")
            _sleep_forever()
    if not keep_running:
        echo("  (./dev demo --keep-running でゲートウェイを動かしたまま HTTP API を試せます)")
    echo("\nデモ完了" + ("" if not failures else f" (想定外の結果 {failures} 件)"))
    return 0 if not failures else 1


def _show_refusals(cfg, pki_dir: Path, post, echo: Echo) -> int:
    from gateway.samples import make_sample_package, sample_for, tamper_form

    echo("\n拒否の例:")
    failures = 0
    sample = sample_for(cfg, "childcare-01", "valid")
    tampered = tamper_form(make_sample_package(cfg, "childcare-01", sample, pki_dir=pki_dir))
    status, body = post(tampered)
    echo(f"  署名後に申請書を改ざん → HTTP {status} {body.get('code')}: {body.get('title')}")
    failures += status < 400
    try:
        invalid = sample_for(cfg, "childcare-01", "invalid-mynumber")
    except GatewayError:
        return failures
    status, body = post(make_sample_package(cfg, "childcare-01", invalid, pki_dir=pki_dir))
    echo(f"  個人番号の検査数字が誤り → HTTP {status} {body.get('code')}: {body.get('title')}")
    for err in body.get("errors", [])[:3]:
        echo(f"      {err['path']} (行 {err['line']}): {err['message']}")
    failures += status < 400
    return failures


def _wait_delivered(app, arrival_numbers: list[str], echo: Echo, timeout: float = 30.0) -> int:
    store = app.extensions["gateway.store"]
    deadline = time.monotonic() + timeout
    pending = set(arrival_numbers)
    while pending and time.monotonic() < deadline:
        for number in sorted(pending):
            view = store.get_application(number)
            if view.state in ("delivered", "failed"):
                pending.discard(number)
                receipt = view.deliveries[-1].receipt_id if view.deliveries else "-"
                echo(f"  {number}: {view.state}  {receipt}")
        time.sleep(0.2)
    for number in sorted(pending):
        echo(f"  {number}: {timeout:.0f} 秒以内に配信されませんでした")
    return len(pending)


def _poster(url: str, token: str):
    def post(data: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(f"{url}/api/v1/applications", data=data, method="POST", headers={
            "Content-Type": "application/zip", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")
    return post


def _sleep_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
