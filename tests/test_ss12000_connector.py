"""SS 12000 connector: the client against respx mocks, and client + sandbox over real HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import respx
import yaml

from skolflow.connectors.http import HttpSettings, RemoteError, RetryPolicy
from skolflow.connectors.ss12000 import PagingError, SS12000Client
from skolflow.connectors.ss12000.models import OrganisationType, SchoolType, SecurityMarking
from skolflow.connectors.ss12000.sandbox import create_app, huvudman_id
from skolflow.sandbox.dataset import SECURITY_MARKED, SECURITY_PROTECTED, Dataset, generate
from skolflow.sandbox.runner import SandboxServer, with_faults

SUBSET = Path(__file__).resolve().parents[1] / "schemas" / "ss12000" / "ss12000-subset.yaml"
BASE = "https://ss12000.example/v2.0"
TOKEN = "test-token"
FAST = HttpSettings(retry=RetryPolicy(attempts=3, backoff_base=0.001, backoff_max=0.01))


@pytest.fixture(scope="module")
def contract() -> dict[str, typing.Any]:
    return yaml.safe_load(SUBSET.read_text(encoding="utf-8"))


def _person(n: int) -> dict[str, object]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "meta": {"created": "2024-01-01T00:00:00+00:00", "modified": "2024-01-01T00:00:00+00:00"},
        "givenName": "Alva", "familyName": "Berg",
        "civicNo": {"value": "201002037271", "nationality": "SE"},
        "securityMarking": "Ingen",
        "vendorField": {"kept": True},
    }


def _org(n: int) -> dict[str, object]:
    return {
        "id": f"10000000-0000-4000-8000-{n:012d}",
        "meta": {"created": "2024-01-01T00:00:00+00:00", "modified": "2024-01-01T00:00:00+00:00"},
        "displayName": f"Skola {n}", "organisationType": "Skolenhet", "schoolUnitCode": f"{n:08d}",
    }


# Unit tests (respx)


@respx.mock
async def test_persons_follows_page_token_to_the_end_with_only_token_and_limit() -> None:
    pages = {None: ([0, 1], "p2"), "p2": ([2, 3], "p3"), "p3": ([4], None)}

    def answer(request: httpx.Request) -> httpx.Response:
        data, token = pages[request.url.params.get("pageToken")]
        body: dict[str, object] = {"data": [_person(n) for n in data]}
        if token:
            body["pageToken"] = token
        return httpx.Response(200, json=body)

    route = respx.get(f"{BASE}/persons").mock(side_effect=answer)
    async with SS12000Client(BASE, TOKEN, FAST, page_size=2) as ss:
        persons = [p async for p in ss.persons(relationship_organisation="abc", relationship_entity_type="enrolment")]

    assert [p.id[-1] for p in persons] == ["0", "1", "2", "3", "4"]
    assert persons[0].civicNo is not None and persons[0].civicNo.value == "201002037271"
    assert persons[0].model_extra == {"vendorField": {"kept": True}}
    assert route.call_count == 3
    first, *later = [call.request for call in route.calls]
    assert dict(first.url.params) == {"relationship.organisation": "abc", "relationship.entity.type": "enrolment",
                                      "limit": "2"}
    assert [dict(r.url.params) for r in later] == [{"pageToken": "p2", "limit": "2"}, {"pageToken": "p3", "limit": "2"}]
    assert all(call.request.headers["Authorization"] == f"Bearer {TOKEN}" for call in route.calls)


@respx.mock
async def test_organisations_filters_are_sent_as_the_contract_names_them() -> None:
    route = respx.get(f"{BASE}/organisations").mock(return_value=httpx.Response(200, json={"data": [_org(1)]}))
    after = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    async with SS12000Client(BASE, TOKEN, FAST, page_size=None) as ss:
        orgs = [o async for o in ss.organisations(organisation_type="Skolenhet", school_unit_code=["111", "222"],
                                                   meta_modified_after=after)]

    assert [o.schoolUnitCode for o in orgs] == ["00000001"]
    params = route.calls.last.request.url.params
    assert params.get_list("type") == ["Skolenhet"]
    assert params.get_list("schoolUnitCode") == ["111", "222"]
    assert params["meta.modified.after"] == "2025-03-01T12:00:00+01:00"  # the "+" survives encoding
    assert "limit" not in params


@respx.mock
async def test_every_filter_the_client_sends_is_a_parameter_of_the_contract(contract: dict[str, typing.Any]) -> None:
    def names(path: str) -> set[str]:
        return {p["name"] for p in contract["paths"][path]["get"]["parameters"]}

    persons = respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": []}))
    orgs = respx.get(f"{BASE}/organisations").mock(return_value=httpx.Response(200, json={"data": []}))
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        _ = [p async for p in ss.persons(
            civic_no="201002037271", name_contains="Al", relationship_entity_type="duty", relationship_organisation="x",
            meta_created_after=when, meta_created_before=when, meta_modified_after=when, meta_modified_before=when,
            expand=["duties"], expand_reference_names=True)]
        _ = [o async for o in ss.organisations(
            organisation_type="Skolenhet", school_unit_code="1", organisation_code="2", parent="3", school_types="GR",
            municipality_code="0180", meta_created_after=when, meta_created_before=when, meta_modified_after=when,
            meta_modified_before=when, expand_reference_names=False)]

    sent_persons = set(persons.calls.last.request.url.params.keys())
    sent_orgs = set(orgs.calls.last.request.url.params.keys())
    assert sent_persons <= names("/persons") and len(sent_persons) == 11
    assert sent_orgs <= names("/organisations") and len(sent_orgs) == 12


async def test_naive_datetime_filters_are_refused_before_any_call() -> None:
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        with pytest.raises(ValueError, match="timezone-aware"):
            ss.persons(meta_modified_after=dt.datetime(2025, 1, 1))


@respx.mock
async def test_lookup_persons_chunks_ids_and_merges_answers() -> None:
    bodies: list[dict[str, list[str]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        found = [_person(int(value[-12:])) for value in body.get("ids", [])]
        found += [_person(0) for _ in body.get("civicNos", [])]  # a civic number matching person 0 again
        return httpx.Response(200, json=found)

    respx.post(f"{BASE}/persons/lookup").mock(side_effect=answer)
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(250)]
    async with SS12000Client(BASE, TOKEN, FAST, lookup_chunk_size=100) as ss:
        persons = await ss.lookup_persons(ids + ids[:5], civic_nos=["201002037271"])

    assert [len(b.get("ids", [])) for b in bodies] == [100, 100, 50, 0]
    assert bodies[-1] == {"civicNos": ["201002037271"]}
    assert [p.id for p in persons] == ids  # each person once, in the order asked


@respx.mock
async def test_lookup_organisations_sends_the_contract_body_and_nothing_for_no_values() -> None:
    route = respx.post(f"{BASE}/organisations/lookup").mock(return_value=httpx.Response(200, json=[_org(7)]))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        assert await ss.lookup_organisations([]) == []
        assert route.call_count == 0
        orgs = await ss.lookup_organisations(school_unit_codes=["00000007"], expand_reference_names=True)

    assert [o.schoolUnitCode for o in orgs] == ["00000007"]
    request = route.calls.last.request
    assert json.loads(request.content) == {"schoolUnitCodes": ["00000007"]}
    assert request.url.params["expandReferenceNames"] == "true"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@respx.mock
async def test_4xx_is_raised_at_once_with_the_remote_error() -> None:
    error = {"code": "InvalidParameter", "message": "limit: must be at least 1"}
    route = respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(400, json=error))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        with pytest.raises(RemoteError) as raised:
            _ = [p async for p in ss.persons()]
    assert raised.value.status_code == 400
    assert json.loads(raised.value.body) == error
    assert route.call_count == 1  # a verdict on the request is not retried


@respx.mock
async def test_a_repeated_page_token_stops_paging() -> None:
    respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": [], "pageToken": "same"}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        with pytest.raises(PagingError):
            _ = [p async for p in ss.persons()]


@respx.mock
async def test_an_unknown_security_marking_fails_loudly() -> None:
    person = {**_person(1), "securityMarking": "Hemlig"}
    respx.get(f"{BASE}/persons/{person['id']}").mock(return_value=httpx.Response(200, json=person))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        with pytest.raises(ValueError, match="securityMarking"):
            await ss.person(str(person["id"]))


def test_model_enumerations_are_the_contracts(contract: dict[str, typing.Any]) -> None:
    schemas = contract["components"]["schemas"]
    assert set(typing.get_args(SecurityMarking)) == set(schemas["Person"]["properties"]["securityMarking"]["enum"])
    assert set(typing.get_args(OrganisationType)) == set(schemas["OrganisationTypeEnum"]["enum"])
    assert set(typing.get_args(SchoolType)) == set(schemas["SchoolTypesEnum"]["enum"])


# Integration tests: client and sandbox over real HTTP


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    data = generate(students=60, schools=4, seed=7)
    students = [i for i, p in enumerate(data.persons) if p.role == "student"]
    # Make sure both markings are present whatever the seed draws.
    data.persons[students[0]] = dataclasses.replace(data.persons[students[0]], security_marking=SECURITY_PROTECTED)
    data.persons[students[1]] = dataclasses.replace(data.persons[students[1]], security_marking=SECURITY_MARKED)
    return data


@pytest.fixture(scope="module")
def sandbox(dataset: Dataset) -> Iterator[str]:
    with SandboxServer() as srv:
        yield srv.start("ss12000", with_faults(create_app(dataset, token=TOKEN, page_size_max=7), "ss12000"))


def _client(url: str, **kwargs: typing.Any) -> SS12000Client:
    return SS12000Client(url, TOKEN, FAST, lookup_chunk_size=7, **kwargs)


@pytest.mark.parametrize("page_size", [3, 7, 100])
async def test_paging_returns_every_person_exactly_once(sandbox: str, dataset: Dataset, page_size: int) -> None:
    async with _client(sandbox, page_size=page_size) as ss:
        ids = [p.id async for p in ss.persons()]
    assert len(ids) == len(set(ids)) == len(dataset.persons)
    assert set(ids) == {p.id for p in dataset.persons}


async def test_paging_survives_injected_server_errors(dataset: Dataset) -> None:
    retrying = HttpSettings(retry=RetryPolicy(attempts=8, backoff_base=0.001, backoff_max=0.01))
    with SandboxServer() as srv:
        url = srv.start("ss12000", with_faults(create_app(dataset, token=TOKEN, page_size_max=5), "ss12000"))
        httpx.put(f"{url}/_sandbox/faults", json={"server_error": 0.3, "seed": 3}).raise_for_status()
        async with SS12000Client(url, TOKEN, retrying) as ss:
            ids = [p.id async for p in ss.persons()]
        injected = httpx.get(f"{url}/_sandbox/faults").json()["injected"]["server_error"]
    assert injected > 0
    assert sorted(ids) == sorted(p.id for p in dataset.persons)


async def test_students_have_civic_no_security_marking_and_enrolment(sandbox: str, dataset: Dataset) -> None:
    async with _client(sandbox) as ss:
        persons = {p.id: p async for p in ss.persons()}
    units = {u.id: u for u in dataset.school_units}
    for source in dataset.persons:
        person = persons[source.id]
        assert person.civicNo is not None and person.civicNo.value == source.civic_no
        assert person.civicNo.nationality == "SE"
        assert person.securityMarking == source.security_marking
        assert person.emails and person.emails[0].value == source.email
        if source.role == "student":
            assert person.enrolments and person.enrolments[0].enroledAt.id == source.school_unit_id
            assert person.enrolments[0].schoolType in {"GR", "GRS", "GY", "GYS", "VUX", "SARVUX", "SFI", "YH"}
            assert units[source.school_unit_id]
        else:
            assert not person.enrolments
    markings = {p.securityMarking for p in persons.values()}
    assert {"Ingen", "Sekretessmarkering", "Skyddad folkbokföring"} <= markings


async def test_lookup_resolves_a_batch_of_ids_across_chunks(sandbox: str, dataset: Dataset) -> None:
    wanted = [p.id for p in dataset.persons[:20]]
    unknown = "00000000-0000-4000-8000-000000000000"
    async with _client(sandbox) as ss:
        persons = await ss.lookup_persons([*wanted, unknown])
        by_civic = await ss.lookup_persons(civic_nos=[dataset.persons[3].civic_no])
    assert sorted(p.id for p in persons) == sorted(wanted)
    assert [p.id for p in by_civic] == [dataset.persons[3].id]


async def test_lookup_organisations_resolves_school_units(sandbox: str, dataset: Dataset) -> None:
    unit = dataset.school_units[1]
    async with _client(sandbox) as ss:
        by_id = await ss.lookup_organisations([u.id for u in dataset.school_units], expand_reference_names=True)
        by_code = await ss.lookup_organisations(school_unit_codes=[unit.code])
        huvudman = await ss.organisation(huvudman_id(dataset))
    assert {o.id: o.schoolUnitCode for o in by_id} == {u.id: u.code for u in dataset.school_units}
    assert all(o.parentOrganisation and o.parentOrganisation.displayName == dataset.huvudman_name for o in by_id)
    assert [o.id for o in by_code] == [unit.id]
    assert huvudman.organisationType == "Huvudman"
    assert huvudman.organisationNumber == dataset.huvudman_orgnr


async def test_filters_select_what_the_pipeline_asks_for(sandbox: str, dataset: Dataset) -> None:
    unit = dataset.school_units[2]
    target = dataset.students()[5]
    async with _client(sandbox, page_size=4) as ss:
        one = [p async for p in ss.persons(civic_no=target.civic_no)]
        enrolled = [p async for p in ss.persons(relationship_organisation=unit.id,
                                                relationship_entity_type="enrolment")]
        units = [o async for o in ss.organisations(organisation_type="Skolenhet")]
        by_code = [o async for o in ss.organisations(school_unit_code=[unit.code])]
        later = [p async for p in ss.persons(meta_modified_after=dt.datetime.now(dt.UTC))]
    assert [p.id for p in one] == [target.id]
    assert sorted(p.id for p in enrolled) == sorted(p.id for p in dataset.students() if p.school_unit_id == unit.id)
    assert {o.schoolUnitCode for o in units} == {u.code for u in dataset.school_units}
    assert all(o.parentOrganisation and o.parentOrganisation.id == huvudman_id(dataset) for o in units)
    assert [o.id for o in by_code] == [unit.id]
    assert later == []


async def test_wrong_or_missing_token_is_401(sandbox: str) -> None:
    async with SS12000Client(sandbox, "wrong", FAST) as ss:
        with pytest.raises(RemoteError) as raised:
            _ = [p async for p in ss.persons()]
    assert raised.value.status_code == 401
    assert json.loads(raised.value.body)["code"] == "Unauthorized"
    missing = httpx.get(f"{sandbox}/organisations")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_and_malformed_ids(sandbox: str) -> None:
    async with _client(sandbox) as ss:
        with pytest.raises(RemoteError) as unknown:
            await ss.person("00000000-0000-4000-8000-000000000000")
        with pytest.raises(RemoteError) as malformed:
            await ss.organisation("not-a-uuid")
    assert (unknown.value.status_code, json.loads(unknown.value.body)["code"]) == (404, "NotFound")
    assert malformed.value.status_code == 400


@pytest.mark.parametrize("query", [
    "limit=0",
    "organisationType=Skolenhet",  # the contract's parameter is `type`: a misspelt filter is never ignored
    "meta.modified.after=2025-01-01T00:00:00",  # RFC 3339 needs an offset
    "pageToken=garbage",
])
def test_bad_parameters_are_400_in_the_error_shape(sandbox: str, query: str) -> None:
    answer = httpx.get(f"{sandbox}/organisations?{query}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400
    assert set(answer.json()) == {"code", "message"}


def test_page_token_cannot_be_combined_with_filters(sandbox: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = httpx.get(f"{sandbox}/persons", params={"limit": 2}, headers=headers).json()
    combined = httpx.get(f"{sandbox}/persons", params={"pageToken": first["pageToken"], "civicNo": "1"},
                         headers=headers)
    assert combined.status_code == 400
    assert "pageToken" in combined.json()["message"]


def test_a_lookup_larger_than_the_server_takes_is_503(sandbox: str, dataset: Dataset) -> None:
    answer = httpx.post(f"{sandbox}/persons/lookup", json={"ids": [p.id for p in dataset.persons[:8]]},
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 503
    assert answer.json()["code"] == "ResponseTooLarge"


def test_sandbox_answers_conform_to_the_official_schemas(
    sandbox: str, dataset: Dataset, contract: dict[str, typing.Any]
) -> None:
    def check(answer: httpx.Response, schema: str) -> None:
        validator = jsonschema.Draft4Validator({"$ref": f"#/components/schemas/{schema}",
                                                "components": contract["components"]})
        validator.validate(answer.json())

    auth = {"Authorization": f"Bearer {TOKEN}"}
    person = dataset.students()[0]
    get = lambda path, **params: httpx.get(f"{sandbox}{path}", params=params, headers=auth)  # noqa: E731
    check(get("/persons", expandReferenceNames="true"), "PersonsExpanded")
    check(get(f"/persons/{person.id}"), "PersonExpanded")
    check(get("/organisations", limit=100), "Organisations")
    check(get(f"/organisations/{person.school_unit_id}", expandReferenceNames="true"), "Organisation")
    check(httpx.post(f"{sandbox}/persons/lookup", json={"civicNos": [person.civic_no]}, headers=auth),
          "PersonsExpandedArray")
    check(httpx.post(f"{sandbox}/organisations/lookup", json={"ids": [person.school_unit_id]}, headers=auth),
          "OrganisationsArray")
    check(get("/persons", limit=0), "Error")
    check(httpx.get(f"{sandbox}/persons"), "Error")
    # The schema must actually bite: a person without its required names is rejected.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator({"$ref": "#/components/schemas/Person", "components": contract["components"]}
                                   ).validate({"id": person.id, "meta": {}})
