"""SS 12000:2020 v2.1 (the municipality's student information system): client, wire models, sandbox.

It resolves the Betyg API's platform GUIDs (``Person.id`` → ``civicNo``, ``Organisation.id`` →
``schoolUnitCode``) and is DNP provisioning's source: persons with their enrolments, duties, groups
with their memberships, activities with their syllabus, and what was deleted. The sandbox
(``skolflow.connectors.ss12000.sandbox.create_app``) is not imported here, so that using the client
never pulls in FastAPI.
"""

from skolflow.connectors.ss12000.client import (
    LOOKUP_CHUNK_SIZE,
    PagingError,
    Problem,
    Refused,
    RefusedRecord,
    SS12000Client,
)
from skolflow.connectors.ss12000.models import (
    Activity,
    ActivityExpanded,
    CivicNo,
    DeletedEntitiesData,
    Duty,
    DutyAssignment,
    DutyExpanded,
    Enrolment,
    Error,
    Group,
    GroupExpanded,
    GroupMembership,
    Meta,
    Organisation,
    OrganisationReference,
    Page,
    Person,
    PersonIdentity,
    SchoolUnitReference,
    Syllabus,
)

__all__ = [
    "LOOKUP_CHUNK_SIZE",
    "Activity",
    "ActivityExpanded",
    "CivicNo",
    "DeletedEntitiesData",
    "Duty",
    "DutyAssignment",
    "DutyExpanded",
    "Enrolment",
    "Error",
    "Group",
    "GroupExpanded",
    "GroupMembership",
    "Meta",
    "Organisation",
    "OrganisationReference",
    "Page",
    "PagingError",
    "Person",
    "PersonIdentity",
    "Problem",
    "Refused",
    "RefusedRecord",
    "SS12000Client",
    "SchoolUnitReference",
    "Syllabus",
]
