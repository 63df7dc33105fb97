"""SS 12000:2020 v2.1 wire models: the JSON of the official OpenAPI, field for field.

Field names are the YAML's own (camelCase), so a model reads like the contract and dumps to it
without aliases (``_embedded`` aside, see below). Extra fields are kept rather than rejected: a real
server may send parts of the schema skolflow does not model (vendor fields, a person's ``_embedded``),
and skolflow must accept every document the official schema accepts. Enumerations are ``Literal``
types with the YAML's values, so a value outside the contract fails loudly instead of being guessed
at — this matters most for ``securityMarking``, which decides whether a name may be shown at all.

Modelled: persons and organisations (the Betyg → Beda identity join), duties, groups with their
memberships, activities with the syllabus they teach, and deleted entities (DNP provisioning). A list
endpoint answers the ``…Expanded`` schema, whose ``_embedded`` object holds what ``expand`` asked for;
it is the Python attribute ``embedded`` (a leading underscore is private in pydantic) and travels as
``_embedded``.
"""

from __future__ import annotations

import datetime as dt
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


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
    created: dt.datetime
    modified: dt.datetime


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
    securityMarking: SecurityMarking | None = None


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
    programme: ProgrammeReference | None = None
    specification: str | None = None


class Entity(WireModel):
    """What every top-level SS 12000 object has: a transfer id shared by all systems, and meta."""

    id: str
    meta: Meta


class Person(Entity):
    givenName: str
    middleName: str | None = None
    familyName: str
    eduPersonPrincipalNames: list[str] | None = None
    externalIdentifiers: list[ExternalIdentifier] | None = None
    civicNo: CivicNo | None = None
    birthDate: dt.date | None = None
    sex: Sex | None = None
    securityMarking: SecurityMarking | None = None
    personStatus: PersonStatus | None = None
    emails: list[Email] | None = None
    phoneNumbers: list[PhoneNumber] | None = None
    addresses: list[PersonAddress] | None = None
    photo: str | None = None
    enrolments: list[Enrolment] | None = None
    responsibles: list[Responsible] | None = None


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
    displayName: str
    organisationCode: str | None = None
    organisationType: OrganisationType
    organisationNumber: str | None = None
    parentOrganisation: OrganisationReference | None = None
    schoolUnitCode: str | None = None
    schoolTypes: list[SchoolType] | None = None
    address: OrganisationAddress | None = None
    municipalityCode: str | None = None
    url: str | None = None
    email: str | None = None
    phoneNumber: str | None = None
    contactInfo: list[ContactInfo] | None = None
    startDate: dt.date | None = None
    endDate: dt.date | None = None


class AssignmentRole(WireModel):
    """``Duty.assignmentRole[]``: a task towards a group (mentor, …); teaching is expressed by Activity."""

    group: GroupReference
    assignmentRoleType: AssignmentRoleType
    startDate: dt.date | None = None
    endDate: dt.date | None = None


class Duty(Entity):
    """A staff member's duty at an organisation (usually a school unit): the role they have there."""

    person: PersonReference | None = None
    assignmentRole: list[AssignmentRole] | None = None
    dutyAt: OrganisationReference
    dutyRole: DutyRole
    description: str | None = None
    signature: str | None = None
    dutyPercent: int | None = None
    hoursPerYear: int | None = None
    startDate: dt.date
    endDate: dt.date | None = None


class DutyEmbedded(WireModel):
    person: Person | None = None


class DutyExpanded(Duty):
    """What ``GET /duties`` answers: a Duty, with the person when ``expand=person`` was asked."""

    embedded: DutyEmbedded | None = Field(None, alias="_embedded")


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

    embedded: GroupEmbedded | None = Field(None, alias="_embedded")


class Syllabus(Entity):
    """A subject or course with its school type and school years: what an activity teaches.

    ``subjectDesignation`` is the short subject code (``MA``), ``courseCode`` Skolverket's course
    code (``MATMAT01a``); ``subjectCode`` is the longer code that also names the curriculum.
    """

    schoolType: SchoolType
    subjectCode: str | None = None
    subjectName: str
    subjectDesignation: str | None = None
    courseCode: str | None = None
    courseName: str | None = None
    startSchoolYear: int | None = Field(None, ge=0, le=10)
    endSchoolYear: int | None = Field(None, ge=0, le=10)
    points: int | None = None
    curriculum: Curriculum | None = None
    languageCode: str | None = None
    official: bool


class DutyAssignment(WireModel):
    """``Activity.teachers[]``: a duty (not a person) teaching the activity."""

    duty: DutyReference
    startDate: dt.date | None = None
    endDate: dt.date | None = None
    minutesPlanned: int | None = None
    grader: bool | None = None


class Activity(Entity):
    """Teachers (as duties) and groups brought together around a syllabus."""

    displayName: str
    calendarEventsRequired: bool
    startDate: dt.date
    endDate: dt.date | None = None
    activityType: ActivityType | None = None
    comment: str | None = None
    minutesPlanned: int | None = None
    groups: list[GroupReference] = Field(min_length=1)
    teachers: list[DutyAssignment] | None = None
    syllabus: SyllabusReference | None = None
    organisation: OrganisationReference
    parentActivity: ActivityReference | None = None


class ActivityEmbedded(WireModel):
    groups: list[Group] | None = None
    syllabus: Syllabus | None = None
    teachers: list[Duty] | None = None


class ActivityExpanded(Activity):
    """What ``GET /activities`` answers; ``expand`` embeds the groups, the teachers' duties, the syllabus."""

    embedded: ActivityEmbedded | None = Field(None, alias="_embedded")


Item = TypeVar("Item", bound=Entity)


class Page(WireModel, Generic[Item]):
    """One page of a list endpoint (``Organisations``, ``PersonsExpanded``, …).

    ``pageToken`` is opaque; ``None`` (or absent) means there is nothing more to fetch.
    """

    data: list[Item]
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
    """One page of ``GET /deletedEntities``: an object of id lists (not a list), and the page token."""

    data: DeletedEntitiesData
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
