"""The Betyg → Beda flow run by Prefect for real, against the sandboxes over real HTTP.

Every assertion about what Beda received reads the Beda sandbox's own state.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from skolflow.connectors.betyg.codec import NAMESPACE, encode
from skolflow.connectors.betyg.models import PLATFORM_TIMEZONE
from skolflow.connectors.betyg.sandbox import select_students
from skolflow.flows.betyg_to_beda import PIPELINE, betyg_to_beda, platform_now
from skolflow.identity import mask
from skolflow.ledger import Ledger, Outcome
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def data() -> ds.Dataset:
    return ds.generate(students=60, mistakes=2, seed=7)


@pytest.fixture
def sandboxes(data: ds.Dataset, monkeypatch: pytest.MonkeyPatch, ledger_url: str) -> Iterator[systems.Sandboxes]:
    running = systems.start(data, {name: FaultConfig() for name in systems.SYSTEMS})
    for key, value in running.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", ledger_url)
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "5")
    yield running
    running.stop()


def beda_state(sandboxes: systems.Sandboxes) -> dict[str, Any]:
    return httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]


def set_faults(sandboxes: systems.Sandboxes, name: str, **faults: float | str) -> None:
    httpx.put(f"{sandboxes.urls[name]}/_sandbox/faults", json=faults).raise_for_status()


def valid_students(data: ds.Dataset) -> dict[str, ds.Person]:
    """Students whose every grade is on its scale: what Beda must end up holding."""
    from skolflow.connectors.beda.grade_scales import check_grade

    result = {}
    for person in data.students():
        record = data.records[person.id]
        if not any(check_grade(g.school_form, g.code, g.value, g.assessment) for g in record.grades):
            result[person.civic_no] = person
    return result


async def run(data: ds.Dataset, **params: Any) -> Any:
    return await betyg_to_beda(anslutningspart=data.huvudman_orgnr, return_state=True, **params)


def last_summary(ledger_url: str) -> dict[str, Any]:
    return Ledger.shared(ledger_url).runs(PIPELINE, limit=1)[0].summary


async def test_first_run_reports_every_valid_student_and_rejects_with_bedas_reasons(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str) -> None:
    state = await run(data)
    assert state.is_completed(), state.message
    held = beda_state(sandboxes)
    expected = valid_students(data)
    assert set(held) == set(expected)
    for civic, person in expected.items():
        record = data.records[person.id]
        assert len(held[civic]["meriter"]["kursbetyg"]) == len(record.grades)
        assert len(held[civic]["meriter"].get("examen", [])) == len(record.diplomas)
        assert held[civic]["received"] == 1
    summary = last_summary(ledger_url)
    assert summary["accepted"] == len(expected)
    assert summary["rejected"] == 2 and summary["lost"] == 0 and summary["students"] == len(data.records)
    rejected = [o for o in Ledger.shared(ledger_url).outcomes(PIPELINE) if o.outcome == Outcome.REJECTED]
    assert {e["kod"] for o in rejected for e in o.errors} == {"BETYG_OGILTIGT"}
    assert "2 rejected" in state.message


async def test_rerun_sends_only_what_changed_and_a_removed_grade_reaches_beda(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str) -> None:
    await run(data)
    # Same window again: every student is still in it, none has changed since Beda accepted it.
    first_window = Ledger.shared(ledger_url).runs(PIPELINE, limit=1)[0].parameters
    await run(data, start=dt.datetime.fromisoformat(first_window["start"]),
              end=dt.datetime.fromisoformat(first_window["end"]))
    assert last_summary(ledger_url)["accepted"] == 0
    assert last_summary(ledger_url)["unchanged"] == len(valid_students(data))

    valid = valid_students(data)
    by_civic = {p.civic_no: p for p in data.students()}
    changed, removed = [c for c in valid if len(data.records[by_civic[c].id].grades) >= 2][:2]
    when = platform_now()
    grade = data.records[by_civic[changed].id].grades[0]
    new_value = "E" if grade.value != "E" and grade.school_form not in ("YH",) else "G"
    data.change_grade(by_civic[changed].id, 0, new_value, when=when)
    kept = len(data.records[by_civic[removed].id].grades) - 1
    data.remove_grade(by_civic[removed].id, 0, when=when)

    state = await run(data, end=when + dt.timedelta(minutes=1))
    assert state.is_completed(), state.message
    assert last_summary(ledger_url)["accepted"] == 2
    held = beda_state(sandboxes)
    assert held[changed]["meriter"]["kursbetyg"][0]["betyg"] == new_value
    assert len(held[removed]["meriter"]["kursbetyg"]) == kept
    assert {c for c, s in held.items() if s["received"] == 2} == {changed, removed}
    assert all(s["received"] == 1 for c, s in held.items() if c not in (changed, removed))


async def test_dry_run_builds_and_checks_everything_and_sends_nothing(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str) -> None:
    state = await run(data, dry_run=True)
    assert state.is_completed()
    assert beda_state(sandboxes) == {}
    summary = last_summary(ledger_url)
    assert summary["planned"] == len(valid_students(data)) and summary["rejected"] == 2
    ledger = Ledger.shared(ledger_url)
    assert ledger.watermark(PIPELINE, data.huvudman_orgnr) is None
    assert {o.outcome for o in ledger.outcomes(PIPELINE)} == {Outcome.PLANNED, Outcome.REJECTED}


@pytest.mark.parametrize("profile, confirm, url, message", [
    ("test", False, None, "Beda has no test environment"),
    ("production", False, None, "confirm_production"),
    ("sandbox", True, "https://gw.api.beda.uhr.se", "only talks to sandboxes"),
])
async def test_production_guard_stops_the_run_before_anything_is_sent(
        sandboxes: systems.Sandboxes, data: ds.Dataset, monkeypatch: pytest.MonkeyPatch,
        profile: str, confirm: bool, url: str | None, message: str) -> None:
    monkeypatch.setenv("SKOLFLOW_PROFILE", profile)
    if url:
        monkeypatch.setenv("SKOLFLOW_BEDA_URL", url)
    if profile != "sandbox":  # the sources must pass the guard too; make them look like a test service
        monkeypatch.setenv("SKOLFLOW_BETYG_URL", sandboxes.urls["platform"].replace("127.0.0.1", "localhost"))
    state = await run(data, confirm_production=confirm)
    assert state.is_failed()
    assert message in state.message
    assert beda_state(sandboxes) == {}


async def test_a_rerun_after_a_lost_answer_sends_nothing_twice(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Beda processes every batch but its answers never arrive: the run cannot know what Beda holds.
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "1")
    set_faults(sandboxes, "beda", timeout=1.0, timeout_hold_seconds=1.5, path_prefix="/api/")
    state = await run(data, batch_size=25)
    assert state.is_failed()
    assert "not delivered" in state.message or "Nothing could be sent" in state.message
    expected = valid_students(data)
    assert set(beda_state(sandboxes)) == set(expected)  # Beda got them; we never heard back
    assert Ledger.shared(ledger_url).watermark(PIPELINE, data.huvudman_orgnr) is None

    set_faults(sandboxes, "beda")
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "3")
    state = await run(data, batch_size=25)
    assert state.is_completed(), state.message
    summary = last_summary(ledger_url)
    assert summary["reconciled"] == len(expected) and summary["accepted"] == len(expected)
    assert all(s["received"] == 1 for s in beda_state(sandboxes).values())
    assert Ledger.shared(ledger_url).watermark(PIPELINE, data.huvudman_orgnr) is not None


async def test_every_student_reaches_beda_exactly_once_under_injected_faults(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "0.4")
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "12")
    for name in ("platform", "ss12000", "beda"):  # the systems this flow talks to
        set_faults(sandboxes, name, server_error=0.1, timeout=0.1, timeout_hold_seconds=0.8, seed=11)
    state = await run(data, batch_size=10)
    assert state.is_completed(), state.message
    held = beda_state(sandboxes)
    expected = valid_students(data)
    assert set(held) == set(expected)
    assert all(s["revisions"] == 1 for s in held.values())  # each student's merits written exactly once
    injected = httpx.get(f"{sandboxes.urls['beda']}/_sandbox/faults").json()["injected"]
    assert injected["server_error"] + injected["timeout"] > 0
    assert last_summary(ledger_url)["lost"] == 0


async def test_selection_by_school_unit_and_by_student(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str) -> None:
    unit = data.school_units[1]
    at_unit = {p.civic_no for p in data.students() if p.school_unit_id == unit.id} & set(valid_students(data))
    state = await run(data, school_units=[unit.code], what="kursbetyg")
    assert state.is_completed()
    held = beda_state(sandboxes)
    assert set(held) == at_unit
    assert all(s["meriter"]["examen"] == [] for s in held.values())

    other = next(p for p in data.students() if p.civic_no in valid_students(data) and p.school_unit_id != unit.id)
    await run(data, student="{" + other.id.upper() + "}", what="kursbetyg")
    assert set(beda_state(sandboxes)) == at_unit | {other.civic_no}


async def test_personal_identity_numbers_stay_out_of_prefect(
        sandboxes: systems.Sandboxes, data: ds.Dataset) -> None:
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_API_URL

    state = await run(data)
    await APILogHandler.aflush()
    run_id = str(state.state_details.flow_run_id)
    # Read what the Prefect UI reads, straight from its API.
    async with httpx.AsyncClient(base_url=PREFECT_API_URL.value()) as api:
        flow_run = (await api.get(f"/flow_runs/{run_id}")).json()
        logs = (await api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200,
                                                      "offset": 0, "sort": "TIMESTAMP_ASC"})).json()
        artifacts = (await api.post("/artifacts/filter", json={
            "artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 50, "offset": 0,
            "sort": "CREATED_DESC"})).json()
    assert logs and {a["type"] for a in artifacts} >= {"table", "markdown", "progress"}
    shown = " ".join([str(flow_run["parameters"]), flow_run["name"], state.message or ""]
                     + [log["message"] for log in logs] + [str(a["data"]) for a in artifacts])
    for person in data.students():
        assert person.civic_no not in shown
    assert any(mask(p.civic_no) in shown for p in data.students())  # rejected students are shown masked


async def test_a_grades_document_of_another_version_fails_the_run_before_beda_or_the_watermark(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str) -> None:
    assert (await run(data)).is_completed()
    ledger = Ledger.shared(ledger_url)
    watermark = ledger.watermark(PIPELINE, data.huvudman_orgnr)
    held = beda_state(sandboxes)
    assert watermark is not None and held

    # A teacher changes a grade, so a document the run could read would send that student again ...
    when = platform_now()
    changed = next(p for p in data.students() if p.civic_no in held and data.records[p.id].grades)
    grade = data.records[changed.id].grades[0]
    data.change_grade(changed.id, 0, "E" if grade.value != "E" and grade.school_form != "YH" else "G", when=when)
    end = when + dt.timedelta(minutes=1)
    # ... but the platform answers in another version's namespace.
    body = io.BytesIO()
    encode(body, select_students(data, watermark.astimezone(PLATFORM_TIMEZONE).replace(tzinfo=None), end),
           when, end)
    other = body.getvalue().replace(NAMESPACE.encode(), b"http://pingpong.se/schemas/grades/v1.0")
    assert f'id="{{{changed.id}}}"'.encode() in other
    httpx.put(f"{sandboxes.urls['platform']}/_sandbox/betyg/answer", content=other).raise_for_status()

    state = await run(data, end=end)

    assert state.is_failed()
    assert "grades/v1.0" in state.message and "expected <betyg> in namespace " + NAMESPACE in state.message
    assert beda_state(sandboxes) == held  # nothing received: no student, no request
    assert ledger.watermark(PIPELINE, data.huvudman_orgnr) == watermark
    assert ledger.runs(PIPELINE, limit=1)[0].status == "failed"


# Nobody left behind (issue 12): a student refused for a cause outside the grade waits in the ledger.

def valid_with_grades(data: ds.Dataset, count: int) -> list[ds.Person]:
    """Students Beda accepts as they are, each with at least one grade."""
    valid = valid_students(data)
    return [p for p in data.students() if p.civic_no in valid and data.records[p.id].grades][:count]


def hide_from_ss12000(data: ds.Dataset, students: list[ds.Person]) -> None:
    """The school platform has graded them; the SS 12000 source does not hold them (yet)."""
    for person in students:
        data.persons.remove(person)


def waiting_keys(ledger_url: str, data: ds.Dataset) -> set[str]:
    return {row.record_key for row in Ledger.shared(ledger_url).waiting(PIPELINE, data.huvudman_orgnr)}


async def test_students_ss12000_does_not_hold_yet_wait_and_a_later_default_run_reports_them(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str) -> None:
    late = valid_with_grades(data, 3)
    expected = valid_students(data)
    hide_from_ss12000(data, late)
    ledger = Ledger.shared(ledger_url)

    first = await run(data)

    assert first.is_completed(), first.message
    assert "3 waiting (outside the grade: identity join 3), retried every run" in first.message
    summary = last_summary(ledger_url)
    assert (summary["waiting"], summary["waiting_because"], summary["lost"]) == (3, {"identity join": 3}, 0)
    assert summary["accepted"] == len(expected) - 3
    assert ledger.watermark(PIPELINE, data.huvudman_orgnr) is not None  # the waiting never hold it back
    assert not {p.civic_no for p in late} & set(beda_state(sandboxes))
    assert waiting_keys(ledger_url, data) == {p.id for p in late}
    waiting = [o for o in ledger.outcomes(PIPELINE) if o.outcome == Outcome.WAITING]
    assert {(o.source_key.strip("{}").lower(), o.errors[0]["kod"]) for o in waiting} == {(p.id, "ELEV_OKAND")
                                                                                           for p in late}

    # Still unknown to SS 12000, one of them gets a new grade: the window's version replaces the stored one.
    changed = late[0]
    when = platform_now()
    grade = data.records[changed.id].grades[0]
    new_value = "E" if grade.value != "E" and grade.school_form != "YH" else "G"
    data.change_grade(changed.id, 0, new_value, when=when)
    second = await run(data, end=when + dt.timedelta(minutes=1))
    assert second.is_completed(), second.message
    assert last_summary(ledger_url)["waiting"] == 3 and last_summary(ledger_url)["accepted"] == 0
    assert {row.tries for row in ledger.waiting(PIPELINE, data.huvudman_orgnr)} == {2}

    # SS 12000 catches up. The next run's window holds none of them, and no --from is given.
    data.persons.extend(late)
    third = await run(data, end=when + dt.timedelta(minutes=2))

    assert third.is_completed(), third.message
    assert "waiting" not in third.message
    summary = last_summary(ledger_url)
    assert (summary["accepted"], summary["waiting"], summary["students"], summary["lost"]) == (3, 0, 3, 0)
    held = beda_state(sandboxes)
    assert {p.civic_no for p in late} <= set(held)
    assert held[changed.civic_no]["meriter"]["kursbetyg"][0]["betyg"] == new_value
    assert all(held[p.civic_no]["received"] == 1 for p in late)
    assert waiting_keys(ledger_url, data) == set()


async def test_ss12000_out_of_reach_keeps_the_batch_waiting_and_the_next_run_sends_it(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "1")
    set_faults(sandboxes, "ss12000", server_error=1.0, path_prefix="/persons/lookup")

    first = await run(data, batch_size=25)

    assert first.is_failed()  # an outage is for an administrator to see
    assert "SS 12000 could not be reached for 60 students" in first.message
    assert "0 delivered" in first.message and "60 waiting (outside the grade: SS 12000 unreachable 60)" in first.message
    assert beda_state(sandboxes) == {}
    assert Ledger.shared(ledger_url).watermark(PIPELINE, data.huvudman_orgnr) is not None
    assert len(waiting_keys(ledger_url, data)) == 60

    set_faults(sandboxes, "ss12000")
    second = await run(data, batch_size=25)

    assert second.is_completed(), second.message
    assert set(beda_state(sandboxes)) == set(valid_students(data))
    summary = last_summary(ledger_url)
    assert (summary["rejected"], summary["waiting"], summary["lost"]) == (2, 0, 0)  # the grades' own mistakes
    assert waiting_keys(ledger_url, data) == set()


async def test_a_dismissed_student_is_not_retried_until_the_platform_sends_them_again(
        sandboxes: systems.Sandboxes, data: ds.Dataset, ledger_url: str) -> None:
    from typer.testing import CliRunner

    from skolflow.flows.cli import app

    kept, dismissed = valid_with_grades(data, 2)
    hide_from_ss12000(data, [kept, dismissed])
    await run(data)
    data.persons.extend([kept, dismissed])
    ledger = Ledger.shared(ledger_url)

    # A run narrowed to one kind of merit leaves the waiting students alone: each holds both kinds.
    await run(data, what="kursbetyg")
    assert waiting_keys(ledger_url, data) == {kept.id, dismissed.id}

    result = CliRunner().invoke(app, ["pending", "dismiss", "beda", "{" + dismissed.id.upper() + "}",
                                      "--reason", "flyttat utomlands", "--by", "admin"])
    assert result.exit_code == 0, result.output
    when = platform_now()
    second = await run(data, end=when + dt.timedelta(minutes=1))

    assert second.is_completed(), second.message
    held = beda_state(sandboxes)
    assert kept.civic_no in held and dismissed.civic_no not in held
    assert waiting_keys(ledger_url, data) == set()
    [row] = ledger.waiting(PIPELINE, data.huvudman_orgnr, dismissed=True)
    assert (row.record_key, row.dismissed_by, row.dismissed_reason) == (dismissed.id, "admin", "flyttat utomlands")

    # A teacher changes the dismissed student's grade: the platform sends them again, and they go.
    grade = data.records[dismissed.id].grades[0]
    data.change_grade(dismissed.id, 0, "E" if grade.value != "E" and grade.school_form != "YH" else "G",
                      when=when + dt.timedelta(minutes=1))
    third = await run(data, end=when + dt.timedelta(minutes=2))

    assert third.is_completed(), third.message
    assert dismissed.civic_no in beda_state(sandboxes)
    assert ledger.waiting(PIPELINE, data.huvudman_orgnr, dismissed=True) == []


def test_only_causes_outside_the_grade_make_a_student_wait() -> None:
    from skolflow.connectors.beda.models import Fel
    from skolflow.tasks.beda_report import Rejection

    def waits(*errors: tuple[str, str], source: str = "skolflow") -> str | None:
        fel = tuple(Fel(kod=kod, falt=falt, meddelande="m") for kod, falt in errors)
        return Rejection("{d7b3374b-985a-4d43-9558-189e6643755a}", None, source, fel).waits_for

    assert waits(("ELEV_OKAND", "elev")) == "identity join"
    assert waits(("PERSONNUMMER_SAKNAS", "personnummer")) == "identity join"
    assert waits(("PERSONNUMMER_OGILTIGT", "personnummer")) == "identity join"  # SS 12000's number
    assert waits(("SKOLENHET_OKAND", "kursbetyg[1].skola"), ("ELEV_OKAND", "elev")) == "identity join"
    assert waits(("SKOLENHET_OKAND", "kursbetyg[0].skola")) == "school unit"
    assert waits(("SKOLENHETSKOD_OGILTIG", "kursbetyg[0].skolenhetskod")) == "school unit"  # SS 12000's code
    assert waits(("SKOLENHET_EJ_BEHORIG", "examen[0].skolenhetskod"), source="Beda") == "school unit"
    assert waits(("ELEV_OKAND", "elev"), ("SS12000", "elev")) == "SS 12000 unreachable"
    # Anything the grade itself gets wrong rejects the student: the fix at the platform brings them back.
    assert waits(("XSD", ""), ("ELEV_OKAND", "elev")) is None
    assert waits(("SKOLENHETSKOD_OGILTIG", "examen[0].skolenhetskod")) is None  # the document's own text
    assert waits(("BETYG_OGILTIGT", "kursbetyg[0].betyg"), ("PERSONNUMMER_OGILTIGT", "personnummer")) is None


def test_a_waiting_students_input_is_kept_in_the_platforms_formats_and_the_newer_version_wins(
        data: ds.Dataset) -> None:
    from skolflow.connectors.betygsdokument.sandbox import select_documents
    from skolflow.tasks.beda_report import StudentInput, from_payload, merged, to_payload

    end = platform_now() + dt.timedelta(minutes=1)
    start = end - dt.timedelta(days=14)
    documents = {d.elev: d for d in select_documents(data, start, end)}
    student = next(s for s in select_students(data, start, end) if s.student_id in documents)
    stored = StudentInput(student.student_id, student, [documents[student.student_id]])

    payload = to_payload(stored, start, end)

    assert payload["betyg"].startswith("<?xml") and NAMESPACE in payload["betyg"]
    queued = from_payload(payload)
    assert (queued.grades, queued.documents, queued.waiting, queued.in_window) == (student, stored.documents, True,
                                                                                  False)
    only_new_grades = StudentInput(student.student_id, replace(student, grades=student.grades[:1]))
    newest = merged(queued, only_new_grades)
    assert newest.grades == only_new_grades.grades and newest.documents == stored.documents  # diplomas kept
    assert (newest.waiting, newest.in_window) == (True, True)
    only_documents = merged(queued, StudentInput(student.student_id, documents=stored.documents))
    assert only_documents.grades == student


async def test_progress_is_sent_at_most_every_so_often_and_the_end_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from uuid import uuid4

    from skolflow.tasks import artifacts

    sent: list[float] = []

    async def update(artifact_id: Any, progress: float) -> None:
        sent.append(progress)

    monkeypatch.setattr(artifacts, "aupdate_progress_artifact", update)
    now = [0.0]
    progress = artifacts.Progress(uuid4(), every=5.0, clock=lambda: now[0])
    for done, at in ((1, 1.0), (2, 4.9), (3, 5.0), (4, 6.0), (5, 10.5)):
        now[0] = at
        await progress.update(done, 10)
    now[0] = 10.6
    await progress.update(10, 10)  # the end is always shown, however soon after the last
    await progress.update(10, 10)  # and once: batches that finish after the reading ended show nothing new
    await progress.update(1, 1)
    assert sent == [30.0, 50.0, 100.0]
    unthrottled = artifacts.Progress(uuid4())
    await unthrottled.update(1, 2)
    assert sent[-1] == 50.0
