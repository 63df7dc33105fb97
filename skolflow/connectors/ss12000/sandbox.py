"""SS 12000 sandbox: the synthetic data set's organisations, persons, duties, groups and activities.

The huvudman is an Organisation of type Huvudman (with the data set's organisationsnummer); each
school unit is an Organisation of type Skolenhet under it, with its skolenhetskod. Every person has
a civicNo, names, securityMarking, a school e-mail and one eduPersonPrincipalName; students also have
an enrolment at their school unit (school type, school year, GY's educationCode). Staff have a duty
at their school unit (``/duties``); classes and teaching groups with their memberships are
``/groups``; teaching activities (``/activities``) link teaching groups to the teachers' duties and to
a syllabus, embedded with ``expand=syllabus``. What a test removes from the data set is listed by
``/deletedEntities``, and what it changes carries a later ``meta.modified``.

The sandbox is stricter than a lenient real server so that client bugs show up in tests: a query
parameter it does not implement (or misspells) is a 400, not silently ignored, and a ``pageToken``
combined with filters is a 400 as the contract says. Answers that are errors use the contract's
``Error`` object; a missing or wrong bearer token is a 401. ``expand`` embeds a duty's person and an
activity's groups, teachers and syllabus; the other values the contract allows (a person's
duties and memberships, a group's assignment roles) are accepted and embed nothing.

Over an imperfect data set (``Dataset.imperfect``) it serves the data set's :class:`~skolflow.sandbox.dataset.Defect`
s on their records and behaves as imperfect servers do: times without an offset (Swedish time), errors as
``{"detail": …}``, ``POST /persons/lookup`` answered 405, ``/deletedEntities`` as a bare list of ids, pages of at
most :data:`IMPERFECT_PAGE_SIZE`, and a ``pageToken`` that forgets the query's filters: it holds the position of
the page's last record in the unfiltered listing, so the next page lists that record again and then records the
filters would have left out.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from skolflow.connectors.ss12000.models import (
    DELETED_FIELDS,
    SOURCE_TIMEZONE,
    ActivityEmbedded,
    ActivityExpand,
    ActivityExpanded,
    CivicNo,
    Duty,
    DutyAssignment,
    DutyEmbedded,
    DutyExpand,
    DutyExpanded,
    DutyReference,
    DutyRole,
    Email,
    Enrolment,
    EntityType,
    Error,
    Group,
    GroupExpand,
    GroupExpanded,
    GroupMembership,
    GroupReference,
    GroupType,
    Meta,
    Organisation,
    OrganisationReference,
    OrganisationsLookup,
    OrganisationType,
    Person,
    PersonAddress,
    PersonExpand,
    PersonReference,
    PersonsLookup,
    RelationshipEntityType,
    SchoolType,
    SchoolUnitReference,
    Syllabus,
    SyllabusReference,
    WireModel,
)
from skolflow.identity import SAMORDNING_DAY_OFFSET
from skolflow.sandbox import dataset as ds
from skolflow.sandbox.dataset import Defect

ENROLMENT_START = dt.date(2024, 8, 19)
IMPERFECT_PAGE_SIZE = 20  # small pages, so that the imperfect pageToken is followed even for a small data set
SYLLABUS_NAMESPACE = uuid.UUID("0d6c7a4e-2f0b-5e55-8a63-5512000a1b0c")  # fixed: a syllabus keeps its id

# Betyg API school forms (the data set's) → SS 12000 SchoolTypesEnum.
SCHOOL_TYPE_BY_FORM: dict[str, SchoolType] = {
    "GR": "GR", "GRSAR": "GRS", "GY": "GY", "GYSAR": "GYS", "VUX": "VUX", "SARVUX": "SARVUX", "SFI": "SFI", "YH": "YH",
}


def huvudman_id(dataset: ds.Dataset) -> str:
    """The huvudman's Organisation.id: stable for an organisationsnummer, as the data set has none."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:skolflow:ss12000:huvudman:{dataset.huvudman_orgnr}"))


class ApiError(Exception):
    """An answer in the contract's Error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _error_response(error: ApiError, imperfect: bool = False) -> JSONResponse:
    """The contract's Error, or (an imperfect server) ``{"detail": …}`` as many web frameworks answer."""
    body = {"detail": error.message} if imperfect else Error(code=error.code, message=error.message).to_wire()
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _bad_request(exc: RequestValidationError) -> ApiError:
    """422 becomes the contract's 400; the message names the parameter, never echoes the value."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in err['loc'][1:]) or err['loc'][0]}: {err['msg']}" for err in exc.errors()
    )
    return ApiError(400, "InvalidParameter", problems)


# Query parameters. extra="forbid": what the sandbox does not implement is a 400, never ignored.


class _PagedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(None, ge=1)
    pageToken: str | None = None

    # Paging parameters and output options may accompany a pageToken; everything else is a filter.
    NOT_FILTERS: ClassVar[frozenset[str]] = frozenset({"limit", "pageToken", "expand", "expandReferenceNames"})

    def filters_set(self) -> set[str]:
        return set(self.model_fields_set) - self.NOT_FILTERS


class _ListQuery(_PagedQuery):
    meta_created_before: AwareDatetime | None = Field(None, alias="meta.created.before")
    meta_created_after: AwareDatetime | None = Field(None, alias="meta.created.after")
    meta_modified_before: AwareDatetime | None = Field(None, alias="meta.modified.before")
    meta_modified_after: AwareDatetime | None = Field(None, alias="meta.modified.after")
    expandReferenceNames: bool = False

    def meta_matches(self, meta: Meta) -> bool:
        return self.times_match(meta.created, meta.modified)

    def times_match(self, created: dt.datetime, modified: dt.datetime) -> bool:
        """The contract's bounds: created/modified 'before' inclusive, 'after' exclusive."""
        return not (
            (self.meta_created_before and created > self.meta_created_before)
            or (self.meta_created_after and created <= self.meta_created_after)
            or (self.meta_modified_before and modified > self.meta_modified_before)
            or (self.meta_modified_after and modified <= self.meta_modified_after)
        )


class PersonsQuery(_ListQuery):
    civicNo: str | None = None
    nameContains: list[str] = []
    relationship_entity_type: RelationshipEntityType | None = Field(None, alias="relationship.entity.type")
    relationship_organisation: uuid.UUID | None = Field(None, alias="relationship.organisation")
    expand: list[PersonExpand] = []


class OrganisationsQuery(_ListQuery):
    parent: list[uuid.UUID] = []
    schoolUnitCode: list[str] = []
    organisationCode: list[str] = []
    municipalityCode: str | None = None
    type: list[OrganisationType] = []
    schoolTypes: list[SchoolType] = []


class _DatedQuery(_ListQuery):
    start_on_or_before: dt.date | None = Field(None, alias="startDate.onOrBefore")
    start_on_or_after: dt.date | None = Field(None, alias="startDate.onOrAfter")
    end_on_or_before: dt.date | None = Field(None, alias="endDate.onOrBefore")
    end_on_or_after: dt.date | None = Field(None, alias="endDate.onOrAfter")

    def dates_match(self, start: dt.date, end: dt.date | None) -> bool:
        """The contract's date bounds, inclusive; an entity without an end date always passes the end filters."""
        return not (
            (self.start_on_or_before and start > self.start_on_or_before)
            or (self.start_on_or_after and start < self.start_on_or_after)
            or (end is not None and self.end_on_or_before and end > self.end_on_or_before)
            or (end is not None and self.end_on_or_after and end < self.end_on_or_after)
        )


class DutiesQuery(_DatedQuery):
    organisation: uuid.UUID | None = None
    dutyRole: DutyRole | None = None
    person: uuid.UUID | None = None
    expand: list[DutyExpand] = []


class GroupsQuery(_DatedQuery):
    groupType: list[GroupType] = []
    schoolTypes: list[SchoolType] = []
    organisation: list[uuid.UUID] = []
    expand: list[GroupExpand] = []


class ActivitiesQuery(_DatedQuery):
    member: uuid.UUID | None = None
    teacher: uuid.UUID | None = None
    organisation: uuid.UUID | None = None
    group: uuid.UUID | None = None
    expand: list[ActivityExpand] = []


class DeletedEntitiesQuery(_PagedQuery):
    after: AwareDatetime | None = None
    entities: list[EntityType] = []


class PersonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expand: list[PersonExpand] = []
    expandReferenceNames: bool = False


class ReferenceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expandReferenceNames: bool = False


Q = TypeVar("Q", bound=_PagedQuery)


def _encode_token(query: _PagedQuery, offset: int) -> str:
    state = {"q": query.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude={"limit", "pageToken"}),
             "o": offset}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _resolve_query(query: Q) -> tuple[Q, int]:
    """The query a page answers and where it starts: the request itself, or what its pageToken stands for."""
    if query.pageToken is None:
        return query, 0
    if query.filters_set():
        names = ", ".join(sorted(type(query).model_fields[name].alias or name for name in query.filters_set()))
        raise ApiError(400, "InvalidParameter", f"pageToken cannot be combined with filters ({names})")
    try:
        padded = query.pageToken + "=" * (-len(query.pageToken) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded))
        original = type(query).model_validate({**state["q"], **query.model_dump(
            by_alias=True, exclude_unset=True, exclude={"pageToken"})})
        offset = int(state["o"])
        if offset < 0:
            raise ValueError("negative offset")
    except (ValueError, KeyError, TypeError, binascii.Error, ValidationError) as exc:
        raise ApiError(400, "InvalidPageToken", "pageToken is not one this server gave") from exc
    return original, offset


Item = TypeVar("Item")


def _page(everything: Sequence[Item], matches: Callable[[Item], bool], query: _PagedQuery, start: int,
          page_size_max: int, render: Callable[[Sequence[Item]], Any], imperfect: bool = False) -> dict[str, Any]:
    """One page of the records of ``everything`` that ``matches``, from position ``start`` of that listing.

    The pageToken holds the position in the endpoint's whole listing where the next page's scan starts, so a page
    costs what it scans, not the whole listing (a listing of 200,000 persons is served in linear time, as a
    database with an index would). ``imperfect``: the next pageToken forgets the filters and points at the
    page's last record, which the next page repeats.
    """
    limit = min(query.limit or page_size_max, page_size_max)
    page: list[Item] = []
    last = resume = None
    for index in range(start, len(everything)):
        if matches(everything[index]):
            if len(page) == limit:
                resume = index
                break
            page.append(everything[index])
            last = index
    body: dict[str, Any] = {"data": render(page)}
    if resume is not None and last is not None:
        if not imperfect:
            body["pageToken"] = _encode_token(query, resume)
        else:
            options = query.model_dump(by_alias=True, exclude_unset=True, include=set(_PagedQuery.NOT_FILTERS))
            body["pageToken"] = _encode_token(type(query).model_validate(options), last if len(page) > 1 else last + 1)
    return body


def _each(render: Callable[[Item], dict[str, Any]]) -> Callable[[Sequence[Item]], list[dict[str, Any]]]:
    return lambda items: [render(item) for item in items]


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ApiError(400, "InvalidId", "id is not a UUID") from exc


def _birth_date(civic_no: str) -> dt.date:
    day = int(civic_no[6:8])
    if day > SAMORDNING_DAY_OFFSET:
        day -= SAMORDNING_DAY_OFFSET
    return dt.date(int(civic_no[:4]), int(civic_no[4:6]), day)


class _Wire:
    """Renders the data set as SS 12000 objects; ``names``: fill ``displayName`` of references.

    One is made per request, so its indexes see what a test changed in the data set since the last call.
    """

    def __init__(self, dataset: ds.Dataset):
        self.dataset = dataset

    def served(self, record: WireModel) -> dict[str, Any]:
        """``record`` as this server writes it: with the data set's defects of that record, and (imperfect)
        its times in Swedish time without an offset."""
        wire = record.to_wire()
        for defect in self.dataset.defective(str(wire["id"])):
            self.spoil(defect, wire)
        if self.dataset.imperfect and isinstance(wire.get("meta"), dict):
            wire["meta"] = {key: dt.datetime.fromisoformat(value).astimezone(SOURCE_TIMEZONE).replace(tzinfo=None)
                            .isoformat() for key, value in wire["meta"].items()}
        return wire

    def spoil(self, defect: Defect, wire: dict[str, Any]) -> None:
        """Write ``defect`` into the record's JSON, as the imperfect source has it (addresses: in the data)."""
        if defect in (Defect.CIVIC_NO_WITH_DASH, Defect.CIVIC_NO_UNREADABLE):
            number = wire["civicNo"]["value"]
            if defect is Defect.CIVIC_NO_UNREADABLE:
                number = number[:11] + str((int(number[11]) + 1) % 10)
            wire["civicNo"]["value"] = f"{number[2:8]}-{number[8:]}"
        elif defect is Defect.SECURITY_MARKING_OUTSIDE_ENUM:
            wire["securityMarking"] = "Hemlig"
        elif defect is Defect.NO_GIVEN_NAME:
            wire.pop("givenName", None)
        elif defect is Defect.ASSIGNMENT_ROLE_OUTSIDE_ENUM:
            unit = wire["dutyAt"]["id"]
            group = next(g.id for g in self.dataset.groups if g.school_unit_id == unit)
            wire["assignmentRole"] = [{"group": {"id": group}, "assignmentRoleType": "Lärare"}]
        elif defect is Defect.DUTY_ROLE_OUTSIDE_ENUM:
            wire["dutyRole"] = "Lärarinna"
        elif defect is Defect.NO_CALENDAR_EVENTS_REQUIRED:
            wire.pop("calendarEventsRequired", None)
        elif defect is Defect.TEACHER_AS_PERSON:
            wire["teachers"] = [{"person": {"id": self.duties[t["duty"]["id"]].person_id}}
                                for t in wire.get("teachers", [])]
        elif defect is Defect.TEACHER_WITHOUT_DUTY:
            unit = wire["organisation"]["id"]
            elsewhere = next(p.id for p in self.dataset.persons if p.role == "staff"
                             and all(d.school_unit_id != unit for d in self.dataset.duties_of(p.id)))
            wire["teachers"] = [*wire.get("teachers", []), {"person": {"id": elsewhere}}]

    @functools.cached_property
    def units(self) -> dict[str, ds.SchoolUnit]:
        return {unit.id: unit for unit in self.dataset.school_units}

    @functools.cached_property
    def groups(self) -> dict[str, ds.Group]:
        return {group.id: group for group in self.dataset.groups}

    @functools.cached_property
    def duties(self) -> dict[str, ds.Duty]:
        return {duty.id: duty for duty in self.dataset.duties}

    @functools.cached_property
    def relations(self) -> dict[str, dict[str, set[str]]]:
        """Person id → the school units they relate to, per ``relationship.entity.type``."""
        found: dict[str, dict[str, set[str]]] = {}
        for person in self.dataset.students():
            found.setdefault(person.id, {}).setdefault("enrolment", set()).add(person.school_unit_id)
        for duty in self.dataset.duties:
            found.setdefault(duty.person_id, {}).setdefault("duty", set()).add(duty.school_unit_id)
        for group in self.dataset.groups:
            for member in group.members:
                found.setdefault(member.person_id, {}).setdefault("groupMembership", set()).add(group.school_unit_id)
        return found

    def meta(self, entity_id: str) -> Meta:
        return Meta(created=ds.CREATED, modified=self.dataset.modified_at(entity_id))

    def unit_reference(self, unit_id: str, names: bool) -> OrganisationReference:
        return OrganisationReference(id=unit_id, displayName=self.units[unit_id].name if names else None)

    def person_reference(self, person_id: str, names: bool) -> PersonReference:
        person = self.dataset.person(person_id)
        return PersonReference(id=person_id, securityMarking=person.security_marking,
                               displayName=f"{person.given_name} {person.family_name}" if names else None)

    def organisations(self, names: bool) -> list[Organisation]:
        dataset = self.dataset
        top = huvudman_id(dataset)
        huvudman = Organisation(
            id=top, meta=self.meta(top), displayName=dataset.huvudman_name, organisationType="Huvudman",
            organisationNumber=dataset.huvudman_orgnr,
        )
        units = [
            Organisation(
                id=unit.id, meta=self.meta(unit.id), displayName=unit.name, organisationType="Skolenhet",
                schoolUnitCode=unit.code,
                schoolTypes=list(dict.fromkeys(SCHOOL_TYPE_BY_FORM[form] for form in unit.school_forms)),
                parentOrganisation=OrganisationReference(id=top, displayName=dataset.huvudman_name if names else None),
            )
            for unit in dataset.school_units
        ]
        return [huvudman, *units]

    def person(self, person: ds.Person, names: bool) -> Person:
        student = person.role == "student"
        enrolments = None
        if student:
            unit = self.units[person.school_unit_id]
            enrolments = [Enrolment(
                enroledAt=SchoolUnitReference(id=unit.id, displayName=unit.name if names else None),
                schoolType=SCHOOL_TYPE_BY_FORM[person.school_form or unit.school_forms[0]],
                schoolYear=person.school_year, educationCode=person.programme, startDate=ENROLMENT_START,
            )]
        address = person.address
        return Person(
            id=person.id, meta=self.meta(person.id), givenName=person.given_name, familyName=person.family_name,
            eduPersonPrincipalNames=[person.eppn] if person.eppn else None,
            civicNo=CivicNo(value=person.civic_no, nationality="SE"), birthDate=_birth_date(person.civic_no),
            securityMarking=person.security_marking, personStatus="Aktiv",
            emails=[Email(value=person.email, type="Skola elev" if student else "Skola personal")],
            # model_construct: the imperfect data set leaves out `country`, which the model requires.
            addresses=[PersonAddress.model_construct(type="Folkbokföring", streetAddress=address.street,
                                                     locality=address.locality, postalCode=address.postal_code,
                                                     country=address.country)] if address else None,
            enrolments=enrolments,
        )

    def duty(self, duty: ds.Duty, names: bool) -> dict[str, Any]:
        """A Duty's fields, for ``Duty`` (embedded in an activity) or ``DutyExpanded`` (``/duties``)."""
        return {"id": duty.id, "meta": self.meta(duty.id), "person": self.person_reference(duty.person_id, names),
                "dutyAt": self.unit_reference(duty.school_unit_id, names), "dutyRole": duty.role,
                "signature": duty.signature, "startDate": duty.start}

    def duty_expanded(self, duty: ds.Duty, names: bool, expand: Sequence[DutyExpand]) -> DutyExpanded:
        person = self.person(self.dataset.person(duty.person_id), names) if "person" in expand else None
        return DutyExpanded(**self.duty(duty, names), embedded=DutyEmbedded(person=person) if person else None)

    def group(self, group: ds.Group, names: bool) -> Group:
        return GroupExpanded(
            id=group.id, meta=self.meta(group.id), displayName=group.name, startDate=group.start,
            groupType=group.kind, schoolType=SCHOOL_TYPE_BY_FORM[group.school_form],
            organisation=self.unit_reference(group.school_unit_id, names),
            groupMemberships=[GroupMembership(person=self.person_reference(m.person_id, names), startDate=m.start,
                                              endDate=m.end) for m in group.members],
        )

    def syllabus(self, activity: ds.Activity) -> Syllabus:
        """The subject (GR, grundsärskola: ``subjectDesignation``) or course (``courseCode``) an activity teaches."""
        by_subject = activity.school_year is not None
        key = f"{activity.school_form}:{activity.code}:{activity.school_year}"
        syllabus_id = str(uuid.uuid5(SYLLABUS_NAMESPACE, key))
        return Syllabus(
            id=syllabus_id, meta=self.meta(syllabus_id), schoolType=SCHOOL_TYPE_BY_FORM[activity.school_form],
            subjectName=ds.SUBJECT_NAMES.get(activity.code, activity.code),
            subjectDesignation=activity.code if by_subject else None, courseCode=None if by_subject else activity.code,
            startSchoolYear=activity.school_year, endSchoolYear=activity.school_year, official=True,
        )

    def activity(self, activity: ds.Activity, names: bool, expand: Sequence[ActivityExpand]) -> ActivityExpanded:
        syllabus = self.syllabus(activity)
        embedded = ActivityEmbedded(
            groups=[self.group(self.groups[g], names) for g in activity.group_ids] if "groups" in expand else None,
            teachers=[Duty(**self.duty(self.duties[d], names)) for d in activity.teacher_duty_ids]
            if "teachers" in expand else None,
            syllabus=syllabus if "syllabus" in expand else None,
        )
        return ActivityExpanded(
            id=activity.id, meta=self.meta(activity.id), displayName=activity.name, calendarEventsRequired=True,
            startDate=activity.start, activityType="Undervisning",
            groups=[GroupReference(id=g, displayName=self.groups[g].name if names else None)
                    for g in activity.group_ids],
            teachers=[DutyAssignment(duty=DutyReference(id=d, displayName=self.duties[d].signature if names else None))
                      for d in activity.teacher_duty_ids],
            syllabus=SyllabusReference(id=syllabus.id, displayName=syllabus.subjectName if names else None),
            organisation=self.unit_reference(activity.school_unit_id, names),
            embedded=embedded if expand else None,
        )

    def within(self, organisation: str, unit_id: str) -> bool:
        """``unit_id`` is the organisation or under it (every unit is under the huvudman)."""
        return organisation in (unit_id, huvudman_id(self.dataset))

    def person_matches(self, person: ds.Person, query: PersonsQuery) -> bool:
        if query.civicNo is not None and person.civic_no != query.civicNo:
            return False
        names = f"{person.given_name} {person.family_name}".casefold()
        if not all(part.casefold() in names for part in query.nameContains):
            return False
        relation = query.relationship_entity_type
        organisation = query.relationship_organisation
        if relation is not None or organisation is not None:
            # Placements and guardians: the data set has none, so those relations match nobody.
            kinds = self.relations.get(person.id, {})
            related = kinds.get(relation, set()) if relation else set().union(*kinds.values())
            if not related or (organisation is not None and str(organisation) not in related):
                return False
        return query.times_match(ds.CREATED, self.dataset.modified_at(person.id))


def _organisation_matches(org: Organisation, query: OrganisationsQuery) -> bool:
    parent = org.parentOrganisation.id if org.parentOrganisation else None
    return (
        (not query.parent or parent in {str(p) for p in query.parent})
        and (not query.schoolUnitCode or org.schoolUnitCode in query.schoolUnitCode)
        and (not query.organisationCode or org.organisationCode in query.organisationCode)
        and (query.municipalityCode is None or org.municipalityCode == query.municipalityCode)
        and (not query.type or org.organisationType in query.type)
        and (not query.schoolTypes or bool(set(org.schoolTypes or ()) & set(query.schoolTypes)))
        and query.meta_matches(org.meta)
    )


def _deleted_data(deletions: Sequence[ds.Deletion]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for deletion in deletions:
        data.setdefault(DELETED_FIELDS[deletion.entity], []).append(deletion.id)  # type: ignore[index]
    return data


def create_app(dataset: ds.Dataset, token: str = "sandbox-token", page_size_max: int = 100) -> FastAPI:
    """An SS 12000 v2.1 API over ``dataset``, bearer ``token``.

    ``page_size_max`` is both the default and the largest page (a larger ``limit`` is lowered to
    it, as the contract lets a server return fewer than asked) and the most values one lookup body
    may hold (more is the contract's 503 "answer too big"). The data set is read on every call, so
    what a test changes in it is served at once; so is whether it is imperfect.
    """
    expected = f"Bearer {token}"

    def require_bearer(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization is None or not secrets.compare_digest(authorization.encode(), expected.encode()):
            raise ApiError(401, "Unauthorized", "a valid bearer token is required",
                           headers={"WWW-Authenticate": 'Bearer realm="ss12000"'})

    def check_lookup_size(*value_lists: list[str] | None) -> None:
        if sum(len(values or ()) for values in value_lists) > page_size_max:
            raise ApiError(503, "ResponseTooLarge", f"a lookup may hold at most {page_size_max} values")

    def page(everything: Sequence[Item], matches: Callable[[Item], bool], query: _PagedQuery, start: int,
             render: Callable[[Sequence[Item]], Any]) -> dict[str, Any]:
        """``_page``; an imperfect server has small pages and a pageToken that forgets the filters."""
        if not dataset.imperfect:
            return _page(everything, matches, query, start, page_size_max, render)
        return _page(everything, matches, query, start, min(page_size_max, IMPERFECT_PAGE_SIZE), render, True)

    router = APIRouter(dependencies=[Depends(require_bearer)])

    @router.get("/persons")
    def list_persons(query: Annotated[PersonsQuery, Query()]) -> dict[str, Any]:
        query, start = _resolve_query(query)
        wire = _Wire(dataset)
        return page(dataset.persons, lambda p: wire.person_matches(p, query), query, start,
                    _each(lambda p: wire.served(wire.person(p, query.expandReferenceNames))))

    @router.post("/persons/lookup")
    def lookup_persons(body: PersonsLookup, options: Annotated[PersonOptions, Query()]) -> list[dict[str, Any]]:
        if dataset.imperfect:
            raise ApiError(405, "MethodNotAllowed", "Method Not Allowed")
        check_lookup_size(body.ids, body.civicNos)
        ids = {_uuid(value) for value in body.ids or ()}
        civic_nos = set(body.civicNos or ())
        wire = _Wire(dataset)
        by_id = dataset.persons_by_id()
        found = {value: by_id[value] for value in sorted(ids) if value in by_id}
        if civic_nos:
            found |= {p.id: p for p in dataset.persons if p.civic_no in civic_nos}
        return [wire.served(wire.person(p, options.expandReferenceNames)) for p in found.values()]

    @router.get("/persons/{person_id}")
    def get_person(person_id: str, options: Annotated[PersonOptions, Query()]) -> dict[str, Any]:
        key = _uuid(person_id)
        person = dataset.persons_by_id().get(key)
        if person is None:
            raise ApiError(404, "NotFound", "no person with this id")
        wire = _Wire(dataset)
        return wire.served(wire.person(person, options.expandReferenceNames))

    @router.get("/organisations")
    def list_organisations(query: Annotated[OrganisationsQuery, Query()]) -> dict[str, Any]:
        query, start = _resolve_query(query)
        wire = _Wire(dataset)
        return page(wire.organisations(query.expandReferenceNames), lambda o: _organisation_matches(o, query), query,
                    start, _each(wire.served))

    @router.post("/organisations/lookup")
    def lookup_organisations(body: OrganisationsLookup,
                             options: Annotated[ReferenceOptions, Query()]) -> list[dict[str, Any]]:
        check_lookup_size(body.ids, body.schoolUnitCodes, body.organisationCodes)
        ids = {_uuid(value) for value in body.ids or ()}
        codes = set(body.schoolUnitCodes or ())
        org_codes = set(body.organisationCodes or ())
        wire = _Wire(dataset)
        return [wire.served(o) for o in wire.organisations(options.expandReferenceNames)
                if o.id in ids or (o.schoolUnitCode or "") in codes or (o.organisationCode or "") in org_codes]

    @router.get("/organisations/{organisation_id}")
    def get_organisation(organisation_id: str, options: Annotated[ReferenceOptions, Query()]) -> dict[str, Any]:
        key = _uuid(organisation_id)
        wire = _Wire(dataset)
        found = next((o for o in wire.organisations(options.expandReferenceNames) if o.id == key), None)
        if found is None:
            raise ApiError(404, "NotFound", "no organisation with this id")
        return wire.served(found)

    @router.get("/duties")
    def list_duties(query: Annotated[DutiesQuery, Query()]) -> dict[str, Any]:
        query, start = _resolve_query(query)
        wire = _Wire(dataset)

        def matches(d: ds.Duty) -> bool:
            return ((query.organisation is None or wire.within(str(query.organisation), d.school_unit_id))
                    and (query.dutyRole is None or d.role == query.dutyRole)
                    and (query.person is None or d.person_id == str(query.person))
                    and query.dates_match(d.start, None)
                    and query.times_match(ds.CREATED, dataset.modified_at(d.id)))

        return page(dataset.duties, matches, query, start,
                    _each(lambda d: wire.served(wire.duty_expanded(d, query.expandReferenceNames, query.expand))))

    @router.get("/groups")
    def list_groups(query: Annotated[GroupsQuery, Query()]) -> dict[str, Any]:
        query, start = _resolve_query(query)
        wire = _Wire(dataset)
        organisations = {str(o) for o in query.organisation}

        def matches(g: ds.Group) -> bool:
            return ((not query.groupType or g.kind in query.groupType)
                    and (not query.schoolTypes or SCHOOL_TYPE_BY_FORM[g.school_form] in query.schoolTypes)
                    and (not organisations or g.school_unit_id in organisations)
                    and query.dates_match(g.start, None)
                    and query.times_match(ds.CREATED, dataset.modified_at(g.id)))

        return page(dataset.groups, matches, query, start,
                    _each(lambda g: wire.served(wire.group(g, query.expandReferenceNames))))

    @router.get("/activities")
    def list_activities(query: Annotated[ActivitiesQuery, Query()]) -> dict[str, Any]:
        query, start = _resolve_query(query)
        wire = _Wire(dataset)
        member = str(query.member) if query.member else None

        def matches(a: ds.Activity) -> bool:
            return ((member is None or any(m.person_id == member for g in a.group_ids for m in wire.groups[g].members))
                    and (query.teacher is None or str(query.teacher) in a.teacher_duty_ids)
                    and (query.organisation is None or wire.within(str(query.organisation), a.school_unit_id))
                    and (query.group is None or str(query.group) in a.group_ids)
                    and query.dates_match(a.start, None)
                    and query.times_match(ds.CREATED, dataset.modified_at(a.id)))

        return page(dataset.activities, matches, query, start,
                    _each(lambda a: wire.served(wire.activity(a, query.expandReferenceNames, query.expand))))

    @router.get("/deletedEntities")
    def list_deleted(query: Annotated[DeletedEntitiesQuery, Query()]) -> dict[str, Any]:
        query, start = _resolve_query(query)

        def matches(d: ds.Deletion) -> bool:
            return (query.after is None or d.at > query.after) and (not query.entities or d.entity in query.entities)

        if dataset.imperfect:  # a bare list of ids, whatever their types
            return page(dataset.deleted, matches, query, start, lambda deletions: [d.id for d in deletions])
        return page(dataset.deleted, matches, query, start, _deleted_data)

    app = FastAPI(title="SS 12000 sandbox (skolflow)", version="2.1.0")
    app.add_exception_handler(
        ApiError, lambda _request, exc: _error_response(exc, dataset.imperfect))  # type: ignore[arg-type]
    app.add_exception_handler(
        RequestValidationError,
        lambda _request, exc: _error_response(_bad_request(exc), dataset.imperfect))  # type: ignore[arg-type]
    app.include_router(router)
    return app
