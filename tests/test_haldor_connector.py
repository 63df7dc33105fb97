"""Haldor connector: models and date windows (pure), client (respx), and client against the sandbox over HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx
from pydantic import ValidationError

from skolflow.connectors.haldor import (
    DATE_OUTSIDE_RANGE,
    DUPLICATE_POSITION,
    END_NOT_AFTER_START,
    MAX_POSITIONS,
    NO_KNOWN_TEACHER,
    REJECTION_REASONS,
    Group,
    HaldorClient,
    PersonRef,
    Position,
    ScheduleResult,
    User,
    plan_windows,
    range_problem,
)
from skolflow.connectors.haldor.sandbox import HaldorSchool, create_app, create_app_for, school_id_for, schools_for
from skolflow.connectors.http import HttpSettings, RemoteError, RetryPolicy
from skolflow.sandbox.dataset import Dataset, Person, SchoolUnit, generate
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from tests.remote import MOCKED_REMOTE

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "haldor" / "haldor-schedule-api.json")
                    .read_text())
FAST = HttpSettings(retry=RetryPolicy(attempts=6, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)
BASE = "https://haldor.example.se"
SCHOOL = "haldor-12345678"
SCHEDULE_PATH = f"/api/schools/{SCHOOL}/schedule"
USERS_PATH = f"/api/schools/{SCHOOL}/users"
MONDAY = dt.date(2026, 3, 2)
PNR = "200804121234"
TEACHER = PersonRef(email="anna.larsson@skola.se")


def check_schema(definition: str, body: Any) -> None:
    jsonschema.validate(body, {**SCHEMA, "$ref": f"#/$defs/{definition}"})


def position(external_id: str = "lesson-1", day: dt.date = MONDAY, start: str = "08:00", end: str = "09:00",
             teachers: list[PersonRef] | None = None, members: list[PersonRef] | None = None) -> Position:
    return Position(external_id=external_id, subject="Matematik", date=day, start=start, end=end, rooms=["A101"],
                    teachers=[TEACHER] if teachers is None else teachers,
                    groups=[Group(external_id="g-7a", name="7A", members=members or [])])


def token_answer(value: str = "t1", expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "token_type": "Bearer", "expires_in": expires_in})


def result_answer(**counts: int) -> httpx.Response:
    return httpx.Response(200, json={"created": 0, "updated": 0, "removed": 0, "unchanged": 0, **counts,
                                     "unknownPersons": [], "rejected": []})


def haldor(base_url: str = BASE, client_id: str = "client", secret: str = "secret") -> HaldorClient:
    return HaldorClient(base_url, client_id, secret, http=FAST)


# --- models and windows (pure) --------------------------------------------------------------------------------


def test_person_ref_carries_exactly_one_key_and_never_quotes_it() -> None:
    assert PersonRef(personnummer=PNR).to_wire() == {"personnummer": PNR}
    for both_or_neither in ({"email": "a@b.se", "personnummer": PNR}, {}):
        with pytest.raises(ValidationError) as info:
            PersonRef(**both_or_neither)
        assert PNR not in str(info.value)
    with pytest.raises(ValidationError) as info:
        PersonRef(personnummer=PNR[2:])  # ten digits: Haldor matches twelve
    assert PNR[2:] not in str(info.value)


def test_position_wire_form_and_times() -> None:
    wire = Position(external_id="x", subject="Svenska", date=MONDAY, start=dt.time(8, 5), end="09:40",
                    teachers=[PersonRef(personnummer=PNR)]).to_wire()
    assert wire == {"externalId": "x", "subject": "Svenska", "date": "2026-03-02", "start": "08:05", "end": "09:40",
                    "rooms": [], "teachers": [{"personnummer": PNR}], "groups": []}
    check_schema("Position", wire)
    with pytest.raises(ValidationError):
        position(start="8:00")


def test_range_rule() -> None:
    assert range_problem(MONDAY, MONDAY) is None
    assert range_problem(MONDAY, MONDAY + dt.timedelta(days=92)) is None
    assert "94 days" in (range_problem(MONDAY, MONDAY + dt.timedelta(days=93)) or "")
    assert "after" in (range_problem(MONDAY, MONDAY - dt.timedelta(days=1)) or "")


def test_windows_split_by_day_at_2000_and_cover_the_whole_range() -> None:
    days = [MONDAY + dt.timedelta(days=n) for n in range(5)]
    positions = [position(f"l{d}-{n}", day) for d, day in enumerate(days) for n in range(700)]
    windows = plan_windows(MONDAY, MONDAY + dt.timedelta(days=6), positions)
    assert [(w.start, w.end, len(w.positions)) for w in windows] == [
        (days[0], days[1], 1400), (days[2], days[3], 1400), (days[4], MONDAY + dt.timedelta(days=6), 700)]
    assert sorted(p.external_id for w in windows for p in w.positions) == sorted(p.external_id for p in positions)
    assert all(p.date == days[0] or p.date == days[1] for p in windows[0].positions)


def test_windows_split_long_ranges_at_93_days() -> None:
    windows = plan_windows(MONDAY, MONDAY + dt.timedelta(days=199), [position(day=MONDAY + dt.timedelta(days=150))])
    assert [((w.end - w.start).days + 1, len(w.positions)) for w in windows] == [(93, 0), (93, 1), (14, 0)]
    assert all(later.start == earlier.end + dt.timedelta(days=1)
               for earlier, later in zip(windows, windows[1:], strict=False))


def test_windows_send_positions_outside_the_range_with_the_first_call() -> None:
    early = position("early", MONDAY - dt.timedelta(days=1))
    windows = plan_windows(MONDAY, MONDAY + dt.timedelta(days=100), [position(), early])
    assert [p.external_id for p in windows[0].positions] == ["lesson-1", "early"]
    assert len(windows) == 2 and windows[1].positions == []


def test_a_day_with_more_than_2000_positions_cannot_be_sent() -> None:
    crowded = [position(f"l{n}") for n in range(MAX_POSITIONS + 1)]
    with pytest.raises(ValueError, match="2001 positions on 2026-03-02"):
        plan_windows(MONDAY, MONDAY, crowded)
    exactly = plan_windows(MONDAY, MONDAY, crowded[:MAX_POSITIONS])
    assert len(exactly) == 1
    with pytest.raises(ValueError, match="outside"):
        plan_windows(MONDAY, MONDAY, [*crowded[:MAX_POSITIONS], position("early", MONDAY - dt.timedelta(days=1))])
    with pytest.raises(ValueError, match="after"):
        plan_windows(MONDAY, MONDAY - dt.timedelta(days=1), [])


def test_results_combine() -> None:
    ref = PersonRef(email="x@y.se")
    first = ScheduleResult(created=2, updated=1, removed=0, unchanged=3, unknown_persons=[ref],
                           rejected=[{"externalId": "a", "date": MONDAY, "reason": NO_KNOWN_TEACHER}])
    second = ScheduleResult(created=1, updated=0, removed=4, unchanged=0, unknown_persons=[ref, TEACHER],
                            rejected=[{"externalId": "b", "reason": END_NOT_AFTER_START}])
    merged = ScheduleResult.combine([first, second])
    assert (merged.created, merged.updated, merged.removed, merged.unchanged) == (3, 1, 4, 3)
    assert merged.unknown_persons == [ref, TEACHER]
    assert [(r.external_id, r.reason) for r in merged.rejected] == [("a", NO_KNOWN_TEACHER), ("b", END_NOT_AFTER_START)]


def test_schema_matches_the_models() -> None:
    definitions = SCHEMA["$defs"]
    assert tuple(definitions["Rejection"]["properties"]["reason"]["enum"]) == REJECTION_REASONS
    for name, model in (("Position", Position), ("Group", Group), ("PersonRef", PersonRef), ("User", User),
                        ("ScheduleResult", ScheduleResult)):
        assert set(definitions[name]["properties"]) == set(model.model_json_schema(by_alias=True)["properties"]), name
    check_schema("ScheduleRequest", {"positions": [position(members=[PersonRef(personnummer=PNR)]).to_wire()]})
    with pytest.raises(jsonschema.ValidationError):
        check_schema("PersonRef", {"email": "a@b.se", "personnummer": PNR})


# --- client (respx) -------------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused() -> None:
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(return_value=token_answer("abc"))
        users = mock.get(USERS_PATH).mock(return_value=httpx.Response(200, json={"users": []}))
        put = mock.put(SCHEDULE_PATH).mock(return_value=result_answer(created=1))
        async with haldor() as client:
            await client.users(SCHOOL)
            await client.replace_schedule(SCHOOL, MONDAY, MONDAY, [position()])
            await client.replace_schedule(SCHOOL, MONDAY, MONDAY, [position()])
    assert token.call_count == 1 and users.call_count == 1 and put.call_count == 2
    assert {call.request.headers["Authorization"] for call in [*users.calls, *put.calls]} == {"Bearer abc"}
    form = dict(httpx.QueryParams(token.calls[0].request.content.decode()))
    assert form == {"grant_type": "client_credentials", "client_id": "client", "client_secret": "secret"}


async def test_token_is_refreshed_before_it_expires() -> None:
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(side_effect=[token_answer("one", 0), token_answer("two", 0)])
        users = mock.get(USERS_PATH).mock(return_value=httpx.Response(200, json={"users": []}))
        async with haldor() as client:
            await client.users(SCHOOL)
            await client.users(SCHOOL)
    assert token.call_count == 2
    assert [call.request.headers["Authorization"] for call in users.calls] == ["Bearer one", "Bearer two"]


async def test_a_401_fetches_a_new_token_and_retries_once() -> None:
    refusal = httpx.Response(401, json={"error": "UNAUTHENTICATED", "message": "expired"})
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(side_effect=[token_answer("old"), token_answer("new"),
                                                             token_answer("newer")])
        put = mock.put(SCHEDULE_PATH).mock(side_effect=[refusal, result_answer(created=1), refusal, refusal])
        async with haldor() as client:
            result = await client.replace_schedule(SCHOOL, MONDAY, MONDAY, [position()])
            with pytest.raises(RemoteError) as info:
                await client.replace_schedule(SCHOOL, MONDAY, MONDAY, [position()])
    assert result.created == 1 and info.value.status_code == 401 and token.call_count == 3
    assert [call.request.headers["Authorization"] for call in put.calls] == [
        "Bearer old", "Bearer new", "Bearer new", "Bearer newer"]


async def test_bad_credentials_are_raised_at_once() -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        token = mock.post("/oauth2/token").mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
        api = mock.get(USERS_PATH)
        async with haldor() as client:
            with pytest.raises(RemoteError, match="invalid_client") as info:
                await client.users(SCHOOL)
    assert info.value.status_code == 401 and token.call_count == 1 and api.call_count == 0
    assert "secret" not in str(info.value)


async def test_users_follow_every_page() -> None:
    def user(n: int, **extra: Any) -> dict[str, Any]:
        return {"id": f"u{n}", "email": f"p{n}@skola.se", "role": "student", **extra}

    pages = [httpx.Response(200, json={"users": [user(1, personnummer=PNR), user(2)], "nextPageToken": "p2"}),
             httpx.Response(200, json={"users": [user(3, role="teacher", surname="ignored")], "nextPageToken": "p3"}),
             httpx.Response(200, json={"users": [], "nextPageToken": None})]
    for page in pages:
        check_schema("UsersPage", json.loads(page.content))
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        route = mock.get(USERS_PATH).mock(side_effect=pages)
        async with haldor() as client:
            users = await client.users(SCHOOL)
    assert [(u.id, u.personnummer, u.role) for u in users] == [("u1", PNR, "student"), ("u2", None, "student"),
                                                                ("u3", None, "teacher")]
    assert [call.request.url.params.get("pageToken") for call in route.calls] == [None, "p2", "p3"]


async def test_a_repeated_page_token_stops_paging() -> None:
    page = httpx.Response(200, json={"users": [], "nextPageToken": "again"})
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        route = mock.get(USERS_PATH).mock(return_value=page)
        async with haldor() as client:
            with pytest.raises(RemoteError, match="repeated nextPageToken"):
                await client.users(SCHOOL)
    assert route.call_count == 2


async def test_more_than_2000_positions_are_split_by_date_and_merged() -> None:
    positions = [position(f"l{d}-{n}", MONDAY + dt.timedelta(days=d)) for d in range(3) for n in range(900)]
    answers = [result_answer(created=1800), result_answer(created=899, unchanged=1)]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        put = mock.put(SCHEDULE_PATH).mock(side_effect=answers)
        async with haldor() as client:
            result = await client.replace_schedule(SCHOOL, MONDAY, MONDAY + dt.timedelta(days=4), positions)
    assert (result.created, result.unchanged) == (2699, 1)
    sent = [(dict(call.request.url.params), json.loads(call.request.content)) for call in put.calls]
    assert [params for params, _ in sent] == [{"from": "2026-03-02", "to": "2026-03-03"},
                                              {"from": "2026-03-04", "to": "2026-03-06"}]
    assert [len(body["positions"]) for _, body in sent] == [1800, 900]
    check_schema("ScheduleRequest", sent[1][1])


async def test_a_crowded_day_is_refused_before_anything_is_sent() -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        token = mock.post("/oauth2/token").mock(return_value=token_answer())
        put = mock.put(SCHEDULE_PATH)
        async with haldor() as client:
            with pytest.raises(ValueError, match="one day cannot be split"):
                await client.replace_schedule(SCHOOL, MONDAY, MONDAY + dt.timedelta(days=1),
                                              [position(f"l{n}") for n in range(MAX_POSITIONS + 1)])
    assert token.call_count == 0 and put.call_count == 0


async def test_client_errors_are_raised_with_haldor_s_body_masked() -> None:
    body = {"error": "INVALID_BODY", "message": f"positions.0.teachers.0: {PNR} is not known"}
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        route = mock.put(SCHEDULE_PATH).mock(return_value=httpx.Response(400, json=body))
        async with haldor() as client:
            with pytest.raises(RemoteError) as info:
                await client.replace_schedule(SCHOOL, MONDAY, MONDAY, [position()])
    assert route.call_count == 1 and info.value.status_code == 400 and info.value.__suppress_context__
    assert json.loads(info.value.body)["error"] == "INVALID_BODY" and "20080412-****" in info.value.body
    assert PNR not in str(info.value) and PNR not in info.value.body


async def test_an_answer_of_the_wrong_shape_is_raised_masked() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        mock.put(SCHEDULE_PATH).mock(return_value=httpx.Response(200, json={"created": PNR}))
        async with haldor() as client:
            with pytest.raises(RemoteError, match="not a ScheduleResult") as info:
                await client.replace_schedule(SCHOOL, MONDAY, MONDAY, [position()])
    assert PNR not in str(info.value) and PNR not in info.value.body


async def test_schedule_is_read_in_ranges_of_93_days() -> None:
    held = position().to_wire()
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        route = mock.get(SCHEDULE_PATH).mock(side_effect=[httpx.Response(200, json={"positions": [held]}),
                                                          httpx.Response(200, json={"positions": []})])
        async with haldor() as client:
            positions = await client.schedule(SCHOOL, MONDAY, MONDAY + dt.timedelta(days=99))
    assert positions == [position()]
    assert [dict(call.request.url.params) for call in route.calls] == [
        {"from": "2026-03-02", "to": "2026-06-02"}, {"from": "2026-06-03", "to": "2026-06-09"}]


# --- client against the sandbox over real HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(students=40, seed=5)


@pytest.fixture(scope="module")
def unit(dataset: Dataset) -> SchoolUnit:
    return dataset.school_units[1]


def persons_of(dataset: Dataset, unit: SchoolUnit, role: str) -> list[Person]:
    return [p for p in dataset.persons if p.school_unit_id == unit.id and p.role == role]


@pytest.fixture(scope="module")
def absent(dataset: Dataset, unit: SchoolUnit) -> Person:
    """A student Haldor does not know (only the source system has them)."""
    return persons_of(dataset, unit, "student")[-1]


@pytest.fixture(scope="module")
def sandbox(dataset: Dataset, absent: Person) -> Iterator[tuple[str, Any]]:
    with SandboxServer() as server:
        injector = with_faults(create_app_for(dataset, missing={absent.id}, page_size=4), "haldor", FaultConfig())
        yield server.start("haldor", injector), injector


@pytest.fixture
def url(sandbox: tuple[str, Any]) -> str:
    base, injector = sandbox
    injector.configure(FaultConfig())
    httpx.delete(f"{base}/_sandbox/state").raise_for_status()
    return base


def sandbox_client(url: str, **changes: Any) -> HaldorClient:
    values = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    return HaldorClient(url, http=FAST, **{**values, **changes})


def held(url: str, school_id: str) -> dict[str, Any]:
    snapshot = httpx.get(f"{url}/_sandbox/schools/{school_id}/positions").json()
    check_schema("SandboxPositions", snapshot)
    return snapshot


def lessons(dataset: Dataset, unit: SchoolUnit, days: int = 5, per_day: int = 3) -> list[Position]:
    """A week of lessons at ``unit``: taught by its staff (by e-mail), attended by its students."""
    teachers = [PersonRef(email=p.email) for p in persons_of(dataset, unit, "staff")]
    students = [PersonRef(email=p.email) for p in persons_of(dataset, unit, "student")]
    return [Position(external_id=f"{unit.code}-{n}", subject="Matematik", date=MONDAY + dt.timedelta(days=d),
                     start=f"{8 + n:02d}:00", end=f"{8 + n:02d}:50", rooms=[f"R{n}"], teachers=[teachers[n % 2]],
                     groups=[Group(external_id=f"{unit.code}-g", name="NA24a", members=students)])
            for d in range(days) for n in range(per_day)]


async def test_users_are_the_unit_s_persons_as_haldor_holds_them(url: str, dataset: Dataset, unit: SchoolUnit,
                                                                  absent: Person) -> None:
    async with sandbox_client(url) as client:
        users = await client.users(school_id_for(unit))
    expected = [p for p in dataset.persons if p.school_unit_id == unit.id and p.id != absent.id]
    assert len(users) == len(expected) > 4  # more than one page of four
    assert [u.email for u in users] == [p.email.lower() for p in expected]
    assert [u.role for u in users] == ["teacher" if p.role == "staff" else "student" for p in expected]
    assert {u.personnummer for u in users} <= {p.civic_no for p in expected} | {None}
    assert {u.id for u in users}.isdisjoint(p.id for p in expected)  # Haldor's ids are its own
    everyone = [u for school in schools_for(dataset).values() for u in school.users]
    assert 0.3 < sum(u.personnummer is not None for u in everyone) / len(everyone) < 0.7
    assert schools_for(dataset) == schools_for(dataset)  # the same half every time


async def test_replace_is_idempotent(url: str, dataset: Dataset, unit: SchoolUnit, absent: Person) -> None:
    school = school_id_for(unit)
    week = lessons(dataset, unit)
    async with sandbox_client(url) as client:
        first = await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=6), week)
        shuffled = [p.model_copy(update={"groups": [g.model_copy(update={"members": list(reversed(g.members))})
                                                    for g in p.groups]}) for p in reversed(week)]
        second = await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=6), shuffled)
        stored = await client.schedule(school, MONDAY, MONDAY + dt.timedelta(days=6))
    assert (first.created, first.updated, first.removed, first.unchanged) == (15, 0, 0, 0)
    assert (second.created, second.updated, second.removed, second.unchanged) == (0, 0, 0, 15)
    assert first.unknown_persons == second.unknown_persons == [PersonRef(email=absent.email)]
    assert first.rejected == second.rejected == []
    snapshot = held(url, school)
    assert (snapshot["count"], snapshot["putsReceived"], snapshot["positionsChanged"]) == (15, 2, 15)
    assert len(stored) == 15 and all(absent.email not in json.dumps(p.to_wire()) for p in stored)
    assert len(stored[0].groups[0].members) == len(week[0].groups[0].members) - 1


async def test_a_position_left_out_is_removed_and_a_changed_one_updated(url: str, dataset: Dataset,
                                                                        unit: SchoolUnit) -> None:
    school = school_id_for(unit)
    week = lessons(dataset, unit)
    async with sandbox_client(url) as client:
        await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=6), week)
        moved = week[1].model_copy(update={"rooms": ["Aulan"]})
        result = await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=6),
                                               [week[0], moved, *week[3:]])
        stored = await client.schedule(school, MONDAY, MONDAY + dt.timedelta(days=6))
    assert (result.created, result.updated, result.removed, result.unchanged) == (0, 1, 1, 13)
    assert week[2].key not in {p.key for p in stored} and len(stored) == 14
    assert next(p for p in stored if p.key == moved.key).rooms == ["Aulan"]
    assert held(url, school)["positionsChanged"] == 15 + 2


async def test_positions_outside_the_range_are_untouched(url: str, dataset: Dataset, unit: SchoolUnit) -> None:
    school = school_id_for(unit)
    two_weeks = lessons(dataset, unit, days=12)
    second_monday = MONDAY + dt.timedelta(days=7)
    async with sandbox_client(url) as client:
        await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=13), two_weeks)
        result = await client.replace_schedule(school, second_monday, second_monday + dt.timedelta(days=6), [])
        stored = await client.schedule(school, MONDAY, MONDAY + dt.timedelta(days=13))
    assert result.removed == len([p for p in two_weeks if p.date >= second_monday]) == 15
    assert [p.key for p in stored] == [p.key for p in two_weeks if p.date < second_monday]


async def test_unknown_persons_are_listed_and_matching_is_exact(url: str, dataset: Dataset, unit: SchoolUnit) -> None:
    school = school_id_for(unit)
    users = {user.email: user for user in schools_for(dataset)[school].users}
    with_pnr = next(user for user in users.values() if user.personnummer)
    without_pnr = next(p for p in persons_of(dataset, unit, "student")
                       if p.email in users and users[p.email].personnummer is None)
    shouting = PersonRef(email=with_pnr.email.upper())
    members = [PersonRef(personnummer=with_pnr.personnummer), PersonRef(personnummer=without_pnr.civic_no), shouting]
    lesson = lessons(dataset, unit, days=1, per_day=1)[0].model_copy(
        update={"groups": [Group(external_id="g", name="G", members=members)]})
    async with sandbox_client(url) as client:
        result = await client.replace_schedule(school, MONDAY, MONDAY, [lesson])
        stored = await client.schedule(school, MONDAY, MONDAY)
    assert result.created == 1
    assert result.unknown_persons == [PersonRef(personnummer=without_pnr.civic_no), shouting]
    assert stored[0].groups[0].members == [PersonRef(personnummer=with_pnr.personnummer)]


async def test_rejections(url: str, dataset: Dataset, unit: SchoolUnit, absent: Person) -> None:
    school = school_id_for(unit)
    good = lessons(dataset, unit, days=1, per_day=1)[0]
    stranger = PersonRef(email="vikarie@annan.se")
    sent = [
        good,
        good.model_copy(update={"external_id": "nobody", "teachers": [stranger, PersonRef(email=absent.email)]}),
        good.model_copy(update={"external_id": "backwards", "start": "10:00", "end": "09:15"}),
        good.model_copy(update={"external_id": "empty", "start": "10:00", "end": "10:00"}),
        good.model_copy(update={"external_id": "late", "date": MONDAY + dt.timedelta(days=1)}),
        good.model_copy(update={"subject": "Fysik"}),
    ]
    async with sandbox_client(url) as client:
        result = await client.replace_schedule(school, MONDAY, MONDAY, sent)
        stored = await client.schedule(school, MONDAY, MONDAY + dt.timedelta(days=1))
    assert [(r.external_id, r.reason) for r in result.rejected] == [
        ("nobody", NO_KNOWN_TEACHER), ("backwards", END_NOT_AFTER_START), ("empty", END_NOT_AFTER_START),
        ("late", DATE_OUTSIDE_RANGE), (good.external_id, DUPLICATE_POSITION)]
    assert result.rejected[3].date == MONDAY + dt.timedelta(days=1)
    assert [p.external_id for p in stored] == [good.external_id] and stored[0].subject == "Matematik"
    assert result.created == 1 and stranger in result.unknown_persons


async def test_a_rejected_position_replaces_what_was_held(url: str, dataset: Dataset, unit: SchoolUnit) -> None:
    school = school_id_for(unit)
    good = lessons(dataset, unit, days=1, per_day=1)[0]
    async with sandbox_client(url) as client:
        await client.replace_schedule(school, MONDAY, MONDAY, [good])
        result = await client.replace_schedule(school, MONDAY, MONDAY, [good.model_copy(update={"end": "07:00"})])
        assert await client.schedule(school, MONDAY, MONDAY) == []
    assert result.removed == 1 and [r.reason for r in result.rejected] == [END_NOT_AFTER_START]


async def test_a_large_replace_is_split_over_http(url: str, dataset: Dataset, unit: SchoolUnit) -> None:
    school = school_id_for(unit)
    many = lessons(dataset, unit, days=5, per_day=1)
    many = [p.model_copy(update={"external_id": f"{p.external_id}-{n}"}) for p in many for n in range(500)]
    async with sandbox_client(url) as client:
        result = await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=4), many)
        again = await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=4), many)
    assert result.created == again.unchanged == 2500 and again.created == again.updated == 0
    assert len(result.unknown_persons) == 1  # named once although every call met them
    snapshot = held(url, school)
    assert (snapshot["count"], snapshot["putsReceived"], snapshot["positionsChanged"]) == (2500, 4, 2500)


async def test_replace_survives_server_faults(sandbox: tuple[str, Any], url: str, dataset: Dataset,
                                              unit: SchoolUnit) -> None:
    _, injector = sandbox
    injector.configure(FaultConfig(server_error=0.3, rate_limit=0.1, retry_after_seconds=0, seed=3))
    school = school_id_for(unit)
    async with sandbox_client(url) as client:
        result = await client.replace_schedule(school, MONDAY, MONDAY + dt.timedelta(days=6), lessons(dataset, unit))
    assert result.created == 15 and held(url, school)["count"] == 15
    assert sum(injector.injected.values()) > 0


async def test_refusals_of_the_whole_request(url: str, dataset: Dataset, unit: SchoolUnit) -> None:
    school = school_id_for(unit)
    token = httpx.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                    "client_secret": "sandbox-secret"}).json()
    check_schema("TokenResponse", token)
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    api = f"{url}/api/schools/{school}/schedule"
    one = {"positions": [lessons(dataset, unit, days=1, per_day=1)[0].to_wire()]}

    def put(params: dict[str, str], body: dict[str, Any] = one) -> httpx.Response:
        return httpx.put(api, params=params, json=body, headers=auth)

    too_many = put({"from": "2026-03-02", "to": "2026-03-02"}, {"positions": one["positions"] * (MAX_POSITIONS + 1)})
    assert too_many.status_code == 413 and too_many.json()["error"] == "TOO_MANY_POSITIONS"
    for bad in ({"from": "2026-03-03", "to": "2026-03-02"}, {"from": "2026-03-02", "to": "2026-06-03"},
                {"from": "2026-03-02"}, {"from": "2026-03-02", "to": "2 mars"}):
        answer = put(bad)
        assert answer.status_code == 400 and answer.json()["error"] == "INVALID_RANGE", bad
        check_schema("ErrorResponse", answer.json())
    allowed = put({"from": "2026-03-02", "to": "2026-06-02"})  # 93 days, both ends counted
    assert allowed.status_code == 200
    check_schema("ScheduleResult", allowed.json())
    stored = httpx.get(api, params={"from": "2026-03-02", "to": "2026-03-02"}, headers=auth)
    check_schema("SchedulePage", stored.json())
    assert len(stored.json()["positions"]) == 1
    check_schema("UsersPage", httpx.get(f"{url}/api/schools/{school}/users", headers=auth).json())
    both = {"positions": [{**one["positions"][0], "teachers": [{"email": "a@b.se", "personnummer": PNR}]}]}
    malformed = put({"from": "2026-03-02", "to": "2026-03-02"}, both)
    assert malformed.status_code == 400 and malformed.json()["error"] == "INVALID_BODY"
    assert PNR not in malformed.text
    bare = httpx.get(api, params={"from": "2026-03-02", "to": "2026-03-02"})
    assert bare.status_code == 401 and bare.json()["error"] == "UNAUTHENTICATED"
    assert httpx.get(f"{url}/api/schools/{school}/users", params={"pageToken": "x"},
                     headers=auth).json()["error"] == "INVALID_PAGE_TOKEN"
    assert held(url, school)["count"] == 1


async def test_unknown_school_and_bad_credentials(url: str) -> None:
    async with sandbox_client(url) as client:
        with pytest.raises(RemoteError) as info:
            await client.replace_schedule("haldor-00000000", MONDAY, MONDAY, [])
    assert info.value.status_code == 404 and json.loads(info.value.body)["error"] == "SCHOOL_NOT_FOUND"
    async with sandbox_client(url, client_secret="wrong") as client:
        with pytest.raises(RemoteError) as info:
            await client.users("haldor-00000000")
    assert info.value.status_code == 401 and json.loads(info.value.body) == {"error": "invalid_client"}


async def test_a_revoked_token_is_replaced(url: str, dataset: Dataset, unit: SchoolUnit) -> None:
    async with sandbox_client(url) as client:
        first = await client.users(school_id_for(unit))
        assert httpx.delete(f"{url}/_sandbox/tokens").json()["revoked"] >= 1
        assert await client.users(school_id_for(unit)) == first


async def test_grants_limit_a_client_to_its_schools() -> None:
    teacher = User(id="t", email="t@skola.se", role="teacher")
    schools = {"a": HaldorSchool("A", (teacher,)), "b": HaldorSchool("B", ())}
    app = create_app(schools, {"one": "s1", "all": "s2"}, grants={"one": ["a"]})
    with SandboxServer() as server:
        base = server.start("haldor-grants", with_faults(app, "haldor", FaultConfig()))
        async with HaldorClient(base, "one", "s1", http=FAST) as client:
            assert await client.users("a") == [teacher]
            with pytest.raises(RemoteError) as info:
                await client.users("b")
        async with HaldorClient(base, "all", "s2", http=FAST) as client:
            assert await client.users("b") == []
    assert info.value.status_code == 403 and json.loads(info.value.body)["error"] == "FORBIDDEN"
