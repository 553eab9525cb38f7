"""Plugins that must stop the gateway at start-up."""

from __future__ import annotations

from plugins.childcare_01 import PROCEDURE

from gateway import hookimpl


class DuplicateProcedurePlugin:
    @hookimpl
    def register_procedures(self, config):
        return [PROCEDURE]


class MisspeltHookPlugin:
    @hookimpl
    def register_procedure(self, config):  # no such hook: check_pending() must catch it
        return []


class UnknownChannelPlugin:
    @hookimpl
    def register_procedures(self, config):
        from dataclasses import replace

        return [replace(PROCEDURE, code="childcare-99", channel="carrier-pigeon")]
