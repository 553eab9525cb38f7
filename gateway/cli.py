"""The ``gateway`` command line (click, on the Flask app)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask

from gateway.config import load_config
from gateway.errors import GatewayError


class AppContext:
    """Creates the app on first use, so ``--help`` and ``testpki`` need no database."""

    def __init__(self) -> None:
        self._app: Flask | None = None
        self.overrides: dict = {}

    @property
    def app(self) -> Flask:
        if self._app is None:
            from gateway.app import create_app

            try:
                self._app = create_app(overrides=self.overrides or None)
            except GatewayError as err:  # configuration or plugins: one line, no traceback
                raise click.ClickException(f"{err.title}: {err.detail}") from err
        return self._app


pass_ctx = click.make_pass_decorator(AppContext, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jp-application-gateway")
@click.pass_context
def main(ctx: click.Context) -> None:
    """自治体向け電子申請ゲートウェイ (マイナポータル → 基幹システム)."""
    ctx.ensure_object(AppContext)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="配信ワーカーを別プロセス (gateway worker) で動かす")
@pass_ctx
def serve(ctx: AppContext, host: str, port: int, threads: int, no_worker: bool) -> None:
    """HTTP受付API (と配信ワーカー) を起動する."""
    from gateway.serving import serve_forever

    serve_forever(ctx.app, host, port, threads=threads, with_worker=not no_worker)


@main.command()
@click.option("--once", is_flag=True, help="期限の来た配信を一度だけ処理して終了する")
@pass_ctx
def worker(ctx: AppContext, once: bool) -> None:
    """配信キュー (outbox) を処理する."""
    import threading

    from gateway.serving import make_worker, resume_interrupted

    resume_interrupted(ctx.app)
    w = make_worker(ctx.app)
    if once:
        click.echo(f"{w.run_once()} 件を処理しました")
        return
    try:
        w.run_forever(threading.Event())
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--source", default="batch", show_default=True, help="記録する受付経路")
@pass_ctx
def ingest(ctx: AppContext, path: Path, source: str) -> None:
    """申請パッケージ、パッケージを束ねたZIP、またはフォルダを取り込む."""
    from gateway.batch import iter_packages

    pipeline = ctx.app.extensions["gateway.pipeline"]
    items = list(iter_packages(path, limits=pipeline.policy.limits))
    summary: dict[str, int] = {}
    failures: list[str] = []
    with click.progressbar(items, label="取り込み中", show_pos=True) as bar:
        for name, data in bar:
            try:
                receipt = pipeline.intake(data, source=f"{source}:{path.name}")
                outcome = "replay" if receipt.replay else receipt.state
            except GatewayError as err:
                outcome = "refused"
                failures.append(f"  {name}: {err.code} {err.detail}")
            summary[outcome] = summary.get(outcome, 0) + 1
    click.echo(f"取り込み {len(items)} 件: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.items())))
    for line in failures:
        click.echo(line)
    if failures:
        sys.exit(1)


@main.command()
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="機械可読なJSONで出力する")
@pass_ctx
def verify(ctx: AppContext, package: Path, as_json: bool) -> None:
    """申請パッケージを検証し、署名・証明書・様式の結果を表示する (保存はしない)."""
    from gateway.report import inspect_package

    report = inspect_package(ctx.app.extensions["gateway.pipeline"], package.read_bytes())
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) if as_json else report.render())
    sys.exit(0 if report.ok else 1)


@main.command()
@click.argument("arrival_number")
@click.option("--json", "as_json", is_flag=True, help="機械可読なJSONで出力する")
@pass_ctx
def show(ctx: AppContext, arrival_number: str, as_json: bool) -> None:
    """申請の状態と履歴を表示する (個人情報は表示しない)."""
    view = ctx.app.extensions["gateway.store"].get_application(arrival_number)
    if view is None:
        raise click.ClickException(f"到達番号 {arrival_number} の申請はありません")
    data = view.as_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"到達番号 {arrival_number}  状態 {data['state_label']} ({data['state']})  手続 {data['procedure']}")
    if data.get("error"):
        click.echo(f"  エラー {data['error']['code']}: {data['error']['detail']}")
    for step in data["history"]:
        click.echo(f"  {step['at']}  {step['from'] or '-':>22} → {step['to']:<22} {step['actor']}  {step['reason']}")
    for delivery in data["deliveries"]:
        click.echo(f"  連携 {delivery.get('channel')} {delivery.get('status')} {delivery.get('receipt_id') or ''}")


@main.command()
@pass_ctx
def procedures(ctx: AppContext) -> None:
    """登録されている手続の一覧."""
    plugins = ctx.app.extensions["gateway"]
    for (code, version), proc in sorted(plugins.procedures.items()):
        click.echo(f"{code:14} v{version:3} {proc.target:16} {proc.channel:10} {proc.title}")


@main.command("plugins")
@pass_ctx
def list_plugins(ctx: AppContext) -> None:
    """読み込まれたプラグインと実装しているフック."""
    for p in ctx.app.extensions["gateway"].list_plugins():
        click.echo(f"{p['name']:28} {', '.join(p['hooks'])}")


@main.command()
@click.argument("procedure")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="出力先 (既定: 標準出力)")
@click.option("--form-only", is_flag=True, help="申請書XMLだけを出力する")
@click.option("--variant", default="valid", show_default=True)
@click.option("--pki", "pki_dir", type=click.Path(path_type=Path), help="テスト用PKI (既定: <DATA_DIR>/testpki)")
@click.option("--resident", default=0, show_default=True, help="署名するテスト住民の番号")
@click.option("--arrival-number", help="到達番号 (既定: 時刻から生成)")
@click.option("--unsigned", is_flag=True, help="署名しないパッケージを作る")
def sample(procedure: str, out: Path | None, form_only: bool, variant: str, pki_dir: Path | None,
           resident: int, arrival_number: str | None, unsigned: bool) -> None:
    """手続のサンプル申請 (署名付きパッケージ) を作る."""
    from gateway.samples import make_sample_package, sample_for

    try:
        config = load_config()
        found = sample_for(config, procedure, variant)
        data = found.form_xml if form_only else make_sample_package(
            config, procedure, found, pki_dir=pki_dir, resident=resident,
            arrival_number=arrival_number, signed=not unsigned)
    except GatewayError as err:
        raise click.ClickException(f"{err.title}: {err.detail}") from err
    if out:
        out.write_bytes(data)
        click.echo(f"{out} ({len(data)} bytes)", err=True)
    else:
        sys.stdout.buffer.write(data)


@main.group()
def testpki() -> None:
    """テスト用のJPKI類似の認証局 (本番では使わない)."""


@testpki.command("init")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="作成先 (既定: <DATA_DIR>/testpki)")
@click.option("--production-like", is_flag=True, help="本番と同じ O=JPKI と本番ポリシーOIDで作る (検証テスト用)")
def testpki_init(directory: Path | None, production_like: bool) -> None:
    """ルート2世代、住民の署名用証明書、市区町村別CRLを作る."""
    from gateway.testpki import init_pki

    directory = directory or Path(load_config()["DATA_DIR"]) / "testpki"
    pki = init_pki(directory, production_like=production_like)
    click.echo(f"テスト用PKIを作成しました: {directory}")
    for path in pki.root_paths:
        click.echo(f"  ルート証明書: {path}")
    click.echo(f"  住民: {len(pki.residents)} 名, CRL: {len(pki.crl_paths)} 件")


@main.group()
def db() -> None:
    """データベースの管理."""


@db.command("upgrade")
def db_upgrade() -> None:
    """マイグレーションを最新まで適用する."""
    from gateway.store import Store

    url = load_config()["DATABASE_URL"]
    Store(url).upgrade()
    click.echo(f"最新のスキーマに更新しました: {url}")


@main.group()
def applicants() -> None:
    """宛名番号対応表 (署名用電子証明書のシリアル番号 → 宛名番号) の管理."""


@applicants.command("import")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--serial-format", type=click.Choice(["hex", "decimal"]),
              help="シリアル番号の書き方 (既定: ADDRESS_BOOK.SERIAL_FORMAT)")
@click.option("--encoding", help="CSVの文字コード (既定: ADDRESS_BOOK.ENCODING)")
@click.option("--if-changed", is_flag=True, help="前回と同じファイルなら何もしない")
def applicants_import(file: Path | None, serial_format: str | None, encoding: str | None, if_changed: bool) -> None:
    """CSVの宛名番号対応表を検証し、全件を置き換えて取り込む (誤りがあれば何も変えない)."""
    import contextlib
    import dataclasses

    from gateway.store import Store
    from gateway.store.addressbook import AddressBook, AddressBookError, Settings

    config = load_config()
    try:
        settings = Settings.from_config(config)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    settings = dataclasses.replace(settings, serial_format=serial_format or settings.serial_format,
                                   encoding=encoding or settings.encoding)
    path = file or (Path(settings.csv) if settings.csv else None)
    if path is None:
        raise click.UsageError("FILE を指定するか ADDRESS_BOOK.CSV を設定してください")
    store = Store(config["DATABASE_URL"])
    store.upgrade()
    try:
        with contextlib.ExitStack() as stack:
            bars: list = []  # the bar starts once the file is validated and its size known
            info = AddressBook(store.engine).import_file(
                path, settings, actor="cli", if_changed=if_changed,
                on_parsed=lambda table: bars.append(stack.enter_context(click.progressbar(
                    length=len(table.rows), label="宛名番号対応表を取り込み中", show_pos=True))),
                progress=lambda n: bars[0].update(n))
    except AddressBookError as err:
        click.echo(f"{err.title}: {err.detail}", err=True)
        for problem in err.problems:
            click.echo(f"  {problem.message}", err=True)
        sys.exit(1)
    finally:
        store.close()
    if info.unchanged:
        click.echo(f"変更はありません: 取込番号 {info.import_id} ({info.imported_at:%Y-%m-%d %H:%M:%S} UTC, {info.rows} 件) のままです")
        return
    click.echo(f"宛名番号対応表を取り込みました: {info.rows} 件 (取込番号 {info.import_id}, sha256 {info.sha256[:16]}…)")
    if info.ignored_columns:
        click.echo(f"  使わなかった列: {', '.join(info.ignored_columns)}")


@applicants.command("status")
def applicants_status() -> None:
    """いま有効な宛名番号対応表 (最後の取込) を表示する."""
    from gateway.store import Store
    from gateway.store.addressbook import AddressBook

    store = Store(load_config()["DATABASE_URL"])
    store.upgrade()
    try:
        info = AddressBook(store.engine).latest_import()
    finally:
        store.close()
    if info is None:
        click.echo("宛名番号対応表はまだ取り込まれていません (すべての申請が宛名未特定になります)")
        return
    click.echo(f"取込番号 {info.import_id}: {info.rows} 件, {info.imported_at:%Y-%m-%d %H:%M:%S} UTC, "
               f"{info.actor}, {info.source} (sha256 {info.sha256[:16]}…)")


@main.command()
@click.option("--port", default=0, type=int, help="HTTPポート (既定: 空きポート)")
@click.option("--keep-running", is_flag=True, help="デモの後もゲートウェイを動かし続ける")
def demo(port: int, keep_running: bool) -> None:
    """テスト用PKIでサンプル申請を署名し、HTTPで送り、配信フォルダに届くまでを実演する."""
    from gateway.demo import run_demo

    sys.exit(run_demo(port=port, keep_running=keep_running, echo=click.echo))


@main.group()
def crl() -> None:
    """失効リスト (CRL) の取得と状態 (要求処理の外で実行する)."""


def _anchors_and_config() -> tuple:
    from gateway.trust import TrustAnchors

    config = load_config()
    try:
        return config, TrustAnchors.load(config["TRUST_ANCHORS"])
    except GatewayError as err:
        raise click.ClickException(f"{err.title}: {err.detail}") from err


@crl.command("refresh")
@click.option("--json", "as_json", is_flag=True, help="機械可読なJSONで出力する")
def crl_refresh(as_json: bool) -> None:
    """設定されたCRLを取得・検証し、失効インデックスを入れ替える. 不採用があれば終了コード1."""
    from dataclasses import asdict

    from gateway.revocation import refresh_from_config

    config, anchors = _anchors_and_config()
    try:
        report = refresh_from_config(config, anchors)
    except ValueError as err:  # a malformed REVOCATION_SOURCES entry
        raise click.ClickException(str(err)) from err
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "changed": sorted(report.changed),
                               "outcomes": [asdict(o) for o in report.outcomes]}, ensure_ascii=False, indent=2))
    else:
        for o in report.outcomes:
            click.echo(f"{o.outcome:9} {o.code or '-':34} 番号 {o.crl_number if o.crl_number is not None else '-':>6}"
                       f"  {o.source}  {o.message}")
        click.echo(f"CRL {len(report.outcomes)} 件, 更新された区分 {len(report.changed)}")
    sys.exit(0 if report.ok else 1)


@crl.command("status")
@click.option("--json", "as_json", is_flag=True, help="機械可読なJSONで出力する")
def crl_status(as_json: bool) -> None:
    """導入済みのCRL (発行者の鍵と配布点ごと) と新しさ. 期限切れか未導入があれば終了コード1."""
    from gateway.crlcheck import CrlChecker
    from gateway.crlindex import name_key, parse_dp

    config, anchors = _anchors_and_config()
    rows = CrlChecker(Path(config["REVOCATION_INDEX_DIR"]),
                      grace_seconds=float(config["REVOCATION_GRACE_SECONDS"])).describe()
    installed = {row["dp_key"] for row in rows}
    missing = [dp for dp in config["REVOCATION_SOURCES"] if name_key(parse_dp(dp)) not in installed]
    if as_json:
        click.echo(json.dumps({"partitions": rows, "missing": missing}, ensure_ascii=False, indent=2))
    else:
        for row in sorted(rows, key=lambda r: (r["distribution_point"], r["issuer_key_id"])):
            click.echo(f"{'fresh' if row['fresh'] else 'STALE':5}  {row['distribution_point']}  鍵 {row['issuer_key_id'][:8]}"
                       f"  番号 {row['crl_number']}  {row['this_update']} → {row['next_update']}  {row['entries']} 件")
        for dp in missing:
            click.echo(f"MISSING  {dp}")
        if not rows and not missing:
            click.echo("CRL は導入されていません (gateway crl refresh)")
    sys.exit(0 if rows and all(r["fresh"] for r in rows) and not missing else 1)


def _register_plugin_commands() -> None:
    # Plugins may add subcommands; loading them must not need a database.
    from gateway.plugins import make_plugin_manager

    try:
        make_plugin_manager(load_config()).hook.register_commands(cli=main)
    except GatewayError as err:  # a broken plugin must not take `gateway --help` down with it
        click.echo(f"プラグインのコマンドを読み込めません: {err.detail}", err=True)


_register_plugin_commands()

if __name__ == "__main__":
    main()
