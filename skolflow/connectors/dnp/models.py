"""Wire models of Skolverket's DNP Provisioning API (schemas/dnp/dnp-provisioning-api.yaml, v1.3.x).

Class names are the OpenAPI's schema names; Python attributes are snake_case, the wire camelCase.
Where the OpenAPI defines an object inline (``civicNo``, ``emails``, a ``GroupMembership``), the class
takes the ``title`` the YAML gives it, or the property's name.

Values that Skolverket *judges* (school type, group type, duty role, civic number) are plain strings
here, so that a wrong value reaches :mod:`skolflow.connectors.dnp.rules` and is answered with a
``LogEntry`` for that record instead of failing the whole request at parse time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

RecordStatus = Literal["Pending", "Success", "Error", "Warning", "TemporaryError"]
Severity = Literal["Warning", "Error"]
ObjectType = Literal["Person", "Duty", "Group", "Activity"]


class _Wire(BaseModel):
    """camelCase on the wire; unknown keys ignored so a field Skolverket adds does not break a client."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The JSON object as sent: absent optional fields stay absent."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Meta(_Wire):
    created: str | None = None
    modified: str | None = None


class ObjectReference(_Wire):
    id: str


# The YAML's reference schemas are ObjectReference with another title; one class serves them all.
PersonReference = DutyReference = GroupReference = ActivityReference = ObjectReference
OrganisationReference = SchoolUnitReference = ObjectReference


class CivicNo(_Wire):
    """``Person.civicNo``: 12 digits, samordningsnummer (day + 60) or the temporary ``ÅÅÅÅMMDDTFxx``."""

    value: str
    nationality: str | None = "SE"


class Email(_Wire):
    value: str
    type: str | None = None  # Code_EmailType


class ExternalIdentifier(_Wire):
    value: str
    context: str
    globally_unique: bool | None = None


class Enrolment(_Wire):
    enroled_at: ObjectReference
    school_type: str  # Code_SchoolType
    school_year: int | None = None
    cancelled: bool | None = None
    education_code: str | None = None


class Person(_Wire):
    id: str
    civic_no: CivicNo
    given_name: str
    family_name: str
    edu_person_principal_names: list[str]
    meta: Meta | None = None
    middle_name: str | None = None
    external_identifiers: list[ExternalIdentifier] | None = None
    security_marking: str | None = None
    emails: list[Email] | None = None
    enrolments: list[Enrolment] | None = None
    provisioning_status: bool | None = None  # readOnly


class Duty(_Wire):
    id: str
    person: ObjectReference
    duty_at: ObjectReference
    duty_role: str  # Code_DutyRole
    meta: Meta | None = None
    provisioning_status: bool | None = None  # readOnly


class GroupMembership(_Wire):
    person: ObjectReference


class Group(_Wire):
    """``Group`` = ``GroupFragment`` + ``groupMemberships``."""

    id: str
    display_name: str
    group_type: str  # Code_GroupType
    school_type: str  # Code_SchoolType
    organisation: ObjectReference
    meta: Meta | None = None
    group_memberships: list[GroupMembership] | None = None
    provisioning_status: bool | None = None  # readOnly


class DutyAssignment(_Wire):
    duty: ObjectReference


class Activity(_Wire):
    id: str
    display_name: str
    activity_type: str  # Code_ActivityType
    groups: list[ObjectReference]
    organisation: ObjectReference
    parent_activity: ObjectReference
    meta: Meta | None = None
    teachers: list[DutyAssignment] | None = None
    provisioning_status: bool | None = None  # readOnly


class LogEntry(_Wire):
    """Skolverket's error and warning record: ``id`` is its code, ``message`` its Swedish text."""

    id: str
    status_code: int
    message: str
    severity_level: Severity
    time_of_occurance: str  # sic: the OpenAPI's spelling
    message_type: str | None = None
    parameter_name: str | None = None
    parameter_value: str | None = None
    resource_type: ObjectType | None = None
    resource_id: str | None = None
    attribute_name: str | None = None
    attribute_value: str | None = None


class RecordResponse(_Wire):
    """``AsynchronousResponse.responses[].response``."""

    status: RecordStatus = "Pending"
    status_code: int | None = None
    location: str | None = None
    errors: list[LogEntry] = Field(default_factory=list)
    warnings: list[LogEntry] = Field(default_factory=list)


class RecordResult(_Wire):
    """``AsynchronousResponse.responses[]``: one record's outcome in a bulk job."""

    id: str
    response: RecordResponse
    meta: Meta = Field(default_factory=Meta)


class AsynchronousResponse(_Wire):
    job_id: str
    responses: list[RecordResult]

    @property
    def is_completed(self) -> bool:
        return all(result.response.status != "Pending" for result in self.responses)

    def by_status(self, status: RecordStatus) -> list[RecordResult]:
        return [result for result in self.responses if result.response.status == status]


class Accepted(_Wire):
    """The body of ``202_accepted``."""

    job_id: str
    message: str | None = None


class IdLookup(_Wire):
    ids: list[str] = Field(default_factory=list)


class PersonLookup(_Wire):
    """The body of ``POST /persons/lookup``."""

    ids: list[str] | None = None
    civic_nos: list[str] | None = None
    edu_person_principal_names: list[str] | None = None


RECORD_MODELS: dict[str, type[_Wire]] = {
    "persons": Person,
    "duties": Duty,
    "groups": Group,
    "activities": Activity,
}
OBJECT_TYPES: dict[str, ObjectType] = {
    "persons": "Person",
    "duties": "Duty",
    "groups": "Group",
    "activities": "Activity",
}
