"""Udir's eksamen API (Norway): client, wire models, XML codec, Udir's registration rules and sandbox.

Seed 001 and Udir's XSDs (copies in ``schemas/udir/``) are the contract. The sandbox
(``skolflow.connectors.udir.sandbox``) is not imported here, so that using the client does not pull
in FastAPI.
"""

from skolflow.connectors.udir.client import (
    PATHS,
    PRODUCTION_HOST,
    PRODUCTION_URL,
    TEST_URL,
    UdirApiError,
    UdirClient,
    UdirServerError,
)
from skolflow.connectors.udir.models import (
    Eksamensplan,
    EksamensplanResponse,
    Fagperson,
    Kandidat,
    KandidatFagkode,
    Kandidatgruppe,
    Kandidatgruppeansvarlig,
    Karakteroversikt,
    Pamelding,
    PameldingReport,
    PameldteKandidater,
)
from skolflow.connectors.udir.rules import Problem, Registration, request_problems, subject_rule_breaks

__all__ = [
    "PATHS",
    "PRODUCTION_HOST",
    "PRODUCTION_URL",
    "TEST_URL",
    "Eksamensplan",
    "EksamensplanResponse",
    "Fagperson",
    "Kandidat",
    "KandidatFagkode",
    "Kandidatgruppe",
    "Kandidatgruppeansvarlig",
    "Karakteroversikt",
    "Pamelding",
    "PameldingReport",
    "PameldteKandidater",
    "Problem",
    "Registration",
    "UdirApiError",
    "UdirClient",
    "UdirServerError",
    "request_problems",
    "subject_rule_breaks",
]
