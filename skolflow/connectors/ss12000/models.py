"""SS 12000:2020 v2.1 wire models: the JSON of the official OpenAPI, field for field.

Field names are the YAML's own (camelCase), so a model reads like the contract and dumps to it
without aliases. Extra fields are kept rather than rejected: a real server may send parts of the
schema skolflow does not model (``_embedded``, vendor fields), and skolflow must accept every
document the official schema accepts. Enumerations are ``Literal`` types with the YAML's values,
so a value outside the contract fails loudly instead of being guessed at — this matters most for
``securityMarking``, which decides whether a name may be shown at all.

Only what the Betyg → Beda pipeline reads is modelled now (persons, organisations and what they
reference); duties, groups, activities and deleted entities follow the same pattern: a model per
schema here, and one line per endpoint in the client using :class:`Page`.
"""

from __future__ import annotations

import datetime as dt
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class WireModel(BaseModel):
    """Base of every SS 12000 object: unknown fields kept, dumps without unset optional fields."""

    model_config = ConfigDict(extra="allow")

    def to_wire(self) -> dict[str, object]:
        """The JSON object as the contract has it: optional fields that are ``None`` are left out."""
        return self.model_dump(mode="json", exclude_none=True)


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


Item = TypeVar("Item", bound=Entity)


class Page(WireModel, Generic[Item]):
    """One page of a list endpoint (``Organisations``, ``PersonsExpanded``, …).

    ``pageToken`` is opaque; ``None`` (or absent) means there is nothing more to fetch.
    """

    data: list[Item]
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
