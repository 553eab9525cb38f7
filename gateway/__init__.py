"""Gateway from the national e-application portal to municipal core systems.

Public API for plugin authors and embedders; everything else is internal.
"""

from gateway.errors import GatewayError, Problem
from gateway.hookspecs import hookimpl
from gateway.identity import ApplicantFields, DeclaredFacts
from gateway.models import (
    Channel,
    Delivery,
    DeliveryReceipt,
    FormContext,
    Procedure,
    Receipt,
    Sample,
    SignaturePolicy,
    TargetRecord,
    VerifiedPackage,
)

__all__ = [
    "ApplicantFields",
    "Channel",
    "DeclaredFacts",
    "Delivery",
    "DeliveryReceipt",
    "FormContext",
    "GatewayError",
    "Problem",
    "Procedure",
    "Receipt",
    "Sample",
    "SignaturePolicy",
    "TargetRecord",
    "VerifiedPackage",
    "hookimpl",
    "create_app",
]


def __getattr__(name: str):  # create_app pulls in Flask; import it lazily
    if name == "create_app":
        from gateway.app import create_app

        return create_app
    raise AttributeError(name)
