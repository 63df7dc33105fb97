"""SS 12000 sandbox: persons and organisations of the synthetic data set, served as the contract says.

The huvudman is an Organisation of type Huvudman (with the data set's organisationsnummer); each
school unit is an Organisation of type Skolenhet under it, with its skolenhetskod. Every person has
a civicNo, names, securityMarking and a school e-mail; students also have an enrolment at their
school unit. Staff relate to their school unit through duties, which the sandbox does not serve
yet, but the ``relationship.entity.type=duty`` filter already finds them.

The sandbox is stricter than a lenient real server so that client bugs show up in tests: a query
parameter it does not implement (or misspells) is a 400, not silently ignored, and a ``pageToken``
combined with filters is a 400 as the contract says. Answers that are errors use the contract's
``Error`` object; a missing or wrong bearer token is a 401. ``expand`` is accepted as the contract
allows, but the data set has no duties, placements or memberships to embed, so no ``_embedded``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
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
    CivicNo,
    Email,
    Enrolment,
    Error,
    Meta,
    Organisation,
    OrganisationReference,
    OrganisationsLookup,
    OrganisationType,
    Person,
    PersonExpand,
    PersonsLookup,
    RelationshipEntityType,
    SchoolType,
    SchoolUnitReference,
)
from skolflow.identity import SAMORDNING_DAY_OFFSET
from skolflow.sandbox import dataset as ds

# The data set has no history: every object was created and last changed at this instant.
SANDBOX_META = Meta(
    created=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    modified=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
)
ENROLMENT_START = dt.date(2024, 8, 19)

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


def _error_response(error: ApiError) -> JSONResponse:
    body = Error(code=error.code, message=error.message).to_wire()
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _bad_request(exc: RequestValidationError) -> JSONResponse:
    """422 becomes the contract's 400; the message names the parameter, never echoes the value."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in err['loc'][1:]) or err['loc'][0]}: {err['msg']}" for err in exc.errors()
    )
    return _error_response(ApiError(400, "InvalidParameter", problems))


# Query parameters. extra="forbid": what the sandbox does not implement is a 400, never ignored.


class _ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(None, ge=1)
    pageToken: str | None = None
    meta_created_before: AwareDatetime | None = Field(None, alias="meta.created.before")
    meta_created_after: AwareDatetime | None = Field(None, alias="meta.created.after")
    meta_modified_before: AwareDatetime | None = Field(None, alias="meta.modified.before")
    meta_modified_after: AwareDatetime | None = Field(None, alias="meta.modified.after")
    expandReferenceNames: bool = False

    # Paging parameters and output options may accompany a pageToken; everything else is a filter.
    NOT_FILTERS: ClassVar[frozenset[str]] = frozenset({"limit", "pageToken", "expand", "expandReferenceNames"})

    def filters_set(self) -> set[str]:
        return set(self.model_fields_set) - self.NOT_FILTERS

    def meta_matches(self, meta: Meta) -> bool:
        """The contract's bounds: created/modified 'before' inclusive, 'after' exclusive."""
        return not (
            (self.meta_created_before and meta.created > self.meta_created_before)
            or (self.meta_created_after and meta.created <= self.meta_created_after)
            or (self.meta_modified_before and meta.modified > self.meta_modified_before)
            or (self.meta_modified_after and meta.modified <= self.meta_modified_after)
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


class PersonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expand: list[PersonExpand] = []
    expandReferenceNames: bool = False


class ReferenceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expandReferenceNames: bool = False


Q = TypeVar("Q", bound=_ListQuery)


def _encode_token(query: _ListQuery, offset: int) -> str:
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


def _page(items: Sequence[Item], query: _ListQuery, offset: int, page_size_max: int,
          render: Callable[[Item], dict[str, Any]]) -> dict[str, Any]:
    limit = min(query.limit or page_size_max, page_size_max)
    end = offset + limit
    body: dict[str, Any] = {"data": [render(item) for item in items[offset:end]]}
    if end < len(items):
        body["pageToken"] = _encode_token(query, end)
    return body


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
    """Renders the data set as SS 12000 objects."""

    def __init__(self, dataset: ds.Dataset):
        self.dataset = dataset

    def units(self) -> dict[str, ds.SchoolUnit]:
        return {unit.id: unit for unit in self.dataset.school_units}

    def organisations(self, names: bool) -> list[Organisation]:
        dataset = self.dataset
        top = huvudman_id(dataset)
        huvudman = Organisation(
            id=top, meta=SANDBOX_META, displayName=dataset.huvudman_name, organisationType="Huvudman",
            organisationNumber=dataset.huvudman_orgnr,
        )
        units = [
            Organisation(
                id=unit.id, meta=SANDBOX_META, displayName=unit.name, organisationType="Skolenhet",
                schoolUnitCode=unit.code,
                schoolTypes=list(dict.fromkeys(SCHOOL_TYPE_BY_FORM[form] for form in unit.school_forms)),
                parentOrganisation=OrganisationReference(id=top, displayName=dataset.huvudman_name if names else None),
            )
            for unit in dataset.school_units
        ]
        return [huvudman, *units]

    def person(self, person: ds.Person, units: dict[str, ds.SchoolUnit], names: bool) -> Person:
        student = person.role == "student"
        enrolments = None
        if student:
            unit = units[person.school_unit_id]
            record = self.dataset.records.get(person.id)
            form = record.grades[0].school_form if record and record.grades else unit.school_forms[0]
            enrolments = [Enrolment(
                enroledAt=SchoolUnitReference(id=unit.id, displayName=unit.name if names else None),
                schoolType=SCHOOL_TYPE_BY_FORM[form], startDate=ENROLMENT_START,
            )]
        return Person(
            id=person.id, meta=SANDBOX_META, givenName=person.given_name, familyName=person.family_name,
            civicNo=CivicNo(value=person.civic_no, nationality="SE"), birthDate=_birth_date(person.civic_no),
            securityMarking=person.security_marking, personStatus="Aktiv",
            emails=[Email(value=person.email, type="Skola elev" if student else "Skola personal")],
            enrolments=enrolments,
        )


def _person_matches(person: ds.Person, query: PersonsQuery) -> bool:
    if query.civicNo is not None and person.civic_no != query.civicNo:
        return False
    names = f"{person.given_name} {person.family_name}".casefold()
    if not all(part.casefold() in names for part in query.nameContains):
        return False
    relation = query.relationship_entity_type
    if relation is not None and relation not in ("enrolment", "duty"):
        return False  # the data set has no placements, guardians or group memberships
    if relation == "enrolment" and person.role != "student":
        return False
    if relation == "duty" and person.role != "staff":
        return False
    if query.relationship_organisation is not None and person.school_unit_id != str(query.relationship_organisation):
        return False
    return query.meta_matches(SANDBOX_META)


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


def create_app(dataset: ds.Dataset, token: str = "sandbox-token", page_size_max: int = 100) -> FastAPI:
    """An SS 12000 v2.1 API over ``dataset``: persons and organisations, bearer ``token``.

    ``page_size_max`` is both the default and the largest page (a larger ``limit`` is lowered to
    it, as the contract lets a server return fewer than asked) and the most values one lookup body
    may hold (more is the contract's 503 "answer too big").
    """
    wire = _Wire(dataset)
    expected = f"Bearer {token}"

    def require_bearer(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization is None or not secrets.compare_digest(authorization.encode(), expected.encode()):
            raise ApiError(401, "Unauthorized", "a valid bearer token is required",
                           headers={"WWW-Authenticate": 'Bearer realm="ss12000"'})

    def check_lookup_size(*value_lists: list[str] | None) -> None:
        if sum(len(values or ()) for values in value_lists) > page_size_max:
            raise ApiError(503, "ResponseTooLarge", f"a lookup may hold at most {page_size_max} values")

    router = APIRouter(dependencies=[Depends(require_bearer)])

    @router.get("/persons")
    def list_persons(query: Annotated[PersonsQuery, Query()]) -> dict[str, Any]:
        query, offset = _resolve_query(query)
        units = wire.units()
        matches = [p for p in dataset.persons if _person_matches(p, query)]
        return _page(matches, query, offset, page_size_max,
                     lambda p: wire.person(p, units, query.expandReferenceNames).to_wire())

    @router.post("/persons/lookup")
    def lookup_persons(body: PersonsLookup, options: Annotated[PersonOptions, Query()]) -> list[dict[str, Any]]:
        check_lookup_size(body.ids, body.civicNos)
        ids = {_uuid(value) for value in body.ids or ()}
        civic_nos = set(body.civicNos or ())
        units = wire.units()
        return [wire.person(p, units, options.expandReferenceNames).to_wire()
                for p in dataset.persons if p.id in ids or p.civic_no in civic_nos]

    @router.get("/persons/{person_id}")
    def get_person(person_id: str, options: Annotated[PersonOptions, Query()]) -> dict[str, Any]:
        key = _uuid(person_id)
        person = next((p for p in dataset.persons if p.id == key), None)
        if person is None:
            raise ApiError(404, "NotFound", "no person with this id")
        return wire.person(person, wire.units(), options.expandReferenceNames).to_wire()

    @router.get("/organisations")
    def list_organisations(query: Annotated[OrganisationsQuery, Query()]) -> dict[str, Any]:
        query, offset = _resolve_query(query)
        matches = [o for o in wire.organisations(query.expandReferenceNames) if _organisation_matches(o, query)]
        return _page(matches, query, offset, page_size_max, lambda o: o.to_wire())

    @router.post("/organisations/lookup")
    def lookup_organisations(body: OrganisationsLookup,
                             options: Annotated[ReferenceOptions, Query()]) -> list[dict[str, Any]]:
        check_lookup_size(body.ids, body.schoolUnitCodes, body.organisationCodes)
        ids = {_uuid(value) for value in body.ids or ()}
        codes = set(body.schoolUnitCodes or ())
        org_codes = set(body.organisationCodes or ())
        return [o.to_wire() for o in wire.organisations(options.expandReferenceNames)
                if o.id in ids or (o.schoolUnitCode or "") in codes or (o.organisationCode or "") in org_codes]

    @router.get("/organisations/{organisation_id}")
    def get_organisation(organisation_id: str, options: Annotated[ReferenceOptions, Query()]) -> dict[str, Any]:
        key = _uuid(organisation_id)
        found = next((o for o in wire.organisations(options.expandReferenceNames) if o.id == key), None)
        if found is None:
            raise ApiError(404, "NotFound", "no organisation with this id")
        return found.to_wire()

    app = FastAPI(title="SS 12000 sandbox (skolflow)", version="2.1.0")
    app.add_exception_handler(ApiError, lambda _request, exc: _error_response(exc))  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, lambda _request, exc: _bad_request(exc))  # type: ignore[arg-type]
    app.include_router(router)
    return app
