"""SS 12000 connector: the client against respx mocks, and client + sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import respx
import yaml

from skolflow.connectors.http import HttpSettings, RemoteError, RetryPolicy
from skolflow.connectors.ss12000 import PagingError, PersonIdentity, Problem, SS12000Client
from skolflow.connectors.ss12000.models import (
    DELETED_FIELDS,
    SOURCE_TIMEZONE,
    Activity,
    ActivityType,
    AssignmentRoleType,
    Curriculum,
    DeletedEntitiesData,
    DutyRole,
    EntityType,
    GroupType,
    OrganisationType,
    SchoolType,
    SecurityMarking,
)
from skolflow.connectors.ss12000.sandbox import SCHOOL_TYPE_BY_FORM, create_app, huvudman_id
from skolflow.sandbox import systems
from skolflow.sandbox.dataset import (
    CLASS,
    EPPN_DOMAINS,
    PRINCIPAL,
    SECURITY_MARKED,
    SECURITY_PROTECTED,
    TEACHER,
    TEACHING,
    TOLERATED,
    Dataset,
    Defect,
    generate,
)
from skolflow.sandbox.runner import SandboxServer, with_faults
from tests.remote import MOCKED_REMOTE

SUBSET = Path(__file__).resolve().parents[1] / "schemas" / "ss12000" / "ss12000-subset.yaml"
BASE = "https://ss12000.example/v2.0"
TOKEN = "test-token"
FAST = HttpSettings(retry=RetryPolicy(attempts=3, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)


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


def _three_pages(request: httpx.Request) -> httpx.Response:
    pages = {None: ([0, 1], "p2"), "p2": ([2, 3], "p3"), "p3": ([4], None)}
    data, token = pages[request.url.params.get("pageToken")]
    return httpx.Response(200, json={"data": [_person(n) for n in data], **({"pageToken": token} if token else {})})


@respx.mock
async def test_the_next_page_is_asked_for_while_the_reader_is_still_on_this_one() -> None:
    route = respx.get(f"{BASE}/persons").mock(side_effect=_three_pages)
    async with SS12000Client(BASE, TOKEN, FAST, page_size=2) as ss:
        listing = ss.persons()
        first = await anext(listing)
        for _ in range(20):  # the reader works on its first person; the client's request runs meanwhile
            await asyncio.sleep(0)
        asked_while_reading = route.call_count
        rest = [p async for p in listing]

    assert first.id.endswith("0") and [p.id[-1] for p in rest] == ["1", "2", "3", "4"]
    assert asked_while_reading == 2
    assert route.call_count == 3  # each page once, none after the last


@respx.mock
async def test_a_reader_that_stops_early_leaves_no_page_request_behind() -> None:
    route = respx.get(f"{BASE}/persons").mock(side_effect=_three_pages)
    async with SS12000Client(BASE, TOKEN, FAST, page_size=2) as ss:
        async with contextlib.aclosing(ss.persons()) as listing:
            async for _ in listing:
                break
        for _ in range(20):
            await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert route.call_count <= 2  # the first page, and at most the one asked for ahead, which was cancelled
    assert pending == []


async def _turns_while_a_page_is_read(records: int) -> tuple[int, int]:
    """(records read after the first, turns other work on the loop got meanwhile) for one page of persons."""
    respx.get(f"{BASE}/persons").mock(
        return_value=httpx.Response(200, json={"data": [_person(n) for n in range(records)]}))
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        listing = ss.persons()
        await anext(listing)
        other = asyncio.ensure_future(other_work())
        await asyncio.sleep(0)
        at_first = turns
        rest = [p async for p in listing]  # the rest of the one page: nothing in this loop waits on anything
        other.cancel()
    return len(rest), turns - at_first


@respx.mock
async def test_a_large_page_gives_other_work_on_the_loop_a_turn_whenever_reading_took_its_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Turns are spaced by the time reading took, not by a count of records (a group with its memberships takes
    ten times a person's): with no time allowed every record gives one, with an hour none does."""
    from skolflow.connectors.ss12000 import client

    monkeypatch.setattr(client, "TURN_SECONDS", 0.0)
    read, turns = await _turns_while_a_page_is_read(250)
    assert read == 249
    assert turns >= 249

    monkeypatch.setattr(client, "TURN_SECONDS", 3600.0)
    read, turns = await _turns_while_a_page_is_read(250)
    assert read == 249
    assert turns == 0


@respx.mock
async def test_organisations_filters_are_sent_as_the_contract_names_them() -> None:
    route = respx.get(f"{BASE}/organisations").mock(return_value=httpx.Response(200, json={"data": [_org(1)]}))
    after = dt.datetime(2023, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    async with SS12000Client(BASE, TOKEN, FAST, page_size=None) as ss:
        orgs = [o async for o in ss.organisations(organisation_type="Skolenhet",
                                                   school_unit_code=["00000001", "222"], meta_modified_after=after)]

    assert [o.schoolUnitCode for o in orgs] == ["00000001"]
    params = route.calls.last.request.url.params
    assert params.get_list("type") == ["Skolenhet"]
    assert params.get_list("schoolUnitCode") == ["00000001", "222"]
    assert params["meta.modified.after"] == "2023-03-01T12:00:00+01:00"  # the "+" survives encoding
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


@respx.mock
async def test_duty_group_activity_and_deletion_filters_are_the_contract_s(contract: dict[str, typing.Any]) -> None:
    def names(path: str) -> set[str]:
        return {p["name"] for p in contract["paths"][path]["get"]["parameters"]}

    routes = {path: respx.get(f"{BASE}{path}").mock(return_value=httpx.Response(200, json={"data": []}))
              for path in ("/duties", "/groups", "/activities")}
    deleted = respx.get(f"{BASE}/deletedEntities").mock(return_value=httpx.Response(200, json={"data": {}}))
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    day = dt.date(2025, 8, 18)
    dates = {"start_date_on_or_before": day, "start_date_on_or_after": day, "end_date_on_or_before": day,
             "end_date_on_or_after": day}
    meta = {"meta_created_after": when, "meta_created_before": when, "meta_modified_after": when,
            "meta_modified_before": when}
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        _ = [d async for d in ss.duties(organisation="o", duty_role="Lärare", person="p", expand=["person"],
                                        expand_reference_names=True, **dates, **meta)]
        _ = [g async for g in ss.groups(group_type=["Klass", "Undervisning"], school_types="GR", organisation="o",
                                        expand=["assignmentRoles"], expand_reference_names=True, **dates, **meta)]
        _ = [a async for a in ss.activities(member="m", teacher="t", organisation="o", group="g",
                                            expand=["groups", "teachers", "syllabus"], expand_reference_names=True,
                                            **dates, **meta)]
        await ss.deleted_entities(after=when, entities=["Person", "Group"])

    expected = {"/duties": 14, "/groups": 14, "/activities": 15}
    for path, route in routes.items():
        sent = set(route.calls.last.request.url.params.keys())
        assert sent <= names(path) and len(sent) == expected[path], path
    params = routes["/groups"].calls.last.request.url.params
    assert params.get_list("groupType") == ["Klass", "Undervisning"]
    assert params["endDate.onOrAfter"] == "2025-08-18"
    assert routes["/activities"].calls.last.request.url.params.get_list("expand") == ["groups", "teachers", "syllabus"]
    sent_deleted = deleted.calls.last.request.url.params
    assert set(sent_deleted.keys()) <= names("/deletedEntities") | {"limit"}
    assert sent_deleted.get_list("entities") == ["Person", "Group"]
    assert sent_deleted["after"] == "2025-01-01T00:00:00+00:00"


@respx.mock
async def test_deleted_entities_merges_pages_and_reads_the_contract_s_spelling() -> None:
    pages = {
        None: ({"persons": ["p1", "p2"], "activitites": ["a1"]}, "next"),
        "next": ({"persons": ["p2", "p3"], "activities": ["a2"], "groups": ["g1"]}, None),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        data, token = pages[request.url.params.get("pageToken")]
        return httpx.Response(200, json={"data": data, "pageToken": token})

    route = respx.get(f"{BASE}/deletedEntities").mock(side_effect=answer)
    async with SS12000Client(BASE, TOKEN, FAST, page_size=2) as ss:
        deleted = await ss.deleted_entities(after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    assert deleted.ids("Person") == ["p1", "p2", "p3"]
    assert deleted.ids("Activity") == ["a1", "a2"]  # "activitites" as the contract spells it, and corrected
    assert deleted.ids("Group") == ["g1"] and deleted.ids("Duty") == []
    assert [dict(call.request.url.params) for call in route.calls][1] == {"pageToken": "next", "limit": "2"}


@respx.mock
async def test_activities_read_embedded_syllabus_and_refuse_an_activity_without_groups() -> None:
    stamp = {"created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z"}
    activity = {"id": "a1", "meta": stamp, "displayName": "Matematik 6", "calendarEventsRequired": True,
                "startDate": "2025-08-18", "activityType": "Undervisning", "groups": [{"id": "g1"}],
                "teachers": [{"duty": {"id": "d1"}}], "organisation": {"id": "u1"},
                "_embedded": {"syllabus": {"id": "s1", "meta": stamp, "schoolType": "GR", "subjectName": "Matematik",
                                           "subjectDesignation": "MA", "official": True}}}
    respx.get(f"{BASE}/activities").mock(return_value=httpx.Response(200, json={"data": [activity]}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        [read] = [a async for a in ss.activities(expand=["syllabus"])]
    assert read.embedded is not None and read.embedded.syllabus is not None
    assert read.embedded.syllabus.subjectDesignation == "MA"
    assert read.to_wire() == activity  # dumps back to the contract's shape, "_embedded" included
    with pytest.raises(ValueError, match="groups"):
        Activity.model_validate({**activity, "groups": []})  # minItems: 1


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
async def test_a_lookup_sends_its_bodies_a_few_at_a_time_and_keeps_their_order() -> None:
    from skolflow.connectors.ss12000.client import LOOKUPS_IN_FLIGHT

    in_flight, most = 0, 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        for _ in range(5):  # let the others start, if they may
            await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, json=[_person(int(value[-12:])) for value in json.loads(request.content)["ids"]])

    respx.post(f"{BASE}/persons/lookup").mock(side_effect=answer)
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(10)]
    async with SS12000Client(BASE, TOKEN, FAST, lookup_chunk_size=1) as ss:
        persons = await ss.lookup_persons(ids)

    assert most == LOOKUPS_IN_FLIGHT
    assert [p.id for p in persons] == ids


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
    assert set(typing.get_args(DutyRole)) == set(schemas["DutyRole"]["enum"])
    assert set(typing.get_args(GroupType)) == set(schemas["GroupTypesEnum"]["enum"])
    assert set(typing.get_args(ActivityType)) == set(schemas["Activity"]["properties"]["activityType"]["enum"])
    assert set(typing.get_args(AssignmentRoleType)) == set(schemas["AssignmentRoleTypeEnum"]["enum"])
    assert set(typing.get_args(Curriculum)) == set(schemas["CurriculumEnum"]["enum"])
    assert set(typing.get_args(EntityType)) == set(schemas["EndPointsEnum"]["enum"]) == set(DELETED_FIELDS)
    assert set(DELETED_FIELDS.values()) == set(schemas["DeletedEntities_data"]["properties"])
    assert set(DeletedEntitiesData.model_fields) == set(schemas["DeletedEntities_data"]["properties"])


def test_the_subset_is_self_contained_and_names_the_paths_the_client_reads(contract: dict[str, typing.Any]) -> None:
    text = SUBSET.read_text(encoding="utf-8")
    refs = set(re.findall(r"#/components/schemas/([\w]+)", text))
    assert refs and refs <= set(contract["components"]["schemas"])
    assert {"/duties", "/groups", "/activities", "/deletedEntities"} <= set(contract["paths"])


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
    retrying = HttpSettings(retry=RetryPolicy(attempts=8, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)
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


# DNP provisioning's source: duties, groups, activities, deleted entities


def _school_type(form: str | None) -> str | None:
    return SCHOOL_TYPE_BY_FORM[form] if form else None


async def test_enrolments_carry_school_year_programme_and_a_birth_year_that_fits(sandbox: str,
                                                                                   dataset: Dataset) -> None:
    async with _client(sandbox) as ss:
        persons = {p.id: p async for p in ss.persons()}
    autumn = max(g.start for g in dataset.groups).year
    for source in dataset.students():
        [enrolment] = persons[source.id].enrolments or []
        assert enrolment.schoolType == _school_type(source.school_form)
        assert enrolment.schoolYear == source.school_year
        if source.school_form in ("GR", "GRSAR"):
            assert source.school_year in range(1, 10)
            assert int(source.civic_no[:4]) == autumn - 6 - source.school_year
        elif source.school_form in ("GY", "GYSAR"):
            assert source.school_year in range(1, 4)
            assert int(source.civic_no[:4]) == autumn - 15 - source.school_year
        else:
            assert source.school_year is None
        assert (enrolment.educationCode is not None) == (source.school_form == "GY")
    years = {p.school_year for p in dataset.students() if p.school_form == "GR"}
    assert len(years) > 1  # classes of several school years, so tests of several years have students


async def test_every_person_has_one_eppn_in_their_role_s_domain(sandbox: str, dataset: Dataset) -> None:
    async with _client(sandbox) as ss:
        persons = [p async for p in ss.persons()]
    eppns = [p.eduPersonPrincipalNames for p in persons]
    assert all(names is not None and len(names) == 1 for names in eppns)
    assert len({names[0] for names in eppns if names}) == len(persons)
    roles = {p.id: p.role for p in dataset.persons}
    for person in persons:
        assert (person.eduPersonPrincipalNames or [""])[0].endswith("@" + EPPN_DOMAINS[roles[person.id]])


async def test_each_staff_member_has_a_duty_at_their_unit(sandbox: str, dataset: Dataset) -> None:
    huvudman = huvudman_id(dataset)
    unit = dataset.school_units[1]
    async with _client(sandbox, page_size=5) as ss:
        duties = [d async for d in ss.duties(expand=["person"], expand_reference_names=True)]
        at_unit = [d async for d in ss.duties(organisation=unit.id)]
        under_huvudman = [d async for d in ss.duties(organisation=huvudman)]
        principals = [d async for d in ss.duties(duty_role=PRINCIPAL)]
        staff = next(p for p in dataset.persons if p.role == "staff")
        of_person = [d async for d in ss.duties(person=staff.id)]
        current = [d async for d in ss.duties(end_date_on_or_after=dt.date.today())]
    by_person = {d.person.id: d for d in duties if d.person}
    staff_members = [p for p in dataset.persons if p.role == "staff"]
    assert sorted(by_person) == sorted(p.id for p in staff_members) and len(duties) == len(staff_members)
    for person in staff_members:
        duty = by_person[person.id]
        assert duty.dutyAt.id == person.school_unit_id
        assert duty.embedded and duty.embedded.person and duty.embedded.person.civicNo
        assert duty.embedded.person.civicNo.value == person.civic_no
        assert duty.signature and duty.dutyAt.displayName
    roles = [d.dutyRole for d in duties]
    assert roles.count(TEACHER) > roles.count(PRINCIPAL) > 0
    assert {d.id for d in at_unit} == {d.id for d in duties if d.dutyAt.id == unit.id} != set()
    assert {d.id for d in under_huvudman} == {d.id for d in duties}
    assert {d.id for d in principals} == {d.id for d in duties if d.dutyRole == PRINCIPAL}
    assert [d.id for d in of_person] == [by_person[staff.id].id]
    assert len(current) == len(duties)  # no duty has ended


async def test_classes_and_teaching_groups_hold_the_students(sandbox: str, dataset: Dataset) -> None:
    unit = dataset.school_units[1]
    async with _client(sandbox, page_size=6) as ss:
        groups = [g async for g in ss.groups()]
        classes = [g async for g in ss.groups(group_type="Klass")]
        gy = [g async for g in ss.groups(school_types="GY")]
        at_unit = [g async for g in ss.groups(organisation=[unit.id])]
    assert {g.groupType for g in groups} == {CLASS, TEACHING}
    assert {g.id for g in classes} == {g.id for g in groups if g.groupType == CLASS}
    assert {g.id for g in gy} == {g.id for g in groups if g.schoolType == "GY"} != set()
    assert {g.id for g in at_unit} == {g.id for g in groups if g.organisation.id == unit.id} != set()
    members = {g.id: {m.person.id for m in g.groupMemberships or []} for g in groups}
    expected: dict[tuple[str, str | None, int | None], set[str]] = {}
    for student in dataset.students():
        if student.school_year is not None:
            expected.setdefault((student.school_unit_id, _school_type(student.school_form), student.school_year),
                                set()).add(student.id)
    by_class = {(g.organisation.id, g.schoolType, int(re.sub(r"\D", "", g.displayName))): members[g.id]
                for g in classes}
    assert by_class == expected  # one class per unit, school type and year, holding exactly its students
    teaching = {g.id: g for g in groups if g.groupType == TEACHING}
    for student_id, record in dataset.records.items():
        student = dataset.person(student_id)
        for grade in record.grades:  # a grade names the teaching group of its subject, with the student in it
            group = teaching[grade.group_id or ""]
            assert student_id in members[group.id]
            assert group.organisation.id == student.school_unit_id
            assert grade.code in group.displayName


async def test_activities_tie_teaching_groups_to_teachers_and_a_syllabus(sandbox: str, dataset: Dataset) -> None:
    student = next(p for p in dataset.students() if p.school_form == "GR")
    async with _client(sandbox, page_size=9) as ss:
        activities = [a async for a in ss.activities(expand=["syllabus", "groups", "teachers"])]
        duties = {d.id: d async for d in ss.duties()}
        of_member = [a async for a in ss.activities(member=student.id)]
        some = activities[3]
        of_teacher = [a async for a in ss.activities(teacher=some.teachers[0].duty.id)] if some.teachers else []
        of_group = [a async for a in ss.activities(group=some.groups[0].id)]
        at_unit = [a async for a in ss.activities(organisation=some.organisation.id)]
    assert len(activities) == len(dataset.activities) > 0
    for activity in activities:
        assert activity.activityType == "Undervisning" and activity.embedded is not None
        [group] = activity.embedded.groups or []
        syllabus = activity.embedded.syllabus
        assert syllabus is not None and activity.syllabus and activity.syllabus.id == syllabus.id
        assert group.groupType == TEACHING and group.organisation.id == activity.organisation.id
        assert syllabus.schoolType == group.schoolType
        code = syllabus.subjectDesignation or syllabus.courseCode
        assert code and code in group.displayName
        if syllabus.subjectDesignation:  # subjects are taught per school year, courses are not
            assert syllabus.startSchoolYear == syllabus.endSchoolYear
            assert str(syllabus.startSchoolYear) in group.displayName
        teachers = activity.embedded.teachers or []
        assert teachers and [t.id for t in teachers] == [t.duty.id for t in activity.teachers or []]
        assert all(duties[t.id].dutyRole == TEACHER and duties[t.id].dutyAt.id == activity.organisation.id
                   for t in teachers)
    assert {a.id for a in of_member} == {a.id for a in dataset.activities if any(
        m.person_id == student.id for g in dataset.groups if g.id in a.group_ids for m in g.members)} != set()
    assert some.id in {a.id for a in of_teacher} and [a.id for a in of_group] == [some.id]
    assert {a.id for a in at_unit} == {a.id for a in activities if a.organisation.id == some.organisation.id}


@pytest.mark.parametrize("path", [
    "/duties?dutyRole=Chef",
    "/groups?groupType=Klasser",
    "/activities?sortkey=ModifiedDesc",  # a contract parameter the sandbox does not implement: never ignored
    "/deletedEntities?after=2025-01-01T00:00:00",
    "/deletedEntities?entities=Persons",
])
def test_bad_parameters_of_the_new_lists_are_400(sandbox: str, path: str) -> None:
    answer = httpx.get(f"{sandbox}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400
    assert set(answer.json()) == {"code", "message"}


def test_new_lists_conform_to_the_official_schemas(sandbox: str, contract: dict[str, typing.Any]) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path, params, schema in [
        ("/duties", {"expand": "person", "expandReferenceNames": "true"}, "Duties"),
        ("/groups", {"expandReferenceNames": "true"}, "GroupsExpanded"),
        ("/activities", {"expand": ["groups", "teachers", "syllabus"], "expandReferenceNames": "true"}, "Activities"),
        ("/deletedEntities", {}, "DeletedEntities"),
    ]:
        answer = httpx.get(f"{sandbox}{path}", params=params, headers=auth)
        assert answer.status_code == 200 and answer.json()["data"] is not None
        jsonschema.Draft4Validator({"$ref": f"#/components/schemas/{schema}",
                                    "components": contract["components"]}).validate(answer.json())


def test_the_data_set_is_the_same_for_a_seed() -> None:
    day = dt.date(2026, 3, 2)
    first, second = generate(students=30, seed=11, today=day), generate(students=30, seed=11, today=day)
    assert (first.persons, first.duties, first.groups, first.activities) == (
        second.persons, second.duties, second.groups, second.activities)
    assert [r.grades for r in first.records.values()] == [r.grades for r in second.records.values()]
    other = generate(students=30, seed=12, today=day)
    assert [p.civic_no for p in other.persons] != [p.civic_no for p in first.persons]


def test_changing_the_source_needs_an_aware_time_and_keeps_ids() -> None:
    data = generate(students=10, schools=2, seed=3)
    student = data.students()[0]
    with pytest.raises(ValueError, match="timezone"):
        data.change_person(student.id, dt.datetime(2026, 1, 1), school_year=None)
    with pytest.raises(ValueError, match="id"):
        data.change_group(data.groups[0].id, id="other")
    with pytest.raises(KeyError):
        data.remove_activity("00000000-0000-4000-8000-000000000000")
    changed = data.change_person(student.id, school_year=None)
    assert data.person(student.id) is changed and changed.school_year is None


async def test_changes_move_meta_modified_and_removals_are_deleted_entities() -> None:
    data = generate(students=40, schools=4, seed=9)
    before = dt.datetime.now(dt.UTC)
    changed_at = before + dt.timedelta(minutes=1)
    removed_at = before + dt.timedelta(minutes=2)
    student = data.students()[0]
    teaching = next(g for g in data.groups if g.kind == TEACHING)
    klass = next(g for g in data.groups if g.kind == CLASS)
    data.change_person(student.id, changed_at, school_year=None)
    data.change_group(klass.id, changed_at, name="Klass med nytt namn")
    teacher_duty = next(d for d in data.duties if d.role == TEACHER and any(
        d.id in a.teacher_duty_ids for a in data.activities))
    taught = {a.id for a in data.activities if teacher_duty.id in a.teacher_duty_ids}
    lone = next(a for a in data.activities if a.group_ids == (teaching.id,))
    other = next(a for a in data.activities if a.id != lone.id and a.id not in taught)
    data.remove_person(teacher_duty.person_id, removed_at)  # takes the duty with them
    data.remove_group(teaching.id, removed_at)  # takes its only activity with it
    data.remove_activity(other.id, removed_at)
    with SandboxServer() as srv:
        url = srv.start("ss12000", with_faults(create_app(data, token=TOKEN, page_size_max=2), "ss12000"))
        async with _client(url, page_size=2) as ss:
            persons = [p async for p in ss.persons(meta_modified_after=before)]
            groups = [g async for g in ss.groups(meta_modified_after=before)]
            activities = [a async for a in ss.activities(meta_modified_after=before)]
            everyone = [p.id async for p in ss.persons()]
            deleted = await ss.deleted_entities(after=before)
            only_groups = await ss.deleted_entities(after=before, entities="Group")
            none_later = await ss.deleted_entities(after=removed_at)
        raw = httpx.get(f"{url}/deletedEntities", headers={"Authorization": f"Bearer {TOKEN}"},
                        params={"entities": "Activity"})
    assert [p.id for p in persons] == [student.id] and persons[0].meta.modified == changed_at
    assert (persons[0].enrolments or [])[0].schoolYear is None
    assert {g.id for g in groups} == {klass.id}  # the removed teacher was no member; the class was renamed
    assert {a.id for a in activities} == taught - {lone.id, other.id}  # they lost their teacher
    assert all(teacher_duty.id not in [t.duty.id for t in a.teachers or []] for a in activities)
    assert teacher_duty.person_id not in everyone
    assert deleted.ids("Person") == [teacher_duty.person_id]
    assert deleted.ids("Duty") == [teacher_duty.id]
    assert deleted.ids("Group") == [teaching.id]
    assert sorted(deleted.ids("Activity")) == sorted({lone.id, other.id})
    assert only_groups.ids("Group") == [teaching.id] and only_groups.ids("Person") == []
    assert none_later == DeletedEntitiesData()
    assert sorted(raw.json()["data"]["activitites"]) == sorted({lone.id, other.id})  # the contract's spelling


# Tolerant reading (issue 12): one bad record never stops a read


def _student(n: int, **changes: object) -> dict[str, object]:
    """A person as DNP reads it: names, an enrolment, a school e-mail address."""
    return {**_person(n), "emails": [{"value": f"elev{n}@elev.sandvik.se", "type": "Skola elev"}],
            "enrolments": [{"enroledAt": {"id": "u1"}, "schoolType": "GR", "schoolYear": 6,
                            "startDate": "2025-08-18"}], **changes}


@respx.mock
async def test_a_record_that_breaks_what_skolflow_reads_is_refused_alone_with_id_field_and_rule() -> None:
    odd_marking = _student(2, securityMarking="Hemlig")
    no_name = {key: value for key, value in _student(3).items() if key != "givenName"}
    unknown_school_type = _student(4, enrolments=[{"enroledAt": {"id": "u1"}, "schoolType": "GRUND",
                                                   "startDate": "2025-08-18"}])
    data = [_student(1), odd_marking, no_name, "not an object", unknown_school_type, _student(5)]
    respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": data}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        persons = [p async for p in ss.persons()]

    assert [p.id for p in persons] == [_student(1)["id"], _student(5)["id"]]
    assert [(r.path, r.record_id, [(p.field, p.rule.split(" (")[0]) for p in r.problems]) for r in ss.refused] == [
        ("/persons", odd_marking["id"], [("securityMarking", "literal_error")]),
        ("/persons", no_name["id"], [("givenName", "missing")]),
        ("/persons", "", [("(record)", "model_type")]),
        ("/persons", unknown_school_type["id"], [("enrolments[0].schoolType", "literal_error")]),
    ]
    assert "expected='Ingen'" in ss.refused[0].problems[0].rule  # the contract's values, never the record's
    assert str(ss.refused[1]) == f"record {no_name['id']}: givenName: missing"
    shown = " ".join(str(r) for r in ss.refused)
    assert "Hemlig" not in shown and "GRUND" not in shown and "Berg" not in shown and "201002037271" not in shown


@respx.mock
async def test_fields_skolflow_never_reads_are_not_validated() -> None:
    stamp = {"created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z"}
    person = _student(1, addresses=[{"streetAddress": "Storgatan 1", "locality": "Sandvik", "postalCode": "123 45"}],
                      phoneNumbers=[{"value": "070", "type": "Mobil"}], sex="Annat", birthDate="2013-02-30",
                      responsibles=[{"relationType": "Farmor"}])
    duty = {"id": "d1", "meta": stamp, "dutyAt": {"id": "u1"}, "dutyRole": "Lärare", "startDate": "2025-08-01",
            "person": {"id": person["id"], "securityMarking": "Okänd"}, "dutyPercent": "full",
            "assignmentRole": [{"group": {"id": "g1"}, "assignmentRoleType": "Lärare"}]}
    activity = {"id": "a1", "meta": {"created": "igår"}, "displayName": "Matematik 6", "startDate": "2025-08-18",
                "activityType": "Undervisning", "groups": [{"id": "g1"}], "organisation": {"id": "u1"},
                "teachers": [{"duty": {"id": "d1"}, "grader": "ja"}],
                "_embedded": {"syllabus": {"id": "s1", "schoolType": "GR", "subjectDesignation": "MA",
                                           "curriculum": "Lgr22", "startSchoolYear": 13}}}
    organisation = {**_org(1), "displayName": None, "schoolTypes": ["GR", "FRITIDS"],
                    "address": {"streetAddress": "Skolvägen 1"}, "startDate": "i höstas"}
    respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": [person]}))
    respx.get(f"{BASE}/duties").mock(return_value=httpx.Response(200, json={"data": [duty]}))
    respx.get(f"{BASE}/activities").mock(return_value=httpx.Response(200, json={"data": [activity]}))
    respx.get(f"{BASE}/organisations").mock(return_value=httpx.Response(200, json={"data": [organisation]}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        [read_person] = [p async for p in ss.persons()]
        [read_duty] = [d async for d in ss.duties()]
        [read_activity] = [a async for a in ss.activities(expand=["syllabus"])]
        [read_unit] = [o async for o in ss.organisations()]

    assert ss.refused == []
    assert read_person.addresses is None and read_person.sex is None and read_person.birthDate is None
    assert read_person.enrolments and read_person.enrolments[0].schoolType == "GR"
    assert read_duty.assignmentRole is None and read_duty.dutyRole == "Lärare"
    assert read_activity.calendarEventsRequired is None and read_activity.meta is None
    assert read_activity.embedded and read_activity.embedded.syllabus
    assert read_activity.embedded.syllabus.subjectDesignation == "MA"
    assert read_unit.schoolTypes == ["GR", "FRITIDS"] and read_unit.schoolUnitCode == "00000001"


@respx.mock
async def test_the_identity_join_reads_persons_only_for_what_it_needs() -> None:
    partial = {key: value for key, value in _student(1, enrolments=[{"schoolType": "GRUND"}]).items()
               if key not in ("givenName", "familyName")}
    respx.post(f"{BASE}/persons/lookup").mock(return_value=httpx.Response(200, json=[partial]))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        [identity] = await ss.lookup_persons([str(partial["id"])], read_as=PersonIdentity)
        assert ss.refused == []
        assert await ss.lookup_persons([str(partial["id"])]) == []  # as DNP reads it: refused

    assert identity.civicNo is not None and identity.civicNo.value == "201002037271"
    assert identity.securityMarking == "Ingen"
    assert {p.field for p in ss.refused[0].problems} == {"givenName", "familyName", "enrolments[0].enroledAt",
                                                         "enrolments[0].schoolType", "enrolments[0].startDate"}


@respx.mock
async def test_times_without_an_offset_are_swedish_time() -> None:
    winter = {**_person(1), "meta": {"created": "2025-01-15T10:00:00", "modified": "2025-07-15T10:00:00"}}
    respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": [winter]}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        [person] = [p async for p in ss.persons(read_as=PersonIdentity)]

    assert person.meta is not None
    assert person.meta.created == dt.datetime(2025, 1, 15, 9, 0, tzinfo=dt.UTC)  # CET, +01:00
    assert person.meta.modified == dt.datetime(2025, 7, 15, 8, 0, tzinfo=dt.UTC)  # CEST, +02:00
    assert person.meta.created.tzinfo == SOURCE_TIMEZONE


@respx.mock
async def test_a_civic_no_written_yymmdd_dash_nnnn_is_read_as_twelve_digits() -> None:
    written = {"1": "100203-7271", "2": "20100203-7271", "3": "1002037271", "4": "100203-7272",
               "5": "20130101TF01", "6": "201002037272"}
    data = [{**_person(int(n)), "civicNo": {"value": value}} for n, value in written.items()]
    respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": data}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        persons = [p async for p in ss.persons(read_as=PersonIdentity)]

    # Twelve characters without a separator are the contract's form: the rules of Beda and DNP judge them.
    assert [p.civicNo.value for p in persons if p.civicNo] == ["201002037271"] * 3 + ["20130101TF01", "201002037272"]
    [refused] = ss.refused
    assert refused.record_id == data[3]["id"]
    assert refused.problems == (Problem("civicNo.value", "identity_check_digit"),)


@respx.mock
async def test_deleted_entities_given_as_a_bare_list_are_read() -> None:
    pages = {None: ({"data": ["p1", "p2"], "pageToken": "next"}), "next": ["p2", {"id": "p3"}]}
    route = respx.get(f"{BASE}/deletedEntities").mock(
        side_effect=lambda request: httpx.Response(200, json=pages[request.url.params.get("pageToken")]))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        persons = await ss.deleted_entities(entities="Person")
        either = await ss.deleted_entities(entities=["Person", "Group"])

    assert persons.ids("Person") == ["p1", "p2", "p3"] and persons.ids("Group") == []
    assert either.ids("Person") == either.ids("Group") == ["p1", "p2", "p3"]  # ids are unique across types
    assert route.call_count == 4


@respx.mock
@pytest.mark.parametrize("body, words", [
    ({"detail": "Not Found"}, "Not Found"),
    ({"detail": [{"loc": ["query", "limit"], "msg": "Input should be greater than 0", "input": "0"}]},
     "query.limit: Input should be greater than 0"),
    ({"code": "NotFound", "message": "no person with this id"}, "NotFound: no person with this id"),
])
async def test_errors_are_shown_in_the_server_s_own_words(body: dict[str, object], words: str) -> None:
    respx.get(f"{BASE}/persons/p1").mock(return_value=httpx.Response(404, json=body))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        with pytest.raises(RemoteError) as raised:
            await ss.person("p1")

    assert str(raised.value) == f"ss12000 answered 404 to GET /persons/p1: {words}"
    assert json.loads(raised.value.body) == body and raised.value.status_code == 404


@respx.mock
async def test_a_page_token_that_forgets_the_filters_is_filtered_again_and_repeats_are_dropped() -> None:
    units = [_org(n) for n in range(1, 5)]
    huvudman = {**_org(9), "organisationType": "Huvudman", "schoolUnitCode": None}
    broken = {"id": "10000000-0000-4000-8000-000000000010", "organisationType": "Kommun"}  # refused if read
    pages = {None: ({"data": units[:2], "pageToken": "p2"}),
             # The token stands for the listing without filters, from the first page's last record.
             "p2": ({"data": [units[1], huvudman, broken, units[2]], "pageToken": "p3"}),
             "p3": ({"data": [units[3], units[0]]})}
    respx.get(f"{BASE}/organisations").mock(
        side_effect=lambda request: httpx.Response(200, json=pages[request.url.params.get("pageToken")]))
    async with SS12000Client(BASE, TOKEN, FAST, page_size=2) as ss:
        read = [o.id async for o in ss.organisations(organisation_type="Skolenhet")]

    assert read == [u["id"] for u in units]
    assert ss.refused == []  # the broken record is no Skolenhet: it was not asked for, so not read at all


@respx.mock
async def test_date_person_and_time_filters_are_judged_again_on_each_record() -> None:
    stamp = {"created": "2024-01-01T00:00:00+01:00", "modified": "2025-06-01T12:00:00"}
    duty = {"id": "d1", "meta": stamp, "dutyAt": {"id": "u1"}, "dutyRole": "Lärare", "startDate": "2025-08-01",
            "person": {"id": "P1"}}
    ended = {**duty, "id": "d2", "endDate": "2025-06-30"}
    other = {**duty, "id": "d3", "person": {"id": "p2"}}
    older = {**duty, "id": "d4", "meta": {**stamp, "modified": "2025-05-01T12:00:00"}}
    respx.get(f"{BASE}/duties").mock(return_value=httpx.Response(200, json={"data": [duty, ended, other, older]}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        read = [d.id async for d in ss.duties(person="p1", end_date_on_or_after=dt.date(2025, 8, 18),
                                              meta_modified_after=dt.datetime(2025, 5, 15, tzinfo=dt.UTC))]
    assert read == ["d1"]


@respx.mock
@pytest.mark.parametrize("status", [405, 404, 501])
async def test_a_refused_lookup_falls_back_to_paging_the_persons(status: int) -> None:
    everyone = [_person(n) for n in range(6)]
    everyone[4] = {**everyone[4], "civicNo": {"value": "130412-1237"}}  # asked for as 201304121237
    lookup = respx.post(f"{BASE}/persons/lookup").mock(
        return_value=httpx.Response(status, json={"detail": "Method Not Allowed"}))
    listing = respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": everyone}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        found = await ss.lookup_persons([str(everyone[1]["id"]).upper(), str(everyone[3]["id"])],
                                        civic_nos=["201304121237"], read_as=PersonIdentity)
        asked = lookup.call_count  # the ids' body and the civic numbers' body, sent together
        again = await ss.lookup_persons([str(everyone[5]["id"])])

    assert sorted(p.id for p in found) == sorted(str(everyone[n]["id"]) for n in (1, 3, 4))
    assert [p.id for p in again] == [everyone[5]["id"]]
    # Each refusal is final (501 too: a retry cannot implement the endpoint); the second lookup went straight to paging.
    assert asked == 2 and lookup.call_count == 2 and listing.call_count == 2


@respx.mock
async def test_a_lookup_refused_for_a_bad_token_is_not_paged_around() -> None:
    respx.post(f"{BASE}/persons/lookup").mock(return_value=httpx.Response(401, json={"detail": "Unauthorized"}))
    listing = respx.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json={"data": []}))
    async with SS12000Client(BASE, TOKEN, FAST) as ss:
        with pytest.raises(RemoteError, match="401 to POST /persons/lookup: Unauthorized"):
            await ss.lookup_persons(["p1"])
    assert listing.call_count == 0


def test_the_sandbox_s_persons_have_postal_addresses_as_the_contract_defines_them(sandbox: str,
                                                                                 dataset: Dataset) -> None:
    answer = httpx.get(f"{sandbox}/persons/{dataset.persons[0].id}",
                       headers={"Authorization": f"Bearer {TOKEN}"}).json()
    address = dataset.persons[0].address
    assert address is not None
    assert answer["addresses"] == [{"type": "Folkbokföring", "streetAddress": address.street,
                                    "locality": address.locality, "postalCode": address.postal_code,
                                    "country": "SE"}]
    assert len({p.address for p in dataset.persons}) > len(dataset.persons) // 2


@pytest.fixture(scope="module")
def imperfect() -> Dataset:
    return generate(students=60, schools=6, seed=7, imperfect=True)


@pytest.fixture(scope="module")
def imperfect_sandbox(imperfect: Dataset) -> Iterator[str]:
    with SandboxServer() as srv:
        yield srv.start("ss12000", with_faults(create_app(imperfect, token=TOKEN), "ss12000"))


def test_the_imperfect_data_set_carries_every_defect_on_a_few_records_and_keeps_the_seed_s_people(
        imperfect: Dataset) -> None:
    assert set(imperfect.defects) == set(Defect) and all(imperfect.defects.values()) and imperfect.imperfect
    perfect = generate(students=60, schools=6, seed=7)
    assert [p.civic_no for p in perfect.persons] == [p.civic_no for p in imperfect.persons]
    assert [p.id for p in perfect.duties] == [p.id for p in imperfect.duties] and not perfect.defects
    without_country = set(imperfect.defects[Defect.ADDRESS_WITHOUT_COUNTRY])
    assert {p.id for p in imperfect.persons if p.address and p.address.country is None} == without_country


async def test_the_imperfect_sandbox_serves_each_defect_and_the_client_reads_around_them(
        imperfect: Dataset, imperfect_sandbox: str) -> None:
    defects = imperfect.defects
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with SS12000Client(imperfect_sandbox, TOKEN, FAST, page_size=7) as ss:
        persons = {p.id: p async for p in ss.persons()}
        duties = {d.id: d async for d in ss.duties(end_date_on_or_after=dt.date.today())}
        activities = {a.id: a async for a in ss.activities(expand=["syllabus"])}
        units = [o async for o in ss.organisations(organisation_type="Skolenhet")]
        looked_up = await ss.lookup_persons([p.id for p in imperfect.students()], read_as=PersonIdentity)
    refused = {(r.path, r.record_id): {p.field for p in r.problems} for r in ss.refused}

    # What breaks what skolflow reads is refused, once per record, however often paging lists it.
    [marking] = defects[Defect.SECURITY_MARKING_OUTSIDE_ENUM]
    [unreadable] = defects[Defect.CIVIC_NO_UNREADABLE]
    [nameless] = defects[Defect.NO_GIVEN_NAME]
    [role] = defects[Defect.DUTY_ROLE_OUTSIDE_ENUM]
    assert refused == {("/persons", marking): {"securityMarking"}, ("/persons", unreadable): {"civicNo.value"},
                       ("/persons", nameless): {"givenName"}, ("/duties", role): {"dutyRole"}}
    assert len(ss.refused) == len(refused) + 2  # the identity join's lookup refuses two again (not the nameless)
    # Everything else is read, each record once.
    assert set(persons) == {p.id for p in imperfect.persons} - {marking, unreadable, nameless}
    assert set(duties) == {d.id for d in imperfect.duties} - {role}
    assert set(activities) == {a.id for a in imperfect.activities}
    assert {u.id for u in units} == {u.id for u in imperfect.school_units}
    assert {p.id for p in looked_up} == {p.id for p in imperfect.students()} - {marking, unreadable}
    for person_id in defects[Defect.CIVIC_NO_WITH_DASH]:
        civic = persons[person_id].civicNo
        assert civic is not None and civic.value == imperfect.person(person_id).civic_no
    assert all(persons[p].addresses is None for p in defects[Defect.ADDRESS_WITHOUT_COUNTRY])
    assert all(duties[d].assignmentRole is None for d in defects[Defect.ASSIGNMENT_ROLE_OUTSIDE_ENUM])
    assert all(activities[a].calendarEventsRequired is None for a in defects[Defect.NO_CALENDAR_EVENTS_REQUIRED])
    [as_person] = defects[Defect.TEACHER_AS_PERSON]
    teachers = activities[as_person].teachers or []
    assert teachers and all(t.duty is None and t.person for t in teachers)
    assert all(p.meta and p.meta.modified.tzinfo == SOURCE_TIMEZONE for p in persons.values())
    # The server's manners: errors as {"detail"}, no lookup, deletions as a bare list, filters forgotten.
    assert httpx.get(f"{imperfect_sandbox}/persons/not-a-uuid", headers=auth).json() == {"detail": "id is not a UUID"}
    assert httpx.post(f"{imperfect_sandbox}/persons/lookup", json={"ids": []}, headers=auth).status_code == 405
    first = httpx.get(f"{imperfect_sandbox}/groups", params={"groupType": "Klass", "limit": 3}, headers=auth).json()
    pages = [first]
    while "pageToken" in pages[-1]:
        pages.append(httpx.get(f"{imperfect_sandbox}/groups", params={"pageToken": pages[-1]["pageToken"], "limit": 3},
                               headers=auth).json())
    listed = [g for page in pages for g in page["data"]]
    assert pages[1]["data"][0]["id"] == first["data"][-1]["id"]  # the first page's last record, again
    assert {g["groupType"] for g in listed} == {"Klass", "Undervisning"}  # the filter is forgotten
    assert {g["id"] for g in listed} == {g.id for g in imperfect.groups}
    assert set(Defect) > TOLERATED
    said = systems.imperfections(imperfect)
    assert [line.split(" on ")[0] for line in said[:len(Defect)]] == list(imperfect.defects)
    assert len(said) == len(Defect) + len(systems.IMPERFECT_SERVER) and systems.imperfections(generate(10)) == []


async def test_the_imperfect_sandbox_lists_deletions_as_a_bare_list() -> None:
    data = generate(students=30, schools=3, seed=8, imperfect=True)
    gone = data.students()[0]
    data.remove_person(gone.id)
    with SandboxServer() as srv:
        url = srv.start("ss12000", with_faults(create_app(data, token=TOKEN), "ss12000"))
        raw = httpx.get(f"{url}/deletedEntities", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        async with SS12000Client(url, TOKEN, FAST) as ss:
            deleted = await ss.deleted_entities(entities=["Person"])
    assert raw == {"data": [gone.id]}
    assert deleted.ids("Person") == [gone.id]
