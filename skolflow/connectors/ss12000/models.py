"""SS 12000:2020 v2.1 wire models: the JSON of the official OpenAPI, field for field, read tolerantly.

Field names are the YAML's own (camelCase), so a model reads like the contract and dumps to it
without aliases (``_embedded`` aside, see below). Extra fields are kept rather than rejected: a real
server may send parts of the schema skolflow does not model (vendor fields, a person's ``_embedded``),
and skolflow must accept every document the official schema accepts.

Real student-information systems also send what the schema does not accept, so the models are strict
only where skolflow reads (DESIGN §5, tolerant readers); the client reads a page record by record and
refuses a record for these checks alone, naming its id, the field and the rule:

- A field skolflow never reads is :data:`Unread`: kept when it reads as the contract says, dropped
  (``None``) when it does not — an address without ``country``, an ``assignmentRoleType`` outside the
  enum, a missing ``calendarEventsRequired`` cost the record nothing.
- A field skolflow reads keeps the contract's type: required is required, and an enumeration is a
  ``Literal`` of the YAML's values, so a value outside the contract refuses the record instead of being
  guessed at — this matters most for ``securityMarking``, which decides whether a name may be shown at
  all. A reader that needs less reads a smaller model (:class:`PersonIdentity` for the identity join),
  so a record is never refused for what its reader does not use. ``Organisation.schoolTypes`` is the
  exception: skolflow only asks whether it holds a DNP school type, and a value outside the enum is not
  one, so its values are plain strings.
- Times without an offset are taken as Swedish time (Europe/Stockholm), where SS 12000 servers run.
- Read from a source (the client passes :data:`READ_FROM_SOURCE` as validation context), a ``civicNo``
  written with a separator or in ten digits (``ÅÅMMDD-NNNN``) becomes the contract's twelve digits by
  :func:`skolflow.identity.parse_swedish_identity`'s one policy, and one that policy refuses is refused
  with its rule. Models built in code (the sandbox, tests) are taken as given.
- An activity's teacher given as ``{person}`` instead of ``{duty}`` is read (:class:`DutyAssignment`);
  the mapping finds the person's duty.

Modelled: persons and organisations (the Betyg → Beda identity join), duties, groups with their
memberships, activities with the syllabus they teach, and deleted entities (DNP provisioning). A list
endpoint answers the ``…Expanded`` schema, whose ``_embedded`` object holds what ``expand`` asked for;
it is the Python attribute ``embedded`` (a leading underscore is private in pydantic) and travels as
``_embedded``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from skolflow.identity import InvalidIdentity, parse_swedish_identity

# Where SS 12000 servers keep their clocks: a time written without an offset is taken as this zone's.
SOURCE_TIMEZONE = ZoneInfo("Europe/Stockholm")
# Validation context of what the client reads from a server (see CivicNo).
READ_FROM_SOURCE: dict[str, bool] = {"read_from_source": True}
# Twelve characters without a separator: the contract's form, left for Beda's and DNP's rules to judge
# (digits, or DNP's temporary ÅÅÅÅMMDDTFxx).
_CONTRACT_CIVIC_NO = re.compile(r"[0-9A-Za-z]{12}")


def civic_no_in_contract_form(value: str) -> str:
    """``value`` as the contract writes it: twelve characters without a separator are left for Beda's and DNP's
    rules to judge; any other form is read by the one separator policy (InvalidIdentity when it refuses it)."""
    return value if _CONTRACT_CIVIC_NO.fullmatch(value) else parse_swedish_identity(value).number


def _dropped_if_unreadable(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


# A field skolflow never reads: read if it can be, else dropped, never the reason a record is refused.
Unread = WrapValidator(_dropped_if_unreadable)


def _with_offset(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=SOURCE_TIMEZONE)


SourceDateTime = Annotated[dt.datetime, AfterValidator(_with_offset)]


class WireModel(BaseModel):
    """Base of every SS 12000 object: unknown fields kept, dumps without unset optional fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_wire(self) -> dict[str, object]:
        """The JSON object as the contract has it: optional fields that are ``None`` are left out."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


OrganisationType = Literal[
    "Huvudman", "Verksamhetsområde", "Förvaltning", "Rektorsområde", "Skola", "Skolenhet", "Varumärke", "Bolag",
    "Övrigt",
]
SchoolType = Literal[
    "FS", "FKLASS", "FTH", "OPPFTH", "GR", "GRS", "TR", "SP", "SAM", "GY", "GYS", "VUX", "VUXSFI", "VUXGR", "VUXGY",
    "VUXSARGR", "VUXSARTR", "VUXSARGY", "SFI", "SARVUX", "SARVUXGR", "SARVUXGY", "KU", "YH", "FHS", "STF", "KKU", "HS",
    "ABU", "AU",
]
SecurityMarking = Literal["Ingen", "Sekretessmarkering", "Skyddad folkbokföring"]
Sex = Literal["Man", "Kvinna", "Okänt"]
PersonStatus = Literal["Aktiv", "Utvandrad", "Avliden"]
EmailType = Literal["Privat", "Skola elev", "Skola personal", "Arbete övrigt"]
PhoneNumberType = Literal["Hem", "Arbete"]
AddressType = Literal["Folkbokföring", "Särskild postadress", "Tillfällig adress", "Postadress"]
OrganisationAddressType = Literal["Besöksadress", "Leveransadress", "Postadress", "Fakturaadress"]
ContactInfoType = Literal["Support", "Publik"]
RelationType = Literal["Vårdnadshavare", "Annan ansvarig", "God man", "Utsedd behörig"]
RelationshipEntityType = Literal[
    "enrolment", "duty", "placement.child", "placement.owner", "responsibleFor.enrolment", "responsibleFor.placement",
    "groupMembership",
]
PersonExpand = Literal["duties", "responsibleFor", "placements", "ownedPlacements", "groupMemberships"]
DutyRole = Literal[
    "Rektor", "Lärare", "Förskollärare", "Barnskötare", "Bibliotekarie", "Lärarassistent", "Fritidspedagog",
    "Annan personal", "Studie- och yrkesvägledare", "Förstelärare", "Kurator", "Skolsköterska", "Skolläkare",
    "Skolpsykolog", "Speciallärare/specialpedagog", "Skoladministratör", "Övrig arbetsledning",
    "Övrig pedagogisk personal", "Förskolechef",
]
AssignmentRoleType = Literal[
    "Mentor", "Förskollärare", "Barnskötare", "Fritidspedagog", "Specialpedagog", "Elevhälsopersonal",
    "Pedagogisk ledare", "Schemaläggare", "Lärarassistent", "Administrativ personal",
]
GroupType = Literal["Undervisning", "Klass", "Mentor", "Provgrupp", "Schema", "Avdelning", "Personalgrupp", "Övrigt"]
ActivityType = Literal["Undervisning", "Elevaktivitet", "Provaktivitet", "Läraraktivitet", "Övrigt"]
Curriculum = Literal[
    "Lgy70", "Lgr80", "Lpo94", "Lpf94", "Lpfö98", "GR2000", "GY2000", "GYSÄR2000", "GYVUX2000", "GYVUX2001",
    "GYVUX2002", "GR2011", "GRSÄR2011", "SPEC2011", "SAM2011", "Lvux12", "GY2011", "GYSÄR2013", "VU2013",
]
# Code_ObjectType (EndPointsEnum): the entity types /deletedEntities is asked about.
EntityType = Literal[
    "Absence", "AttendanceEvent", "Attendance", "Grade", "CalendarEvent", "AttendanceSchedule", "Resource", "Room",
    "Activity", "Duty", "Placement", "StudyPlan", "Programme", "Syllabus", "SchoolUnitOffering", "Group", "Person",
    "Organisation",
]
DutyExpand = Literal["person"]
GroupExpand = Literal["assignmentRoles"]
ActivityExpand = Literal["groups", "teachers", "syllabus"]


class Meta(WireModel):
    created: SourceDateTime
    modified: SourceDateTime


class ObjectReference(WireModel):
    """A reference by id; ``displayName`` only when the request asked for ``expandReferenceNames``."""

    id: str
    displayName: str | None = None


class OrganisationReference(ObjectReference):
    pass


class SchoolUnitReference(ObjectReference):
    """An OrganisationReference that points at an organisation of type Skolenhet."""


class ProgrammeReference(ObjectReference):
    pass


class PersonReference(ObjectReference):
    securityMarking: Annotated[SecurityMarking | None, Unread] = None


class DutyReference(ObjectReference):
    pass


class GroupReference(ObjectReference):
    pass


class ActivityReference(ObjectReference):
    pass


class SyllabusReference(ObjectReference):
    pass


class CivicNo(WireModel):
    """Personnummer, samordningsnummer or a temporary number: 12 characters without separator."""

    value: str
    nationality: str = "SE"

    @field_validator("value")
    @classmethod
    def _in_the_contracts_form(cls, value: str, info: ValidationInfo) -> str:
        """Read from a source, ``ÅÅMMDD-NNNN`` and the other written forms become the 12 digits, or the record is
        refused with the identity rule the number breaks."""
        if not (info.context or {}).get("read_from_source"):
            return value
        try:
            return civic_no_in_contract_form(value)
        except InvalidIdentity as exc:
            raise PydanticCustomError(f"identity_{exc.rule.name.lower()}", "not a personnummer or "
                                      "samordningsnummer: {rule}", {"rule": exc.rule.value}) from None


class Email(WireModel):
    value: str
    type: EmailType


class PhoneNumber(WireModel):
    value: str
    type: PhoneNumberType
    mobile: bool = True


class ExternalIdentifier(WireModel):
    value: str
    context: str
    globallyUnique: bool


class PersonAddress(WireModel):
    """``Person.addresses[]``: served by the sandbox, never read by skolflow."""

    type: AddressType = "Folkbokföring"
    streetAddress: str
    locality: str
    postalCode: str
    countyCode: int | None = None
    municipalityCode: int | None = None
    realEstateDesignation: str | None = None
    country: str


class Responsible(WireModel):
    person: PersonReference | None = None
    relationType: RelationType | None = None


class Enrolment(WireModel):
    enroledAt: SchoolUnitReference
    schoolYear: int | None = Field(None, ge=0, le=10)
    schoolType: SchoolType
    startDate: dt.date
    endDate: dt.date | None = None
    cancelled: bool | None = None
    educationCode: str | None = None
    programme: Annotated[ProgrammeReference | None, Unread] = None
    specification: str | None = None


class Entity(WireModel):
    """What every top-level SS 12000 object has: a transfer id shared by all systems, and meta.

    ``meta`` is required by the contract, but skolflow reads every source whole and never by time.
    """

    id: str
    meta: Annotated[Meta | None, Unread] = None


class PersonIdentity(Entity):
    """What the identity join reads of a Person: its civic number and security marking, nothing else."""

    civicNo: CivicNo | None = None
    securityMarking: SecurityMarking | None = None


class Person(PersonIdentity):
    """A Person as DNP provisioning reads it: names, EPPNs, e-mail addresses and enrolments too."""

    givenName: str
    middleName: str | None = None
    familyName: str
    eduPersonPrincipalNames: list[str] | None = None
    externalIdentifiers: list[ExternalIdentifier] | None = None
    birthDate: Annotated[dt.date | None, Unread] = None
    sex: Annotated[Sex | None, Unread] = None
    personStatus: Annotated[PersonStatus | None, Unread] = None
    emails: list[Email] | None = None
    phoneNumbers: Annotated[list[PhoneNumber] | None, Unread] = None
    addresses: Annotated[list[PersonAddress] | None, Unread] = None
    photo: Annotated[str | None, Unread] = None
    enrolments: list[Enrolment] | None = None
    responsibles: Annotated[list[Responsible] | None, Unread] = None


class OrganisationAddress(WireModel):
    type: OrganisationAddressType | None = None
    streetAddress: str
    locality: str
    postalCode: str
    countyCode: int | None = None
    municipalityCode: int | None = None
    realEstateDesignation: str | None = None
    country: str | None = None


class ContactInfo(WireModel):
    infoType: ContactInfoType | None = None
    info: str | None = None


class Organisation(Entity):
    """``schoolTypes`` holds SchoolTypesEnum values, as plain strings (see the module's docstring)."""

    displayName: Annotated[str | None, Unread] = None
    organisationCode: str | None = None
    organisationType: OrganisationType
    organisationNumber: str | None = None
    parentOrganisation: OrganisationReference | None = None
    schoolUnitCode: str | None = None
    schoolTypes: list[str] | None = None
    address: Annotated[OrganisationAddress | None, Unread] = None
    municipalityCode: Annotated[str | None, Unread] = None
    url: Annotated[str | None, Unread] = None
    email: Annotated[str | None, Unread] = None
    phoneNumber: Annotated[str | None, Unread] = None
    contactInfo: Annotated[list[ContactInfo] | None, Unread] = None
    startDate: Annotated[dt.date | None, Unread] = None
    endDate: Annotated[dt.date | None, Unread] = None


class AssignmentRole(WireModel):
    """``Duty.assignmentRole[]``: a task towards a group (mentor, …); teaching is expressed by Activity."""

    group: GroupReference
    assignmentRoleType: AssignmentRoleType
    startDate: dt.date | None = None
    endDate: dt.date | None = None


class Duty(Entity):
    """A staff member's duty at an organisation (usually a school unit): the role they have there."""

    person: PersonReference | None = None
    assignmentRole: Annotated[list[AssignmentRole] | None, Unread] = None
    dutyAt: OrganisationReference
    dutyRole: DutyRole
    description: Annotated[str | None, Unread] = None
    signature: Annotated[str | None, Unread] = None
    dutyPercent: Annotated[int | None, Unread] = None
    hoursPerYear: Annotated[int | None, Unread] = None
    startDate: dt.date
    endDate: dt.date | None = None


class DutyEmbedded(WireModel):
    person: Person | None = None


class DutyExpanded(Duty):
    """What ``GET /duties`` answers: a Duty, with the person when ``expand=person`` was asked."""

    embedded: Annotated[DutyEmbedded | None, Unread] = Field(None, alias="_embedded")


class GroupMembership(WireModel):
    person: PersonReference
    startDate: dt.date | None = None
    endDate: dt.date | None = None


class Group(Entity):
    """``Group`` = ``GroupFragment`` + ``groupMemberships``. Note ``schoolType``: one per group."""

    displayName: str
    startDate: dt.date
    endDate: dt.date | None = None
    groupType: GroupType
    schoolType: SchoolType | None = None
    organisation: OrganisationReference
    groupMemberships: list[GroupMembership] | None = None


class GroupAssignmentRole(WireModel):
    duty: DutyReference | None = None
    assignmentRoleType: AssignmentRoleType | None = None
    startDate: dt.date | None = None
    endDate: dt.date | None = None


class GroupEmbedded(WireModel):
    assignmentRoles: list[GroupAssignmentRole] | None = None


class GroupExpanded(Group):
    """What ``GET /groups`` answers; ``expand=assignmentRoles`` embeds the duties' tasks towards the group."""

    embedded: Annotated[GroupEmbedded | None, Unread] = Field(None, alias="_embedded")


class Syllabus(Entity):
    """A subject or course with its school type and school years: what an activity teaches.

    ``subjectDesignation`` is the short subject code (``MA``), ``courseCode`` Skolverket's course
    code (``MATMAT01a``); ``subjectCode`` is the longer code that also names the curriculum.
    """

    schoolType: SchoolType
    subjectCode: str | None = None
    subjectName: Annotated[str | None, Unread] = None
    subjectDesignation: str | None = None
    courseCode: str | None = None
    courseName: Annotated[str | None, Unread] = None
    startSchoolYear: Annotated[int | None, Unread] = None
    endSchoolYear: Annotated[int | None, Unread] = None
    points: Annotated[int | None, Unread] = None
    curriculum: Annotated[Curriculum | None, Unread] = None
    languageCode: Annotated[str | None, Unread] = None
    official: Annotated[bool | None, Unread] = None


class DutyAssignment(WireModel):
    """``Activity.teachers[]``: a duty teaching the activity.

    The contract requires ``duty``; some servers name the teacher's ``person`` instead, which is read too
    (not part of the contract): DNP provisioning maps it to the person's duty at the activity's unit.
    """

    duty: DutyReference | None = None
    person: PersonReference | None = None
    startDate: dt.date | None = None
    endDate: dt.date | None = None
    minutesPlanned: Annotated[int | None, Unread] = None
    grader: Annotated[bool | None, Unread] = None


class Activity(Entity):
    """Teachers (as duties) and groups brought together around a syllabus."""

    displayName: str
    calendarEventsRequired: Annotated[bool | None, Unread] = None
    startDate: dt.date
    endDate: dt.date | None = None
    activityType: ActivityType | None = None
    comment: Annotated[str | None, Unread] = None
    minutesPlanned: Annotated[int | None, Unread] = None
    groups: list[GroupReference] = Field(min_length=1)
    teachers: list[DutyAssignment] | None = None
    syllabus: SyllabusReference | None = None
    organisation: OrganisationReference
    parentActivity: Annotated[ActivityReference | None, Unread] = None


class ActivityEmbedded(WireModel):
    groups: Annotated[list[Group] | None, Unread] = None
    syllabus: Syllabus | None = None
    teachers: Annotated[list[Duty] | None, Unread] = None


class ActivityExpanded(Activity):
    """What ``GET /activities`` answers; ``expand`` embeds the groups, the teachers' duties, the syllabus."""

    embedded: ActivityEmbedded | None = Field(None, alias="_embedded")


class Page(WireModel):
    """One page of a list endpoint (``Organisations``, ``PersonsExpanded``, …), its records not yet read.

    The client reads ``data`` record by record, so that one record the contract does not describe is
    refused alone. ``pageToken`` is opaque; ``None`` (or absent) means there is nothing more to fetch.
    """

    data: list[Any]
    pageToken: str | None = None


# EndPointsEnum value → its list in DeletedEntities.data.
DELETED_FIELDS: dict[EntityType, str] = {
    "Absence": "absences", "AttendanceEvent": "attendanceEvents", "Attendance": "attendances", "Grade": "grades",
    "CalendarEvent": "calendarEvents", "AttendanceSchedule": "attendanceSchedules", "Resource": "resources",
    "Room": "rooms", "Activity": "activitites", "Duty": "duties", "Placement": "placements",
    "StudyPlan": "studyPlans", "Programme": "programmes", "Syllabus": "syllabuses",
    "SchoolUnitOffering": "schoolUnitOfferings", "Group": "groups", "Person": "persons",
    "Organisation": "organisations",
}


class DeletedEntitiesData(WireModel):
    """Ids removed from the source, per entity type, as ``GET /deletedEntities`` lists them.

    ``activitites`` is the contract's own spelling; a server that corrects it to ``activities`` is
    read too (the key is kept as an extra field), see :meth:`ids`.
    """

    absences: list[str] | None = None
    attendanceEvents: list[str] | None = None
    attendances: list[str] | None = None
    grades: list[str] | None = None
    calendarEvents: list[str] | None = None
    attendanceSchedules: list[str] | None = None
    resources: list[str] | None = None
    rooms: list[str] | None = None
    activitites: list[str] | None = None
    duties: list[str] | None = None
    placements: list[str] | None = None
    studyPlans: list[str] | None = None
    programmes: list[str] | None = None
    syllabuses: list[str] | None = None
    schoolUnitOfferings: list[str] | None = None
    groups: list[str] | None = None
    persons: list[str] | None = None
    organisations: list[str] | None = None

    def ids(self, entity: EntityType) -> list[str]:
        """The removed ids of one entity type (``"Person"``, ``"Activity"``, …)."""
        if entity == "Activity":
            corrected = (self.model_extra or {}).get("activities") or []
            return list(dict.fromkeys([*(self.activitites or []), *corrected]))
        return list(getattr(self, DELETED_FIELDS[entity]) or [])


class DeletedEntities(WireModel):
    """One page of ``GET /deletedEntities``: an object of id lists, and the page token.

    Some servers answer a bare list of ids instead (in ``data``, or as the whole body); the client reads
    that too (:meth:`skolflow.connectors.ss12000.client.SS12000Client.deleted_entities`).
    """

    data: DeletedEntitiesData | list[Any]
    pageToken: str | None = None


class PersonsLookup(WireModel):
    """Body of ``POST /persons/lookup``: person ids and/or 12-digit civic numbers."""

    ids: list[str] | None = None
    civicNos: list[str] | None = None


class OrganisationsLookup(WireModel):
    """Body of ``POST /organisations/lookup``."""

    ids: list[str] | None = None
    schoolUnitCodes: list[str] | None = None
    organisationCodes: list[str] | None = None


class Error(WireModel):
    """The contract's error answer: a source-specific technical ``code`` and a ``message``."""

    code: str
    message: str
