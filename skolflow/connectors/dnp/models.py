"""Wire models of Skolverket's DNP Provisioning API (schemas/dnp/dnp-provisioning-api.yaml, v1.3.x).

Class names are the OpenAPI's schema names; Python attributes are snake_case, the wire camelCase.
Where the OpenAPI defines an object inline (``civicNo``, ``emails``, a ``GroupMembership``), the class
takes the ``title`` the YAML gives it, or the property's name.

Values that Skolverket *judges* (school type, group type, duty role, civic number) are plain strings
here, so that a wrong value reaches :mod:`skolflow.connectors.dnp.rules` and is answered with a
``LogEntry`` for that record instead of failing the whole request at parse time.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

RecordStatus = Literal["Pending", "Success", "Error", "Warning", "TemporaryError"]
Severity = Literal["Warning", "Error"]
ObjectType = Literal["Person", "Duty", "Group", "Activity"]
KNOWN_STATUSES: frozenset[str] = frozenset(get_args(RecordStatus))


def _as_text(value: Any) -> Any:
    """Any JSON value as text: the YAML declares these fields strings but its own example is ``0``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# A field skolflow only shows: whatever DNP sends is kept, as text, and never fails the answer it is in.
Text = Annotated[str, BeforeValidator(_as_text)]


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
    """Skolverket's error and warning record: ``id`` is its code, ``message`` its Swedish text.

    The values it quotes (``attributeValue``, ``parameterValue``) are kept as text whatever JSON scalar DNP
    sends (the YAML's own example of a "string" attributeValue is ``0``), and a severity or resource type the
    enums do not list is kept as written: one odd entry must not fail the job answer that carries every
    record's outcome.
    """

    id: Text
    status_code: int
    message: Text
    severity_level: Severity | Text
    time_of_occurance: Text = ""  # sic: the OpenAPI's spelling
    message_type: Text | None = None
    parameter_name: Text | None = None
    parameter_value: Text | None = None
    resource_type: ObjectType | Text | None = None
    resource_id: Text | None = None
    attribute_name: Text | None = None
    attribute_value: Text | None = None


class RecordResponse(_Wire):
    """``AsynchronousResponse.responses[].response``.

    ``status`` is kept as DNP wrote it, even a value its enum does not list (the enum grew with ``Warning`` in
    1.3.0 and may grow again): such a record is read, not refused, and :attr:`settled` says what it means.
    """

    status: RecordStatus | Text = "Pending"
    status_code: int | None = None
    location: Text | None = None
    errors: list[LogEntry] = Field(default_factory=list)
    warnings: list[LogEntry] = Field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.status in KNOWN_STATUSES

    @property
    def settled(self) -> RecordStatus:
        """The status skolflow acts on. A listed one as it is; an unknown one by what the answer carries besides.

        An unknown status is not final by itself. The contract's own fields decide: ``errors`` are "returned only
        if an error occurred, which means the record was not accepted" → ``Error``; no errors and a 2xx
        ``statusCode`` (the record was stored) → ``Warning``, accepted with the unknown status's text shown as
        its warning; anything else → ``Pending``: no final answer, so the record is sent again by the next run.
        """
        if self.status in KNOWN_STATUSES:
            return self.status  # type: ignore[return-value]
        if self.errors:
            return "Error"
        if self.status_code is not None and 200 <= self.status_code < 300:
            return "Warning"
        return "Pending"


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
        """Every record has a final answer (an unknown status counts as final only as :attr:`settled` reads it)."""
        return all(result.response.settled != "Pending" for result in self.responses)

    def by_status(self, status: RecordStatus) -> list[RecordResult]:
        """The records whose :attr:`RecordResponse.settled` status is ``status``."""
        return [result for result in self.responses if result.response.settled == status]


class Accepted(_Wire):
    """The body of ``202_accepted``; its ``jobId`` is not required by the contract (``Location`` names the job too)."""

    job_id: str | None = None
    message: Text | None = None


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
