"""Beda, UHR's national grade database: client, wire models, validation and sandbox.

Beda's API is not public; what lives here is skolflow's model of it (DESIGN §4,
schemas/beda/beda-api.json). The sandbox (``skolflow.connectors.beda.sandbox``) is not imported
here, so that using the client does not pull in FastAPI.
"""

from skolflow.connectors.beda.client import PRODUCTION_HOST, PRODUCTION_URL, BedaClient
from skolflow.connectors.beda.models import (
    DOKUMENTTYPER,
    MAX_BATCH,
    Examen,
    Fel,
    Kursbetyg,
    Merits,
    StudentResult,
)
from skolflow.connectors.beda.validation import validate_merits

__all__ = [
    "DOKUMENTTYPER",
    "MAX_BATCH",
    "PRODUCTION_HOST",
    "PRODUCTION_URL",
    "BedaClient",
    "Examen",
    "Fel",
    "Kursbetyg",
    "Merits",
    "StudentResult",
    "validate_merits",
]
