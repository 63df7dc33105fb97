"""Betyg API (PING PONG / Skolplattform grades v1.1, contract 1.1.1): client, wire models, codec, sandbox, rules."""

from skolflow.connectors.betyg.client import BetygClient
from skolflow.connectors.betyg.codec import encode, iter_students, read_window, validate_schema
from skolflow.connectors.betyg.models import GradeRecord, StudentGrades, Termin

__all__ = [
    "BetygClient",
    "GradeRecord",
    "StudentGrades",
    "Termin",
    "encode",
    "iter_students",
    "read_window",
    "validate_schema",
]
