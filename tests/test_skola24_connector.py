"""Skola24 connector: timetable data, codec against skolflow's XSD, client (respx), sandbox over HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import respx

from skolflow.connectors.http import HttpSettings, RetryPolicy, TransientError
from skolflow.connectors.skola24 import codec
from skolflow.connectors.skola24.client import Skola24Client, Skola24Error, date_ranges
from skolflow.connectors.skola24.models import (
    V1,
    V3,
    ErrorBody,
    Group,
    Lesson,
    LessonExport,
    Organisation,
    Person,
    School,
)
from skolflow.connectors.skola24.sandbox import create_app
from skolflow.connectors.xmlsafe import UnsafeXmlError
from skolflow.sandbox.dataset import generate
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.sandbox.timetable import DEFAULT_API_KEY, DEFAULT_DOMAIN, Timetable, build_timetable
from tests.remote import MOCKED_REMOTE

EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "skola24" / "examples"
FAST = HttpSettings(retry=RetryPolicy(attempts=3, backoff_base=0.0), door=MOCKED_REMOTE)
SCHOOL = "3f2a9c4e-8b1d-5e6f-9a0b-1c2d3e4f5a6b"
TEACHER = "0b7e2c1a-4d5f-4e6a-8b9c-0d1e2f3a4b5c"
GROUP = "4e0b5f4d-7a8c-5b9d-9e2f-3a4b5c6d7e8f"
WEEK = (dt.date(2025, 9, 1), dt.date(2025, 9, 7))  # Monday to Sunday


def _lesson(**changes: object) -> Lesson:
    base = {
        "guid": "6a2d7b6f-9cae-5dbf-a04b-5c6d7e8f9001", "subject": "Idrott och hälsa", "date": dt.date(2025, 9, 1),
        "start": dt.time(8, 15), "end": dt.time(9, 15), "teacher_signatures": ("ANJO", "BEKA"),
        "group_names": ("Klass 7A",), "teachers": (TEACHER, "1c8f3d2b-5e6a-4f7b-9c0d-1e2f3a4b5c6d"),
        "groups": (GROUP,), "rooms": ("Idrottshallen", "Sal 101"), "changed": dt.datetime(2025, 8, 20, 16, 45),
    }
    return Lesson(**{**base, **changes})


# --- timetable data ------------------------------------------------------------------------------------------


@pytest.fixture
def timetable() -> Timetable:
    return build_timetable(generate(students=40, seed=7))


def test_timetable_is_deterministic_and_derived_from_the_dataset(timetable: Timetable) -> None:
    dataset = generate(students=40, seed=7)
    again = build_timetable(dataset)

    assert again.schools == timetable.schools and again.groups == timetable.groups
    assert again.lessons(again.schools[0].guid, *WEEK) == timetable.lessons(timetable.schools[0].guid, *WEEK)
    assert timetable.domain == DEFAULT_DOMAIN
    assert [school.unit_id for school in timetable.schools] == [unit.id for unit in dataset.school_units]
    assert [(p.guid, p.civic_no, p.email, p.role) for p in timetable.persons] == [
        (p.id, p.civic_no, p.email, p.role) for p in dataset.persons]
    signatures = [p.signature for p in timetable.persons if p.role == "staff"]
    assert all(signatures) and len(set(signatures)) == len(signatures)
    assert all(p.signature is None for p in timetable.persons if p.role == "student")


def test_every_student_is_in_one_class_of_their_school(timetable: Timetable) -> None:
    for person in timetable.persons:
        groups = [g for g in timetable.groups if person.guid in g.members]
        if person.role == "staff":
            assert groups == [] and any(person.guid in g.teachers for g in timetable.groups)
            continue
        assert [g.kind for g in groups].count("class") == 1
        assert {g.school_guid for g in groups} == {person.school_guid}
    assert any(g.kind == "teachingGroup" for g in timetable.groups)


def test_lessons_repeat_weekly_on_weekdays_with_stable_unique_guids(timetable: Timetable) -> None:
    school = timetable.schools[0].guid
    two_weeks = timetable.lessons(school, WEEK[0], WEEK[1] + dt.timedelta(days=7))
    week = timetable.lessons(school, *WEEK)

    assert len(two_weeks) == 2 * len(week) == 2 * len(timetable.patterns_of(school))
    assert {lesson.date.weekday() for lesson in two_weeks} <= {0, 1, 2, 3, 4}
    assert len({lesson.guid for lesson in two_weeks}) == len(two_weeks)
    assert timetable.lessons(school, WEEK[0] + dt.timedelta(days=1), WEEK[1]) == [
        lesson for lesson in week if lesson.date != WEEK[0]]
    assert any(len(lesson.teachers) == 2 for lesson in week)


def test_timetable_mutators(timetable: Timetable) -> None:
    school = timetable.schools[1].guid
    pattern = timetable.patterns_of(school)[0]
    teacher = timetable.persons[0].guid

    assert timetable.remove_pattern(pattern.id) == pattern
    assert pattern.id not in {lesson.pattern_id for lesson in timetable.lessons(school, *WEEK)}
    timetable.set_published(school, False)
    timetable.set_email(teacher, "ny.adress@sandvik.se")

    assert timetable.published[school] is False and timetable.person(teacher).email == "ny.adress@sandvik.se"
    for mutate in (lambda: timetable.remove_pattern(pattern.id), lambda: timetable.set_published("nope", True),
                   lambda: timetable.set_email("nope", None)):
        with pytest.raises(KeyError):
            mutate()


# --- codec ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["organisation.xml", "lektion-v1.xml", "lektion-v3.xml", "lektion-unpublished.xml",
                                  "error.xml"])
def test_examples_are_schema_valid(name: str) -> None:
    assert codec.validate_schema((EXAMPLES / name).read_bytes()) == []


def test_examples_read_as_v1_and_v3() -> None:
    v1 = codec.decode_lessons((EXAMPLES / "lektion-v1.xml").read_bytes())
    v3 = codec.decode_lessons((EXAMPLES / "lektion-v3.xml").read_bytes())
    unpublished = codec.decode_lessons((EXAMPLES / "lektion-unpublished.xml").read_bytes())
    organisation = codec.decode_organisation((EXAMPLES / "organisation.xml").read_bytes())

    assert (v1.version, v3.version, v1.published, unpublished.published, unpublished.lessons) == (V1, V3, True,
                                                                                                  False, ())
    assert [lesson.guid for lesson in v1.lessons] == [lesson.guid for lesson in v3.lessons]
    assert v1.lessons[0] == Lesson("6a2d7b6f-9cae-5dbf-a04b-5c6d7e8f9001", "Matematik", dt.date(2025, 9, 1),
                                   dt.time(8, 15), dt.time(9, 15), ("ANJO",), ("Klass 7A",))
    assert v3.lessons[0] == replace(v1.lessons[0], teachers=(TEACHER,), groups=(GROUP,), rooms=("Sal 101",),
                                    changed=dt.datetime(2025, 8, 1, 7, 0))
    assert organisation.schools == (School(SCHOOL, "Paradskolan"),)
    assert organisation.persons[2].email is None and organisation.persons[2].personnummer == "200805124567"
    assert organisation.groups[1].members == ("1c8f3d2b-5e6a-4f7b-9c0d-1e2f3a4b5c6d",)
    assert codec.decode_error((EXAMPLES / "error.xml").read_bytes()).code == "NO_ACCESS"


def test_organisation_round_trips_through_a_valid_document() -> None:
    organisation = Organisation("sandvik.skola24.se", (School(SCHOOL, "Norra skolan"),), (
        Person(TEACHER, "staff", SCHOOL, personnummer="197809231124", email="a@sandvik.se", signature="ANJO"),
        Person("1c8f3d2b-5e6a-4f7b-9c0d-1e2f3a4b5c6d", "student", SCHOOL),
    ), (Group(GROUP, "Klass 7A", "class", SCHOOL, ("1c8f3d2b-5e6a-4f7b-9c0d-1e2f3a4b5c6d",), (TEACHER,)),))

    data = codec.encode_organisation(organisation)

    assert codec.validate_schema(data) == []
    assert codec.decode_organisation(data) == organisation


def test_lesson_exports_round_trip_and_v1_carries_only_its_fields() -> None:
    v3 = LessonExport("sandvik.skola24.se", SCHOOL, *WEEK, True, V3, (_lesson(), _lesson(guid=GROUP, rooms=())))
    v3_data = codec.encode_lessons(v3)
    v1_data = codec.encode_lessons(replace(v3, version=V1))

    assert codec.validate_schema(v3_data) == [] and codec.validate_schema(v1_data) == []
    assert codec.decode_lessons(v3_data) == v3
    assert codec.decode_lessons(v1_data).lessons[0] == replace(_lesson(), teachers=(), groups=(), rooms=(),
                                                               changed=None)
    assert b"Room" not in v1_data and b"changed" not in v1_data and TEACHER.encode() not in v1_data


def test_an_unpublished_export_carries_no_lessons_even_if_given_some() -> None:
    data = codec.encode_lessons(LessonExport("sandvik.skola24.se", SCHOOL, *WEEK, False, V3, (_lesson(),)))

    assert b'published="false"' in data and b"<Lesson" not in data
    assert codec.validate_schema(data) == []


def test_v3_needs_a_signature_per_teacher_and_a_name_per_group() -> None:
    with pytest.raises(ValueError, match="signature"):
        codec.encode_lessons(LessonExport("a.skola24.se", SCHOOL, *WEEK, True, V3,
                                          (_lesson(teacher_signatures=("ANJO",)),)))


def test_schema_refuses_what_the_contract_does_not_allow() -> None:
    v1 = (EXAMPLES / "lektion-v1.xml").read_bytes()
    with_room = v1.replace(b'<Group name="Klass 7A"/>', b'<Group name="Klass 7A"/><Room name="Sal 1"/>')
    bad_code = (EXAMPLES / "error.xml").read_bytes().replace(b"NO_ACCESS", b"FORBIDDEN")
    duplicate = v1.replace(b"7b3e8c70-adbf-5ec0-b15c-6d7e8f900112", b"6a2d7b6f-9cae-5dbf-a04b-5c6d7e8f9001")
    organisation = (EXAMPLES / "organisation.xml").read_bytes()
    stray_member = organisation.replace(b'<Member guid="2d9a4e3c', b'<Member guid="9d9a4e3c')

    for document in (with_room, bad_code, duplicate, stray_member):
        errors = codec.validate_schema(document)
        assert errors and errors[0].startswith("line ")


def test_a_document_of_another_kind_is_refused() -> None:
    with pytest.raises(codec.InvalidDocumentError, match="ExportOrganisation"):
        codec.decode_organisation((EXAMPLES / "lektion-v3.xml").read_bytes())
    with pytest.raises(codec.InvalidDocumentError):
        codec.decode_lessons(b'<ExportLektion xmlns="urn:other"/>')


def test_person_repr_hides_personnummer_and_email() -> None:
    person = Person(TEACHER, "staff", SCHOOL, personnummer="197809231124", email="a@sandvik.se")
    assert "197809231124" not in repr(person) and "a@sandvik.se" not in repr(person)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ExportOrganisation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ExportOrganisation xmlns="urn:skolflow:skola24:v1" domain="a.skola24.se">
<Schools><School guid="3f2a9c4e-8b1d-5e6f-9a0b-1c2d3e4f5a6b" name="&xxe;"/></Schools><Persons/><Groups/>
</ExportOrganisation>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE error [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<error xmlns="urn:skolflow:skola24:v1" code="NO_ACCESS" message="&lol2;"/>"""


@pytest.mark.parametrize("document", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_documents_declaring_entities_are_refused(document: bytes) -> None:
    for read in (codec.decode_organisation, codec.decode_lessons, codec.decode_error, codec.validate_schema):
        with pytest.raises(UnsafeXmlError):
            read(document)


# --- client (respx) ------------------------------------------------------------------------------------------

BASE = "https://skola24.example"
API = f"{BASE}/api/paradskolan.skola24.se/export"


def _export_body(request: httpx.Request, published: bool = True) -> httpx.Response:
    """An ExportLektionV3 answer with one lesson on the first day of the asked range."""
    start, end = (dt.date.fromisoformat(request.url.params[name]) for name in ("from", "to"))
    lesson = _lesson(guid=f"00000000-0000-4000-8000-{start:%Y%m%d}0000", date=start)
    export = LessonExport("paradskolan.skola24.se", request.url.params["school"], start, end, published, V3,
                          (lesson,))
    return httpx.Response(200, content=codec.encode_lessons(export))


def test_date_ranges_cut_at_93_days() -> None:
    first = dt.date(2025, 1, 1)
    assert list(date_ranges(first, first)) == [(first, first)]
    assert list(date_ranges(first, first + dt.timedelta(days=92))) == [(first, first + dt.timedelta(days=92))]
    assert list(date_ranges(first, first + dt.timedelta(days=93))) == [
        (first, first + dt.timedelta(days=92)), (first + dt.timedelta(days=93), first + dt.timedelta(days=93))]
    with pytest.raises(ValueError, match="starts after"):
        list(date_ranges(first, first - dt.timedelta(days=1)))


@respx.mock
async def test_organisation_sends_the_api_key_and_reads_the_answer() -> None:
    route = respx.get(f"{API}/organisation").mock(
        return_value=httpx.Response(200, content=(EXAMPLES / "organisation.xml").read_bytes()))

    async with Skola24Client(BASE, "k3y", http=FAST) as client:
        organisation = await client.organisation("paradskolan.skola24.se")

    assert route.calls.last.request.headers["Authorization"] == "ApiKey k3y"
    assert [school.guid for school in organisation.schools] == [SCHOOL] and len(organisation.persons) == 3


@respx.mock
async def test_a_long_range_is_split_into_calls_of_at_most_93_days() -> None:
    route = respx.get(f"{API}/lektion/v3").mock(side_effect=_export_body)

    async with Skola24Client(BASE, "k3y", http=FAST) as client:
        export = await client.lessons("paradskolan.skola24.se", SCHOOL, dt.date(2025, 1, 1), dt.date(2025, 6, 30))

    queries = [dict(call.request.url.params) for call in route.calls]
    assert queries == [
        {"school": SCHOOL, "from": "2025-01-01", "to": "2025-04-03"},
        {"school": SCHOOL, "from": "2025-04-04", "to": "2025-06-30"},
    ]
    assert all(call.request.headers["Authorization"] == "ApiKey k3y" for call in route.calls)
    assert (export.start, export.end, export.published, export.version) == (
        dt.date(2025, 1, 1), dt.date(2025, 6, 30), True, V3)
    assert [lesson.date for lesson in export.lessons] == [dt.date(2025, 1, 1), dt.date(2025, 4, 4)]


@respx.mock
async def test_v1_uses_its_own_path_and_an_unpublished_part_empties_the_export() -> None:
    v1 = respx.get(f"{API}/lektion").mock(
        return_value=httpx.Response(200, content=(EXAMPLES / "lektion-v1.xml").read_bytes()))
    v3 = respx.get(f"{API}/lektion/v3").mock(
        side_effect=lambda request: _export_body(request, published=request.url.params["from"] != "2025-04-04"))

    async with Skola24Client(BASE, "k3y", http=FAST) as client:
        old = await client.lessons("paradskolan.skola24.se", SCHOOL, *WEEK, v3=False)
        export = await client.lessons("paradskolan.skola24.se", SCHOOL, dt.date(2025, 1, 1), dt.date(2025, 6, 30))

    assert v1.call_count == 1 and old.version == V1 and len(old.lessons) == 2
    assert v3.call_count == 2 and export.published is False and export.lessons == ()


@respx.mock
async def test_a_refusal_is_raised_with_skola24s_code_and_message_without_retrying() -> None:
    body = codec.encode_error(ErrorBody("UNKNOWN_SCHOOL", f"no school {SCHOOL} in paradskolan.skola24.se"))
    route = respx.get(f"{API}/lektion/v3").mock(return_value=httpx.Response(404, content=body))

    async with Skola24Client(BASE, "k3y", http=FAST) as client:
        with pytest.raises(Skola24Error) as caught:
            await client.lessons("paradskolan.skola24.se", SCHOOL, *WEEK)

    assert route.call_count == 1
    error = caught.value
    assert (error.status_code, error.code, error.message) == (404, "UNKNOWN_SCHOOL",
                                                              f"no school {SCHOOL} in paradskolan.skola24.se")
    assert error.system == "skola24"


@respx.mock
async def test_a_refusal_without_an_error_document_keeps_the_body() -> None:
    respx.get(f"{API}/organisation").mock(return_value=httpx.Response(403, text="Forbidden by proxy"))

    async with Skola24Client(BASE, "k3y", http=FAST) as client:
        with pytest.raises(Skola24Error) as caught:
            await client.organisation("paradskolan.skola24.se")

    assert (caught.value.code, caught.value.message) == (None, "Forbidden by proxy")


@respx.mock
async def test_transient_faults_are_retried_and_reported_as_transient() -> None:
    flaky = respx.get(f"{API}/organisation").mock(side_effect=[
        httpx.Response(503), httpx.Response(200, content=(EXAMPLES / "organisation.xml").read_bytes())])
    down = respx.get(f"{API}/lektion/v3").mock(return_value=httpx.Response(502, text="bad gateway"))

    async with Skola24Client(BASE, "k3y", http=FAST) as client:
        await client.organisation("paradskolan.skola24.se")
        with pytest.raises(TransientError):
            await client.lessons("paradskolan.skola24.se", SCHOOL, *WEEK)

    assert flaky.call_count == 2 and down.call_count == FAST.retry.attempts


async def test_client_refuses_a_reversed_range_before_sending() -> None:
    async with Skola24Client(BASE, "k3y", http=FAST) as client:
        with pytest.raises(ValueError, match="starts after"):
            await client.lessons("paradskolan.skola24.se", SCHOOL, WEEK[1], WEEK[0])


# --- sandbox over HTTP ---------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        yield srv


def _start(server: SandboxServer, timetable: Timetable) -> str:
    return server.start("skola24", with_faults(create_app(timetable), "skola24", FaultConfig()))


def _client(url: str, key: str = DEFAULT_API_KEY) -> Skola24Client:
    return Skola24Client(url, key, http=FAST)


async def test_sandbox_organisation_holds_the_timetables_people(server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)

    async with _client(url) as client:
        organisation = await client.organisation(DEFAULT_DOMAIN)

    assert organisation.domain == DEFAULT_DOMAIN
    assert [(s.guid, s.name) for s in organisation.schools] == [(s.guid, s.name) for s in timetable.schools]
    assert [(p.guid, p.personnummer, p.email, p.role, p.signature) for p in organisation.persons] == [
        (p.guid, p.civic_no, p.email, p.role, p.signature) for p in timetable.persons]
    assert [(g.guid, g.members, g.teachers) for g in organisation.groups] == [
        (g.guid, g.members, g.teachers) for g in timetable.groups]


async def test_a_key_sees_only_the_schools_it_may_read(server: SandboxServer, timetable: Timetable) -> None:
    school = timetable.schools[2]
    timetable.add_api_key("one-school", [(DEFAULT_DOMAIN, school.guid)])
    timetable.add_api_key("no-school", [("annan.skola24.se", school.guid)])
    url = _start(server, timetable)

    async with _client(url, "one-school") as client:
        organisation = await client.organisation(DEFAULT_DOMAIN)
        assert len((await client.lessons(DEFAULT_DOMAIN, school.guid, *WEEK)).lessons) > 0
        with pytest.raises(Skola24Error) as no_access:
            await client.lessons(DEFAULT_DOMAIN, timetable.schools[0].guid, *WEEK)
    async with _client(url, "no-school") as client:
        with pytest.raises(Skola24Error) as nothing:
            await client.organisation(DEFAULT_DOMAIN)

    assert organisation.schools == (School(school.guid, school.name),)
    assert {p.school for p in organisation.persons} == {school.guid}
    assert {g.school for g in organisation.groups} == {school.guid}
    assert (no_access.value.status_code, no_access.value.code) == (403, "NO_ACCESS")
    assert (nothing.value.status_code, nothing.value.code) == (403, "NO_ACCESS")


async def test_sandbox_refuses_with_each_error(server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)
    school = timetable.schools[0].guid
    unknown = "00000000-0000-4000-8000-000000000000"

    async def refusal(key: str, call: str) -> tuple[int, str | None]:
        async with _client(url, key) as client:
            with pytest.raises(Skola24Error) as caught:
                if call == "organisation":
                    await client.organisation("okand.skola24.se")
                else:
                    await client.lessons(DEFAULT_DOMAIN, unknown if call == "unknown" else school, *WEEK)
        return caught.value.status_code, caught.value.code

    assert await refusal("wrong-key", "lessons") == (401, "UNAUTHORIZED")
    assert await refusal(DEFAULT_API_KEY, "organisation") == (404, "UNKNOWN_DOMAIN")
    assert await refusal(DEFAULT_API_KEY, "unknown") == (404, "UNKNOWN_SCHOOL")


@pytest.mark.parametrize(("query", "code"), [
    ("from=2025-09-01&to=2025-09-07", "MISSING_PARAMETER"),
    ("school={school}&to=2025-09-07", "INVALID_DATE"),
    ("school={school}&from=2025-9-1&to=2025-09-07", "INVALID_DATE"),
    ("school={school}&from=2025-02-30&to=2025-03-07", "INVALID_DATE"),
    ("school={school}&from=2025-09-08&to=2025-09-07", "INVALID_RANGE"),
    ("school={school}&from=2025-01-01&to=2025-04-04", "INVALID_RANGE"),  # 94 days
])
async def test_sandbox_answers_400_with_a_valid_error_document(
        server: SandboxServer, timetable: Timetable, query: str, code: str) -> None:
    url = _start(server, timetable)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"ApiKey {DEFAULT_API_KEY}"}) as http:
        answer = await http.get(f"/api/{DEFAULT_DOMAIN}/export/lektion/v3?"
                                + query.format(school=timetable.schools[0].guid))

    assert answer.status_code == 400
    assert codec.validate_schema(answer.content) == []
    assert codec.decode_error(answer.content).code == code


async def test_every_sandbox_answer_is_schema_valid(server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)
    school = timetable.schools[0].guid
    timetable.set_published(timetable.schools[1].guid, False)
    lessons = f"school={school}&from=2025-09-01&to=2025-12-02"  # 93 days
    paths = [
        (f"/api/{DEFAULT_DOMAIN}/export/organisation", 200),
        (f"/api/{DEFAULT_DOMAIN}/export/lektion?{lessons}", 200),
        (f"/api/{DEFAULT_DOMAIN}/export/lektion/v3?{lessons}", 200),
        (f"/api/{DEFAULT_DOMAIN}/export/lektion/v3?school={timetable.schools[1].guid}&from=2025-09-01&to=2025-09-07",
         200),
        ("/api/okand.skola24.se/export/organisation", 404),
        (f"/api/{DEFAULT_DOMAIN}/export/lektion?school=x&from=2025-09-01&to=2025-09-07", 404),
    ]
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"ApiKey {DEFAULT_API_KEY}"}) as http:
        for path, status in paths:
            answer = await http.get(path)
            assert (answer.status_code, codec.validate_schema(answer.content)) == (status, []), path
            assert answer.headers["content-type"].startswith("application/xml")
        unauthorised = await http.get(f"/api/{DEFAULT_DOMAIN}/export/organisation", headers={"Authorization": ""})
    assert unauthorised.status_code == 401 and unauthorised.headers["WWW-Authenticate"] == "ApiKey"
    assert codec.validate_schema(unauthorised.content) == []


async def test_an_unpublished_schedule_yields_no_lessons_until_published(
        server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)
    school = timetable.schools[0].guid

    async with httpx.AsyncClient(base_url=url) as admin, _client(url) as client:
        assert (await admin.put(f"/_sandbox/schools/{school}/published", json={"published": False})).status_code == 200
        hidden = await client.lessons(DEFAULT_DOMAIN, school, *WEEK)
        assert (await admin.put(f"/_sandbox/schools/{school}/published", json={"published": True})).status_code == 200
        shown = await client.lessons(DEFAULT_DOMAIN, school, *WEEK)
        assert (await admin.put("/_sandbox/schools/nope/published", json={"published": True})).status_code == 404

    assert (hidden.published, hidden.lessons) == (False, ())
    assert shown.published is True and len(shown.lessons) == len(timetable.patterns_of(school))


async def test_v1_and_v3_describe_the_same_lessons_differently(server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)
    school = timetable.schools[0].guid

    async with _client(url) as client:
        organisation = await client.organisation(DEFAULT_DOMAIN)
        v1 = await client.lessons(DEFAULT_DOMAIN, school, *WEEK, v3=False)
        v3 = await client.lessons(DEFAULT_DOMAIN, school, *WEEK)

    signature = {p.guid: p.signature for p in organisation.persons}
    group_name = {g.guid: g.name for g in organisation.groups}
    assert [lesson.guid for lesson in v1.lessons] == [lesson.guid for lesson in v3.lessons]
    for old, new in zip(v1.lessons, v3.lessons, strict=True):
        assert (old.teachers, old.groups, old.rooms, old.changed) == ((), (), (), None)
        assert new.teachers and new.groups and new.rooms and new.changed is not None
        assert old.teacher_signatures == tuple(signature[t] for t in new.teachers) == new.teacher_signatures
        assert old.group_names == tuple(group_name[g] for g in new.groups)
        assert (old.subject, old.date, old.start, old.end) == (new.subject, new.date, new.start, new.end)


async def test_lesson_guids_are_stable_across_calls_and_ranges(server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)
    school = timetable.schools[0].guid
    term = (dt.date(2025, 8, 18), dt.date(2025, 12, 19))  # 124 days: two calls

    async with _client(url) as client:
        first = await client.lessons(DEFAULT_DOMAIN, school, *WEEK)
        again = await client.lessons(DEFAULT_DOMAIN, school, *WEEK)
        whole = await client.lessons(DEFAULT_DOMAIN, school, *term)

    assert first == again
    weekly = len(timetable.patterns_of(school))
    assert len(whole.lessons) == 18 * weekly  # 18 school weeks from Monday 18 August to Friday 19 December
    assert len({lesson.guid for lesson in whole.lessons}) == len(whole.lessons)
    in_week = [lesson for lesson in whole.lessons if WEEK[0] <= lesson.date <= WEEK[1]]
    assert in_week == list(first.lessons)


async def test_a_removed_lesson_pattern_disappears(server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)
    school = timetable.schools[0].guid

    async with httpx.AsyncClient(base_url=url) as admin, _client(url) as client:
        before = await client.lessons(DEFAULT_DOMAIN, school, *WEEK)
        patterns = (await admin.get("/_sandbox/patterns", params={"school": school})).json()
        target = patterns[0]
        assert (await admin.delete(f"/_sandbox/patterns/{target['id']}")).status_code == 200
        assert (await admin.delete(f"/_sandbox/patterns/{target['id']}")).status_code == 404
        after = await client.lessons(DEFAULT_DOMAIN, school, *WEEK)

    gone = [lesson for lesson in before.lessons if lesson not in after.lessons]
    assert len(gone) == 1 and len(after.lessons) == len(before.lessons) - 1
    assert (gone[0].subject, gone[0].start.isoformat(), gone[0].date.weekday()) == (
        target["subject"], target["start"], target["weekday"])


async def test_a_changed_work_email_shows_in_the_organisation(server: SandboxServer, timetable: Timetable) -> None:
    url = _start(server, timetable)
    teacher = next(p for p in timetable.persons if p.role == "staff")

    async with httpx.AsyncClient(base_url=url) as admin, _client(url) as client:
        answer = await admin.put(f"/_sandbox/persons/{teacher.guid}/email", json={"email": None})
        organisation = await client.organisation(DEFAULT_DOMAIN)

    assert answer.status_code == 200
    person = next(p for p in organisation.persons if p.guid == teacher.guid)
    assert person.email is None and person.personnummer == teacher.civic_no


async def test_client_rides_out_injected_faults(timetable: Timetable, server: SandboxServer) -> None:
    injector = with_faults(create_app(timetable), "skola24", FaultConfig(server_error=0.4, seed=1))
    url = server.start("skola24", injector)
    school = timetable.schools[0].guid

    async with Skola24Client(url, DEFAULT_API_KEY, http=HttpSettings(retry=RetryPolicy(10, 0.0))) as client:
        for _ in range(4):
            assert len((await client.lessons(DEFAULT_DOMAIN, school, *WEEK)).lessons) == len(
                timetable.patterns_of(school))

    assert injector.injected["server_error"]
