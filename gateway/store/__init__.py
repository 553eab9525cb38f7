"""Durable storage: packages (content-addressed), applications, history, records and the outbox.

Use :class:`Store`; everything it returns is a frozen snapshot from :mod:`gateway.store.views`.
"""

from gateway.store.fields import manifest_fields, signer_summary
from gateway.store.lifecycle import UPDATABLE_FIELDS
from gateway.store.repository import Store, TransitionListener
from gateway.store.views import (
    Application,
    ApplicationView,
    ArrivalResult,
    Attempt,
    DeliveryView,
    OutboxItem,
    RecordInfo,
    Refusal,
    Step,
    Transition,
)

__all__ = [
    "UPDATABLE_FIELDS",
    "Application",
    "ApplicationView",
    "ArrivalResult",
    "Attempt",
    "DeliveryView",
    "OutboxItem",
    "RecordInfo",
    "Refusal",
    "Step",
    "Store",
    "Transition",
    "TransitionListener",
    "manifest_fields",
    "signer_summary",
]
