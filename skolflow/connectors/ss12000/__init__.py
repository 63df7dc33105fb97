"""SS 12000:2020 v2.1 (the municipality's student information system): client, wire models, sandbox.

It resolves the Betyg API's platform GUIDs: ``Person.id`` → ``civicNo``, ``Organisation.id`` →
``schoolUnitCode``. The sandbox (``skolflow.connectors.ss12000.sandbox.create_app``) is not imported
here, so that using the client never pulls in FastAPI.
"""

from skolflow.connectors.ss12000.client import LOOKUP_CHUNK_SIZE, PagingError, SS12000Client
from skolflow.connectors.ss12000.models import (
    CivicNo,
    Enrolment,
    Error,
    Meta,
    Organisation,
    OrganisationReference,
    Page,
    Person,
    SchoolUnitReference,
)

__all__ = [
    "LOOKUP_CHUNK_SIZE",
    "CivicNo",
    "Enrolment",
    "Error",
    "Meta",
    "Organisation",
    "OrganisationReference",
    "Page",
    "PagingError",
    "Person",
    "SS12000Client",
    "SchoolUnitReference",
]
