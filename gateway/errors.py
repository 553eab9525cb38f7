"""One error root for the gateway, with structured subclasses.

Every refusal a caller can see is a :class:`GatewayError` subclass carrying a stable ``code``
(the last segment of the problem ``type`` URI; its first word names the family), an HTTP
``status`` and a Japanese ``title``. :func:`to_problem` is the one place they become
``application/problem+json`` (RFC 9457). The table in ``docs/error-codes.md`` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROBLEM_TYPE_BASE = "https://gateway.example.jp/problems/"


@dataclass(frozen=True)
class Problem:
    """One located finding in a form or manifest (schema or business rule)."""

    path: str
    """XPath-like location of the offending item, e.g. ``/申請書/児童[2]/個人番号``."""
    message: str
    """Japanese message for staff and residents."""
    line: int | None = None
    """Source line in the XML member, when known."""
    code: str = ""
    """Stable machine code of the rule, e.g. ``rule-mynumber-check-digit``."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "line": self.line, "message": self.message}
        if self.code:
            out["code"] = self.code
        return out


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    code = "gateway-error"
    status = 500
    title = "ゲートウェイ内部エラー"

    def __init__(self, detail: str = "", *, code: str | None = None,
                 problems: tuple[Problem, ...] | list[Problem] = (), **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.problems = tuple(problems)
        self.extra = extra


class RefusedPackage(GatewayError):
    """The sender's package cannot be accepted; nothing will be delivered."""

    code = "package-invalid"
    status = 400
    title = "申請パッケージを受け付けられません"


class PackageError(RefusedPackage):
    """Archive, member or limit problems (``package-…``)."""

    code = "package-invalid"
    title = "申請パッケージの形式が不正です"


class PackageTooLarge(PackageError):
    code = "package-too-large"
    status = 413
    title = "申請パッケージが大きすぎます"


class XmlError(RefusedPackage, ValueError):
    """Malformed XML, DTDs, entities (``xml-…``)."""

    code = "xml-malformed"
    title = "XMLの形式が不正です"


class SignatureError(RefusedPackage):
    """Missing or invalid signature, digest or reference (``signature-…``)."""

    code = "signature-invalid"
    title = "電子署名を検証できません"


class AlgorithmError(SignatureError):
    """A forbidden or unknown algorithm or transform (``algorithm-…``)."""

    code = "algorithm-forbidden"
    title = "許可されていない署名アルゴリズムです"


class CertificateError(RefusedPackage):
    """The signer's certificate is not trusted or not fit for signing (``certificate-…``)."""

    code = "certificate-untrusted"
    title = "署名用電子証明書を信頼できません"


class RevocationError(RefusedPackage):
    """The signer's certificate was revoked at arrival (``revocation-…``)."""

    code = "revocation-revoked"
    title = "署名用電子証明書は失効しています"


class RevocationUnknown(GatewayError):
    """No fresh revocation data: the package is deferred, not refused."""

    code = "revocation-unknown"
    status = 202
    title = "失効情報を確認できないため検証を保留しました"


class SchemaError(RefusedPackage):
    """The form does not match its procedure's schema (``schema-…``)."""

    code = "schema-invalid"
    status = 422
    title = "申請書の内容が様式に適合しません"


class RuleError(RefusedPackage):
    """Business rules or identifier checks failed (``rule-…``)."""

    code = "rule-violation"
    status = 422
    title = "申請書の内容に誤りがあります"


class ProcedureError(RefusedPackage):
    """Unknown or disabled procedure (``procedure-…``)."""

    code = "procedure-unknown"
    status = 422
    title = "対応していない手続です"


class MunicipalityError(RefusedPackage):
    """The package is addressed to another municipality or a malformed code (``municipality-…``)."""

    code = "municipality-mismatch"
    status = 422
    title = "提出先団体が正しくありません"


class Conflict(GatewayError):
    """Same 到達番号, different bytes."""

    code = "conflict"
    status = 409
    title = "同じ到達番号で異なる申請パッケージが既に受理されています"


class NotFound(GatewayError):
    code = "not-found"
    status = 404
    title = "該当する申請が見つかりません"


class AuthError(GatewayError):
    code = "auth-required"
    status = 401
    title = "認証が必要です"


class UnsupportedMediaType(PackageError):
    code = "package-media-type"
    status = 415
    title = "Content-Type は application/zip である必要があります"


class TransformError(GatewayError):
    """A procedure plugin could not produce a valid record: the gateway's fault, not the resident's.

    The application stays ``validated`` (accepted, nothing lost) for staff to re-run.
    """

    code = "schema-target-invalid"
    status = 500
    title = "連携データへの変換に失敗しました"


class StartupError(GatewayError):
    """Bad configuration or plugins: the gateway refuses to start."""

    code = "startup-error"
    title = "ゲートウェイを起動できません"


class DeliveryError(GatewayError):
    """A channel could not hand the record to the core system; retried by the worker."""

    code = "delivery-failed"
    status = 502
    title = "基幹システムへの連携に失敗しました"

    def __init__(self, detail: str = "", *, permanent: bool = False, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.permanent = permanent


def to_problem(err: GatewayError, instance: str | None = None) -> dict[str, Any]:
    """Render ``err`` as an RFC 9457 problem document."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + err.code,
        "title": err.title,
        "status": err.status,
        "detail": err.detail,
        "code": err.code,
    }
    if instance:
        body["instance"] = instance
    if err.problems:
        body["errors"] = [p.as_dict() for p in err.problems]
    body.update({k: v for k, v in err.extra.items() if k not in body})
    return body
