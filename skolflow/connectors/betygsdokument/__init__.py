"""Betygsdokument API (PING PONG / Skolplattform betygsdokument v2.0): client, wire models, codec, sandbox."""

from skolflow.connectors.betygsdokument.client import BetygsdokumentClient
from skolflow.connectors.betygsdokument.codec import encode, iter_documents, read_window, validate_schema
from skolflow.connectors.betygsdokument.models import Amne, GradeDocument

__all__ = [
    "Amne",
    "BetygsdokumentClient",
    "GradeDocument",
    "encode",
    "iter_documents",
    "read_window",
    "validate_schema",
]
