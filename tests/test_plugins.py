"""The plugin manager: entry points, registries, duplicates, blocking, hook calls."""

from __future__ import annotations

import pytest

from gateway import hookimpl
from gateway.app import create_app
from gateway.errors import StartupError
from tests.plugins.broken import DuplicateProcedurePlugin, MisspeltHookPlugin, UnknownChannelPlugin
from tests.plugins.extra_rules import AlwaysComplainPlugin, NoEmailPlugin
from tests.plugins.memory_channel import MemoryRoutingPlugin
from tests.plugins.recording import RecordingPlugin


def test_builtins_load_through_entry_points(app):
    names = {p["name"] for p in app.extensions["gateway"].list_plugins()}
    assert {"builtin_defaults", "filedrop", "childcare_01", "care_01"} <= names


def test_hook_register_procedures(app):
    procedures = app.extensions["gateway"].procedures
    assert ("childcare-01", "1") in procedures
    assert procedures[("care-01", "1")].target == "kaigo-hoken"


def test_duplicate_procedure_fails_startup(app_config):
    with pytest.raises(StartupError, match="childcare-01.*重複"):
        create_app(app_config, plugins=[DuplicateProcedurePlugin()])


def test_misspelt_hook_fails_startup(app_config):
    with pytest.raises(StartupError, match="register_procedure"):
        create_app(app_config, plugins=[MisspeltHookPlugin()])


def test_unknown_channel_fails_startup(app_config):
    with pytest.raises(StartupError, match="carrier-pigeon"):
        create_app(app_config, plugins=[UnknownChannelPlugin()])


def test_blocked_plugin_is_not_loaded(app_config):
    app = create_app({**app_config, "DISABLED_PLUGINS": ["care_01"]})
    assert ("care-01", "1") not in app.extensions["gateway"].procedures
    assert ("childcare-01", "1") in app.extensions["gateway"].procedures


def test_hook_register_channels(app):
    assert "filedrop" in app.extensions["gateway"].channels


def test_hook_route_delivery_vendor_wins_over_builtin(app_config, make_package):
    router = MemoryRoutingPlugin()
    app = create_app(app_config, plugins=[router])
    receipt = app.extensions["gateway.pipeline"].intake(make_package("childcare-01"), source="test")
    from gateway.serving import make_worker

    assert make_worker(app).run_once() == 1
    assert [d.arrival_number for d in router.channel.delivered] == [receipt.arrival_number]


def test_hook_route_delivery_builtin_follows_routes_config(app_config):
    from tests.plugins.memory_channel import MemoryChannel

    class OnlyChannel:
        @hookimpl
        def register_channels(self, config):
            return [MemoryChannel()]

    config = {**app_config, "ROUTES": {"131016": {"care-01": "memory"}}}
    plugins = create_app(config, plugins=[OnlyChannel()]).extensions["gateway"]
    care = plugins.procedure("care-01", "1")
    assert plugins.route_delivery(care, _manifest("care-01", "131016")) == "memory"
    assert plugins.route_delivery(care, _manifest("care-01", "271004")) == "filedrop"


def _manifest(code: str, municipality: str):
    from gateway.models import Applicant, Manifest

    return Manifest(arrival_number="1" * 18, procedure_code=code, municipality_code=municipality,
                    application_kind="新規申請", original_arrival_number="", applied_at=None,
                    applicant=Applicant("山田　太郎"), form_id=code, form_version="1",
                    form_filename=f"{code}.xml")


def test_hook_check_package_adds_refusal(app_config, pki):
    from gateway.errors import RuleError
    from gateway.models import Applicant
    from gateway.packaging import make_signed_package
    from gateway.samples import sample_for

    app = create_app(app_config, plugins=[NoEmailPlugin()])
    resident = pki.residents[0]
    sample = sample_for(app.config, "childcare-01")
    package = make_signed_package(
        sample.form_xml, form_filename="childcare-01.xml", procedure_code="childcare-01",
        municipality_code=resident.municipality.code, arrival_number="202611280000000001",
        applicant=Applicant(name=resident.name, email=""), signer=resident,
        attachments=dict(sample.attachments))
    with pytest.raises(RuleError) as caught:
        app.extensions["gateway.pipeline"].intake(package, source="test")
    assert [p.code for p in caught.value.problems] == ["rule-email-required"]


def test_hook_check_form_adds_problem(app_config, make_package):
    from gateway.errors import RuleError

    app = create_app(app_config, plugins=[AlwaysComplainPlugin()])
    with pytest.raises(RuleError) as caught:
        app.extensions["gateway.pipeline"].intake(make_package("care-01"), source="test")
    assert [p.code for p in caught.value.problems] == ["rule-city-item"]


def test_hook_application_state_changed(app_config, make_package):
    recorder = RecordingPlugin()
    app = create_app(app_config, plugins=[recorder])
    receipt = app.extensions["gateway.pipeline"].intake(make_package("childcare-01"), source="test")
    assert recorder.states_of(receipt.arrival_number) == ["received", "verified", "validated", "queued"]
    from gateway.serving import make_worker

    make_worker(app).run_once()
    assert recorder.states_of(receipt.arrival_number)[-2:] == ["queued", "delivered"]  # announced once


def test_hooks_without_implementations_are_skipped_and_later_ones_are_called(app_config, make_package):
    """Nothing implements the per-package hooks here, so they are not called; a plugin registered
    later (after start-up) is called all the same: nothing about the hooks is remembered."""
    app = create_app(app_config)
    plugins, pipeline = app.extensions["gateway"], app.extensions["gateway.pipeline"]
    assert not plugins.pm.hook.application_state_changed.get_hookimpls()
    assert plugins.check_package(None, None) == [] and plugins.check_form(None, None) == []
    plugins.state_changed("202611280000000001", None, "received", "system", "")  # no listener, no error
    pipeline.intake(make_package("care-01"), source="test")
    recorder, complainer = RecordingPlugin(), AlwaysComplainPlugin()
    plugins.pm.register(recorder)
    plugins.pm.register(complainer)
    assert [p.code for p in plugins.check_form(None, None)] == ["rule-city-item"]
    plugins.state_changed("202611280000000001", None, "received", "system", "")
    assert recorder.states_of("202611280000000001") == ["received"]


def test_hook_register_blueprints(app_config):
    from flask import Blueprint

    bp = Blueprint("extra", __name__)
    bp.add_url_rule("/extra", "extra", lambda: "extra!")

    class Extras:
        @hookimpl
        def register_blueprints(self, config):
            return [bp]

    app = create_app(app_config, plugins=[Extras()])
    assert app.test_client().get("/extra").data == b"extra!"


def test_hook_register_commands():
    import click

    group = click.Group()

    class Commands:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(click.Command("hello", callback=lambda: click.echo("こんにちは")))

    from gateway.plugins import make_plugin_manager

    make_plugin_manager({"LOAD_ENTRYPOINTS": False}, [Commands()]).hook.register_commands(cli=group)
    assert "hello" in group.commands


def test_route_to_unknown_channel_fails_startup(app_config):
    with pytest.raises(StartupError, match="soap-kaigo"):
        create_app({**app_config, "ROUTES": {"131016": {"care-01": "soap-kaigo"}}})
