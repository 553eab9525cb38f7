"""The Flask application factory: configuration, plugins, storage, pipeline, blueprints."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask

from gateway.config import load_config
from gateway.plugins import Plugins, make_plugin_manager

log = logging.getLogger("gateway")


def create_app(test_config: Mapping[str, Any] | None = None, *, overrides: Mapping[str, Any] | None = None,
               plugins: Sequence[object] = ()) -> Flask:
    """Create the gateway app.

    :param test_config: Replaces the file and environment layers (tests).
    :param overrides: Applied on top of every configuration layer (command-line options).
    :param plugins: Extra plugin objects to register (test-only plugins).
    """
    app = Flask(__name__, instance_relative_config=False)
    configure_settings(app, test_config, overrides)
    configure_logging(app)
    configure_plugins(app, plugins)
    configure_pipeline(app)
    configure_blueprints(app)
    configure_error_handlers(app)
    return app


def configure_settings(app: Flask, test_config: Mapping[str, Any] | None,
                       overrides: Mapping[str, Any] | None = None) -> None:
    app.config.update(load_config(test_config, overrides=overrides))
    # Flask refuses a bigger body before our code reads it; the archive reader checks again.
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["LIMITS"]["MAX_PACKAGE_BYTES"])
    app.json.ensure_ascii = False  # Japanese stays readable in JSON answers


def configure_logging(app: Flask) -> None:
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if app.config["ALLOW_TEST_ROOTS"]:
        log.warning("ALLOW_TEST_ROOTS が有効です: テスト用ルート証明書 (O=JPKI-TEST) で署名された申請を受け付けます。本番では無効にしてください。")
    if app.config["AUTH_DISABLED"]:
        log.warning("AUTH_DISABLED が有効です: 受付APIは認証なしで公開されています。")
    elif not app.config["API_TOKENS"]:
        log.warning("API_TOKENS が空です: 受付APIはすべての要求を 401 で拒否します。")


def configure_plugins(app: Flask, extra: Sequence[object]) -> None:
    pm = make_plugin_manager(app.config, extra)
    app.extensions["gateway"] = Plugins(pm, app.config)


def configure_pipeline(app: Flask) -> None:
    from gateway.pipeline import Pipeline
    from gateway.store import Store

    plugins = app.extensions["gateway"]
    store = Store(app.config["DATABASE_URL"], on_transition=plugins.state_changed)
    store.upgrade()
    app.extensions["gateway.store"] = store
    app.extensions["gateway.pipeline"] = Pipeline.from_config(app.config, plugins, store)


def configure_blueprints(app: Flask) -> None:
    from gateway import api

    app.register_blueprint(api.bp)
    for found in app.extensions["gateway"].pm.hook.register_blueprints(config=app.config):
        for blueprint in found or ():
            app.register_blueprint(blueprint)


def configure_error_handlers(app: Flask) -> None:
    from gateway import api

    api.register_error_handlers(app)

