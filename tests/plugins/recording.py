"""Records every state change, as an audit or portal-relay plugin would."""

from __future__ import annotations

from gateway import hookimpl


class RecordingPlugin:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, str, str, str]] = []

    @hookimpl
    def application_state_changed(self, arrival_number, old_state, new_state, actor, reason):
        self.events.append((arrival_number, old_state, new_state, actor, reason))

    def states_of(self, arrival_number: str) -> list[str]:
        return [new for number, _, new, _, _ in self.events if number == arrival_number]
