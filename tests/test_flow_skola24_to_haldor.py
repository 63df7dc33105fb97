"""Skola24 → Haldor run by Prefect for real against both sandboxes over HTTP.

What Haldor holds is read from the Haldor sandbox itself and compared with what Skola24 publishes.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skolflow.flows.skola24_to_haldor import NOT_PUBLISHED, PIPELINE, skola24_to_haldor
from skolflow.ledger import Ledger
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig
from skolflow.tasks.schools import SchoolConfig, dump_schools
from skolflow.tasks.timetable import MatchKey

pytestmark = pytest.mark.usefixtures("prefect_harness")

START, END = dt.date(2026, 11, 23), dt.date(2026, 12, 6)  # two school weeks


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    running = systems.start(ds.generate(students=60, schools=3, seed=5),
                            {name: FaultConfig() for name in systems.SYSTEMS})
    for key, value in running.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("SKOLFLOW_SKOLA24_SCHOOLS", str(tmp_path / "schools.toml"))
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "5")
    yield running
    running.stop()


def configure(sandboxes: systems.Sandboxes, configs: list[SchoolConfig]) -> None:
    Path(os.environ["SKOLFLOW_SKOLA24_SCHOOLS"]).write_text(dump_schools(configs))


def held(sandboxes: systems.Sandboxes, school: SchoolConfig) -> dict[str, Any]:
    return httpx.get(f"{sandboxes.urls['haldor']}/_sandbox/schools/{school.haldor_school}/positions").json()


def expected_lessons(sandboxes: systems.Sandboxes, school: SchoolConfig, known: set[str]) -> set[tuple[str, str]]:
    """Skola24's published lessons that have at least one teacher Haldor knows."""
    if not sandboxes.timetable.published[school.school_guid]:
        return set()
    return {(lesson.guid, lesson.date.isoformat())
            for lesson in sandboxes.timetable.lessons(school.school_guid, START, END)
            if any(t in known for t in lesson.teachers)}


def known_by_email(sandboxes: systems.Sandboxes) -> set[str]:
    missing = set(systems.haldor_missing(sandboxes.dataset))
    return {p.id for p in sandboxes.dataset.persons if p.id not in missing}


def stored(sandboxes: systems.Sandboxes, school: SchoolConfig) -> set[tuple[str, str]]:
    return {(p["externalId"], p["date"]) for p in held(sandboxes, school)["positions"]}


async def run(**params: Any) -> Any:
    return await skola24_to_haldor(start=START, end=END, return_state=True, **params)


def summary(tmp: str) -> dict[str, Any]:
    return Ledger.shared(tmp).runs(PIPELINE, limit=1)[0].summary


async def test_every_school_gets_exactly_its_published_lessons_and_the_unmatched_are_reported(
        sandboxes: systems.Sandboxes) -> None:
    configs = systems.school_configs(sandboxes.dataset, sandboxes.timetable)
    configure(sandboxes, configs)
    state = await run()
    assert state.is_completed(), state.message
    known = known_by_email(sandboxes)
    for school in configs:
        assert stored(sandboxes, school) == expected_lessons(sandboxes, school, known)
    report = summary(os.environ["SKOLFLOW_DATABASE_URL"])
    missing_here = [p for p in systems.haldor_missing(sandboxes.dataset)]
    assert sum(s["unmatched_persons"] for s in report.values()) == len(missing_here)


async def test_email_matching_ignores_case_and_whitespace(sandboxes: systems.Sandboxes) -> None:
    school = systems.school_configs(sandboxes.dataset, sandboxes.timetable)[0]
    configure(sandboxes, [school])
    teacher = next(p for p in sandboxes.timetable.persons if p.school_guid == school.school_guid
                   and p.role == "staff" and p.guid in known_by_email(sandboxes))
    sandboxes.timetable.set_email(teacher.guid, f"  {teacher.email.upper()} ")
    state = await run()
    assert state.is_completed()
    assert stored(sandboxes, school) == expected_lessons(sandboxes, school, known_by_email(sandboxes))


async def test_personnummer_matching_reports_persons_haldor_lacks_a_number_for(
        sandboxes: systems.Sandboxes) -> None:
    school = systems.school_configs(sandboxes.dataset, sandboxes.timetable)[0].model_copy(
        update={"match": MatchKey.PERSONNUMMER})
    configure(sandboxes, [school])
    users = httpx.post(f"{sandboxes.urls['haldor']}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": systems.HALDOR_CLIENT_ID,
        "client_secret": systems.HALDOR_CLIENT_SECRET}).json()["access_token"]
    haldor_users = httpx.get(f"{sandboxes.urls['haldor']}/api/schools/{school.haldor_school}/users",
                             headers={"Authorization": f"Bearer {users}"}).json()["users"]
    with_number = {u["personnummer"] for u in haldor_users if u.get("personnummer")}
    known = {p.id for p in sandboxes.dataset.persons if p.civic_no in with_number}
    state = await run()
    assert state.is_completed()
    assert stored(sandboxes, school) == expected_lessons(sandboxes, school, known)
    persons_here = [p for p in sandboxes.timetable.persons if p.school_guid == school.school_guid]
    report = summary(os.environ["SKOLFLOW_DATABASE_URL"])[school.name]
    assert report["unmatched_persons"] == len([p for p in persons_here if p.guid not in known])


async def test_an_unpublished_schedule_is_reported_and_haldor_keeps_what_it_had(
        sandboxes: systems.Sandboxes) -> None:
    school = systems.school_configs(sandboxes.dataset, sandboxes.timetable)[0]
    configure(sandboxes, [school])
    await run()
    before = stored(sandboxes, school)
    assert before
    sandboxes.timetable.set_published(school.school_guid, False)
    state = await run()
    assert state.is_completed()
    assert NOT_PUBLISHED in state.message or "not published" in state.message
    report = summary(os.environ["SKOLFLOW_DATABASE_URL"])[school.name]
    assert report["status"] == "not published" and report["message"] == NOT_PUBLISHED
    assert stored(sandboxes, school) == before


async def test_a_removed_lesson_disappears_and_an_unchanged_rerun_sends_nothing(
        sandboxes: systems.Sandboxes) -> None:
    school = systems.school_configs(sandboxes.dataset, sandboxes.timetable)[0]
    configure(sandboxes, [school])
    await run()
    puts = held(sandboxes, school)["putsReceived"]
    await run()
    assert held(sandboxes, school)["putsReceived"] == puts  # nothing changed, nothing pushed
    assert summary(os.environ["SKOLFLOW_DATABASE_URL"])[school.name]["status"] == "unchanged"

    known = known_by_email(sandboxes)
    pattern = next(p for p in sandboxes.timetable.patterns_of(school.school_guid) if set(p.teachers) & known)
    sandboxes.timetable.remove_pattern(pattern.id)
    state = await run()
    assert state.is_completed()
    assert stored(sandboxes, school) == expected_lessons(sandboxes, school, known)
    report = summary(os.environ["SKOLFLOW_DATABASE_URL"])[school.name]
    weekdays = {d for d in range((END - START).days + 1) if (START + dt.timedelta(days=d)).weekday()
                == pattern.weekday}
    assert report["days_pushed"] == len(weekdays)  # only the days that lesson was on


async def test_a_new_school_is_added_by_configuration_alone(sandboxes: systems.Sandboxes) -> None:
    first, second, third = systems.school_configs(sandboxes.dataset, sandboxes.timetable)
    configure(sandboxes, [first, second])
    await run()
    assert stored(sandboxes, third) == set()
    configure(sandboxes, [first, second, third])
    state = await run()
    assert state.is_completed()
    assert stored(sandboxes, third) == expected_lessons(sandboxes, third, known_by_email(sandboxes))


async def test_a_school_the_key_cannot_read_fails_alone(sandboxes: systems.Sandboxes) -> None:
    first, second, _ = systems.school_configs(sandboxes.dataset, sandboxes.timetable)
    stranger = second.model_copy(update={"name": "Okänd skola", "school_guid": "00000000-0000-0000-0000-000000000000"})
    configure(sandboxes, [first, stranger])
    state = await run()
    assert state.is_failed()
    assert "Okänd skola" in state.message and "UNKNOWN_SCHOOL" in state.message
    assert stored(sandboxes, first) == expected_lessons(sandboxes, first, known_by_email(sandboxes))


async def test_haldor_holds_exactly_the_published_lessons_after_a_run_under_faults(
        sandboxes: systems.Sandboxes, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = systems.school_configs(sandboxes.dataset, sandboxes.timetable)
    configure(sandboxes, configs)
    sandboxes.timetable.set_published(configs[2].school_guid, False)
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "0.4")
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "12")
    for name in ("skola24", "haldor"):
        httpx.put(f"{sandboxes.urls[name]}/_sandbox/faults", json={
            "server_error": 0.1, "timeout": 0.1, "drop": 0.05, "timeout_hold_seconds": 0.8, "seed": 3,
        }).raise_for_status()
    state = await run()
    assert state.is_completed(), state.message
    known = known_by_email(sandboxes)
    for school in configs:
        assert stored(sandboxes, school) == expected_lessons(sandboxes, school, known)
