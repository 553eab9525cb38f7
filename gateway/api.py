"""HTTP intake and read API (``/api/v1``), plus ``/healthz`` and ``/-/plugins``.

This module only adapts HTTP to :class:`gateway.pipeline.Pipeline` and back; every refusal is
a :class:`gateway.errors.GatewayError` rendered once, in :func:`register_error_handlers`.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Flask, current_app, jsonify, request, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from gateway.errors import (
    AuthError,
    GatewayError,
    NotFound,
    PackageTooLarge,
    UnsupportedMediaType,
    to_problem,
)

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def _pipeline():
    return current_app.extensions["gateway.pipeline"]


def _store():
    return current_app.extensions["gateway.store"]


def authenticate(tokens_key: str = "API_TOKENS") -> str:
    """Return the caller's client name from its bearer token, or raise :class:`AuthError`."""
    tokens: dict[str, str] = current_app.config[tokens_key]
    if not tokens and current_app.config["AUTH_DISABLED"]:
        return "anonymous"
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() == "bearer" and presented:
        for client, token in tokens.items():
            if hmac.compare_digest(presented.encode(), str(token).encode()):
                return client
    raise AuthError("有効なアクセストークン (Authorization: Bearer …) が必要です")


@bp.post("/api/v1/applications")
def post_application():
    client = authenticate()
    if request.mimetype != "application/zip":
        raise UnsupportedMediaType(f"Content-Type {request.mimetype or '(なし)'} は受け付けられません")
    data = request.get_data(cache=False)
    receipt = _pipeline().intake(data, source=f"http:{client}")
    body = receipt.as_dict()
    status = 200 if receipt.replay else 202
    location = url_for("api.get_application", arrival_number=receipt.arrival_number)
    return jsonify(body), status, {"Location": location}


@bp.get("/api/v1/applications/<arrival_number>")
def get_application(arrival_number: str):
    authenticate()
    view = _store().get_application(arrival_number)
    if view is None:
        raise NotFound(f"到達番号 {arrival_number} の申請はありません")
    return jsonify(view.as_dict())


@bp.get("/api/v1/procedures")
def list_procedures():
    plugins = current_app.extensions["gateway"]
    return jsonify([
        {"code": p.code, "version": p.version, "title": p.title, "target": p.target,
         "channel": p.channel, "unsigned_allowed": _pipeline().signature_policy_for(p.code).unsigned_allowed}
        for p in sorted(plugins.procedures.values(), key=lambda p: (p.code, p.version))
    ])


@bp.get("/-/plugins")
def list_plugins():
    return jsonify(current_app.extensions["gateway"].list_plugins())


@bp.get("/healthz")
def healthz():
    counts = _store().counts_by_state()
    return jsonify({
        "status": "ok",
        "allow_test_roots": bool(current_app.config["ALLOW_TEST_ROOTS"]),
        "authentication": not current_app.config["AUTH_DISABLED"],
        "applications": counts,
    })


def register_error_handlers(app: Flask) -> None:
    """Map every error to ``application/problem+json`` in one place."""

    @app.errorhandler(GatewayError)
    def _gateway_error(err: GatewayError):
        return _problem(err)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return _problem(PackageTooLarge(f"申請パッケージは {limit} バイト以下にしてください"))

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        problem = GatewayError(err.description or err.name, code=f"http-{err.code}")
        problem.status = err.code or 500
        problem.title = err.name
        return _problem(problem)


def _problem(err: GatewayError):
    response = jsonify(to_problem(err, instance=request.path))
    response.status_code = err.status
    response.mimetype = PROBLEM_JSON
    if isinstance(err, AuthError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
    return response
