"""A municipality's extra rule (check_form) and an extra package check (check_package)."""

from __future__ import annotations

from gateway import Problem, hookimpl


class NoEmailPlugin:
    """Refuses applications whose applicant gave no e-mail address."""

    @hookimpl
    def check_package(self, package, procedure):
        if not package.manifest.applicant.email:
            yield Problem(path="/DataRoot/構成情報/管理情報/申請者情報/電子メールアドレス",
                          message="電子メールアドレスを入力してください", code="rule-email-required")


class AlwaysComplainPlugin:
    """Adds a problem to every form (a municipality's extra item that is always missing)."""

    @hookimpl
    def check_form(self, context, procedure):
        return [Problem(path="/", message="市独自項目が未入力です", code="rule-city-item", line=1)]
