"""DNP provisioning run by Prefect for real against the SS 12000, DNP and open-data sandboxes over HTTP.

What DNP holds is read from the DNP sandbox itself and compared with the source mapped independently
of the flow (the SS 12000 sandbox read through the client, mapped with the same rules).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import prefect.futures
import pytest

from skolflow.connectors.dnp.opendata import DEFAULT_TEST_ACTIVITIES, activity_id
from skolflow.flows.dnp_provisioning import dnp_provisioning
from skolflow.ledger import Outcome
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.tasks.dnp_mapping import activity_record_id
from skolflow.tasks.dnp_steps import PIPELINE, STEPS, StepReport
from tests.serving import dnp_expected as expected
from tests.serving import dnp_held as held
from tests.serving import ledger, serving

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    with serving(ds.generate(students=90, schools=6, seed=11), monkeypatch, tmp_path) as running:
        yield running



def summary() -> dict[str, Any]:
    return ledger().runs(PIPELINE, limit=1)[0].summary


async def provision(sandboxes: systems.Sandboxes, **params: Any) -> Any:
    return await dnp_provisioning(huvudman=sandboxes.dataset.huvudman_orgnr, return_state=True, **params)


async def test_a_run_provisions_every_step_and_the_next_sends_nothing(sandboxes: systems.Sandboxes) -> None:
    state = await provision(sandboxes)

    assert state.is_completed(), state.message
    want = await expected(sandboxes)
    assert all(want.values())
    assert held(sandboxes) == want
    first = summary()
    assert [first[k]["accepted"] for k in STEPS] == [len(want[k]) for k in STEPS]

    again = await provision(sandboxes)

    assert again.is_completed()
    second = summary()
    assert all(second[k]["sent"] == 0 and second[k]["calls"] == 0 for k in STEPS)
    assert [second[k]["unchanged"] for k in STEPS] == [len(want[k]) for k in STEPS]


async def test_prefect_does_not_walk_a_step_s_report(sandboxes: systems.Sandboxes,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect looks for futures in whatever a task or flow returns, every row of it: a step's report (up to 5,000
    table rows) leaves its task and its subflow quoted, so that walk never reaches it."""
    walked: list[Any] = []
    reports: list[str] = []
    collect = prefect.futures._collect_futures

    def counted(futures: set[Any], expr: Any, context: Any) -> Any:
        if isinstance(expr, StepReport):
            reports.append(expr.kind)
        if isinstance(expr, dict) and "meddelande" in expr:  # a row of a report's table
            walked.append(expr)
        return collect(futures, expr, context)

    monkeypatch.setattr(prefect.futures, "_collect_futures", counted)
    state = await provision(sandboxes)

    assert state.is_completed(), state.message
    assert all(summary()[kind]["accepted"] for kind in STEPS)  # the reports reached the run unquoted
    assert set(reports) == set(STEPS)  # Prefect met each report, at the door
    assert walked == []


async def test_a_changed_person_is_the_only_record_sent_again(sandboxes: systems.Sandboxes) -> None:
    await provision(sandboxes)
    student = next(p for p in sandboxes.dataset.students() if p.id in held(sandboxes)["persons"])
    sandboxes.dataset.change_person(student.id, family_name="Ändradsson")

    await provision(sandboxes)

    assert [summary()[k]["sent"] for k in STEPS] == [1, 0, 0, 0]


async def test_dry_run_plans_every_record_and_sends_nothing(sandboxes: systems.Sandboxes) -> None:
    state = await provision(sandboxes, dry_run=True)

    assert state.is_completed()
    assert held(sandboxes) == {kind: set() for kind in STEPS}
    want = await expected(sandboxes)
    assert [summary()[k]["sent"] for k in STEPS] == [len(want[k]) for k in STEPS]
    planned = [o for o in ledger().outcomes(PIPELINE, limit=5000) if o.outcome == Outcome.PLANNED]
    assert len(planned) == sum(len(v) for v in want.values())


async def test_a_failed_groups_step_is_resumed_there_without_resending_what_dnp_took(
        sandboxes: systems.Sandboxes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "2")
    dnp = sandboxes.urls["dnp"]
    httpx.put(f"{dnp}/_sandbox/faults", json={"server_error": 1.0, "path_prefix": "/groups"})

    failed = await provision(sandboxes)

    assert failed.is_failed() and "Grupper" in failed.message
    first = summary()
    assert [first[k]["status"] for k in STEPS] == ["completed", "completed", "failed", "skipped"]
    want = await expected(sandboxes)
    assert held(sandboxes) == {"persons": want["persons"], "duties": want["duties"], "groups": set(),
                               "activities": set()}

    httpx.put(f"{dnp}/_sandbox/faults", json={})
    resumed = await provision(sandboxes)

    assert resumed.is_completed(), resumed.message
    second = summary()
    assert second["persons"]["calls"] == second["duties"]["calls"] == 0  # nothing DNP took is sent again
    assert second["groups"]["accepted"] == len(want["groups"])
    assert second["activities"]["accepted"] == len(want["activities"])
    assert held(sandboxes) == want


async def test_what_left_the_source_is_deleted_and_nothing_else(sandboxes: systems.Sandboxes) -> None:
    await provision(sandboxes)
    data = sandboxes.dataset
    before = held(sandboxes)
    student = next(p for p in data.students() if p.id in before["persons"])
    activity = next(a for a in data.activities
                    if any(activity_record_id(a.id, activity_id(name)) in before["activities"]
                           for name, _, _ in DEFAULT_TEST_ACTIVITIES))
    # Someone else's record in DNP (another supplier's, or made by hand): skolflow never touches it.
    async with httpx.AsyncClient(base_url=sandboxes.urls["dnp"],
                                 headers={"Authorization": f"Bearer {systems.DNP_TOKEN}"}) as raw:
        foreign = next(iter(before["groups"]))
        body = (await raw.post("/groups/lookup", json={"ids": [foreign]})).json()[0]
        other = {**body, "id": "00000000-0000-4000-8000-0000000000aa", "displayName": "Annan leverantör"}
        other.pop("provisioningStatus", None)
        other.pop("meta", None)
        job = (await raw.post("/groups/bulk", json={"data": [other]})).json()["jobId"]
        while not (await raw.get(f"/groups/bulk/jobs/{job}/isCompleted")).json():
            await asyncio.sleep(0.1)
    data.remove_person(student.id)
    data.remove_activity(activity.id)

    state = await provision(sandboxes)

    assert state.is_completed(), state.message
    after = held(sandboxes)
    assert student.id not in after["persons"]
    assert other["id"] in after["groups"]
    want = await expected(sandboxes)
    assert after["persons"] == want["persons"] and after["activities"] == want["activities"]
    deleted = {(o.unit, o.record_key) for o in ledger().outcomes(PIPELINE, limit=5000) if o.outcome == Outcome.DELETED}
    assert ("persons", student.id) in deleted
    assert {k for k, _ in deleted} <= {"persons", "duties", "groups", "activities"}
    assert all(record_id not in after[kind] for kind, record_id in deleted)


async def test_warning_is_accepted_with_its_message_and_temporary_error_is_sent_again(
        sandboxes: systems.Sandboxes) -> None:
    want = await expected(sandboxes)
    warned, retried = sorted(want["persons"])[:2]
    httpx.put(f"{sandboxes.urls['dnp']}/_sandbox/outcomes", json={warned: "Warning", retried: "TemporaryError"})

    state = await provision(sandboxes)

    assert state.is_completed(), state.message
    assert held(sandboxes) == want
    persons = summary()["persons"]
    assert persons["warnings"] == 1 and persons["failed"] == 0
    outcomes = {o.record_key: o for o in ledger().outcomes(PIPELINE, limit=5000) if o.unit == "persons"}
    assert outcomes[warned].outcome == Outcome.ACCEPTED and outcomes[warned].errors[0]["allvarlighet"] == "Warning"
    assert outcomes[retried].outcome == Outcome.ACCEPTED
    calls = ledger().calls(ledger().runs(PIPELINE, limit=1)[0].id, "persons")
    assert sum(1 for c in calls if c.method == "POST") == 2  # the TemporaryError record went once more


async def test_under_injected_5xx_and_timeouts_dnp_ends_up_holding_exactly_the_source(
        sandboxes: systems.Sandboxes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "8")
    # A job costs a POST and (usually) one status read now, so DNP sees few calls: faults are drawn often enough
    # that both kinds still happen.
    faults = {"server_error": 0.15, "timeout": 0.15, "timeout_hold_seconds": 1.5, "seed": 3}
    for name in ("dnp", "ss12000"):
        httpx.put(f"{sandboxes.urls[name]}/_sandbox/faults", json=faults)
    data = sandboxes.dataset
    first = await provision(sandboxes)
    data.remove_person(next(p for p in data.students() if p.school_form == "GR").id)
    second = await provision(sandboxes)

    injected = httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/faults").json()["injected"]
    for name in ("dnp", "ss12000"):
        httpx.put(f"{sandboxes.urls[name]}/_sandbox/faults", json={})
    assert injected["server_error"] > 0 and injected["timeout"] > 0
    assert first.is_completed() and second.is_completed(), (first.message, second.message)
    assert held(sandboxes) == await expected(sandboxes)


async def test_a_second_run_for_the_same_huvudman_waits_for_the_first(sandboxes: systems.Sandboxes) -> None:
    await asyncio.gather(provision(sandboxes), provision(sandboxes))

    first, second = sorted(ledger().runs(PIPELINE, limit=2), key=lambda r: r.started_at)
    assert first.finished_at is not None and second.started_at >= first.finished_at


def test_cli_runs_and_history_shows_steps_records_and_masked_bodies(sandboxes: systems.Sandboxes) -> None:
    from typer.testing import CliRunner

    from skolflow.flows.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["run", "dnp-provisioning", "--huvudman", sandboxes.dataset.huvudman_orgnr])
    assert result.exit_code == 0, result.output
    run_id = ledger().runs(PIPELINE, limit=1)[0].id
    wide = {"COLUMNS": "400"}

    runs = runner.invoke(app, ["history", "dnp"], env=wide).stdout
    assert run_id in runs and "completed" in runs
    records = runner.invoke(app, ["history", "dnp", "--run", run_id, "--step", "persons"], env=wide).stdout
    assert "accepted" in records and "-****" in records
    calls = runner.invoke(app, ["history", "dnp", "--run", run_id, "--calls", "--width", "0"], env=wide).stdout
    assert "POST /persons/bulk" in calls and "GET /persons/bulk/jobs/" in calls  # a job's status, read once it is due
    civic_numbers = {p.civic_no for p in sandboxes.dataset.persons}
    assert not any(number in records + calls for number in civic_numbers)
    assert '"civicNo"' in calls  # the bodies are there, with the numbers masked


async def test_a_record_too_large_for_any_call_is_refused_alone(sandboxes: systems.Sandboxes,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import skolflow.tasks.dnp_steps as steps

    monkeypatch.setattr(steps, "MAX_PAYLOAD_BYTES", 600)  # classes no longer fit in one call; persons do
    state = await provision(sandboxes)

    assert state.is_completed(), state.message
    groups = {o.record_key: o for o in ledger().outcomes(PIPELINE, limit=5000) if o.unit == "groups"}
    too_large = {key for key, o in groups.items() if o.errors and o.errors[0]["kod"] == "SF-STORLEK"}
    assert too_large and all(groups[key].outcome == Outcome.REJECTED for key in too_large)
    dnp = held(sandboxes)
    want = await expected(sandboxes)
    assert dnp["persons"] == want["persons"] and dnp["groups"] == want["groups"] - too_large
    assert summary()["groups"]["rejected_before_sending"] >= len(too_large)


async def lookup(sandboxes: systems.Sandboxes, kind: str, record_id: str) -> dict[str, Any]:
    """What DNP holds of one record, read from the DNP sandbox as a supplier would."""
    async with httpx.AsyncClient(base_url=sandboxes.urls["dnp"],
                                 headers={"Authorization": f"Bearer {systems.DNP_TOKEN}"}) as raw:
        [body] = (await raw.post(f"/{kind}/lookup", json={"ids": [record_id]})).json()
    return body


async def test_a_record_refused_for_a_missing_reference_waits_and_goes_once_the_reference_exists(
        sandboxes: systems.Sandboxes) -> None:
    from typer.testing import CliRunner

    from skolflow.flows.cli import app

    data = sandboxes.dataset
    want = await expected(sandboxes)
    activity, record_id = next((a, rid) for a in data.activities if a.teacher_duty_ids for name, _, _ in
                               DEFAULT_TEST_ACTIVITIES if (rid := activity_record_id(a.id, activity_id(name)))
                               in want["activities"])
    duty = next(d for d in data.duties if d.id == activity.teacher_duty_ids[0])
    group = next(g for g in data.groups if g.id == activity.group_ids[0])
    member = data.person(next(m.person_id for m in group.members if m.person_id in want["persons"]))
    teacher = data.person(duty.person_id)
    # Both lose their EPPN in SS 12000: DNP refuses them, and with them what references them.
    for person in (teacher, member):
        data.change_person(person.id, eppn=None)

    first = await provision(sandboxes)

    assert first.is_completed(), first.message
    steps = summary()
    assert steps["persons"]["rejected_before_sending"] == 2 and steps["persons"]["waiting"] == 0
    assert steps["duties"]["waiting"] == 1 and steps["duties"]["rejected_before_sending"] == 0  # the duty waits
    assert "1 waiting (missing reference: Tjänstgöringar 1)" in first.message
    assert duty.id not in held(sandboxes)["duties"]
    assert member.id not in {m["person"]["id"] for m in (await lookup(sandboxes, "groups", group.id))
                             ["groupMemberships"]}
    assert duty.id not in {t["duty"]["id"] for t in (await lookup(sandboxes, "activities", record_id))
                           .get("teachers") or []}
    run_id = ledger().runs(PIPELINE, limit=1)[0].id
    runner, wide = CliRunner(), {"COLUMNS": "400"}
    runs = runner.invoke(app, ["history", "dnp"], env=wide).stdout
    assert "⏳1" in runs
    records = runner.invoke(app, ["history", "dnp", "--run", run_id, "--step", "duties"], env=wide).stdout
    assert "waiting (missing reference)" in records and "SF1013" in records

    # SS 12000 is put right: the next ordinary run sends the person, then the duty, the membership and the teacher.
    data.change_person(teacher.id, eppn=teacher.eppn)
    data.change_person(member.id, eppn=member.eppn)
    second = await provision(sandboxes)

    assert second.is_completed(), second.message
    assert all(step["waiting"] == 0 for step in summary().values())
    assert held(sandboxes) == want
    assert member.id in {m["person"]["id"] for m in (await lookup(sandboxes, "groups", group.id))["groupMemberships"]}
    assert duty.id in {t["duty"]["id"] for t in (await lookup(sandboxes, "activities", record_id))["teachers"]}


async def test_a_whole_read_that_fails_after_the_persons_began_keeps_what_was_sent_and_sends_nothing_else(
        sandboxes: systems.Sandboxes, monkeypatch: pytest.MonkeyPatch) -> None:
    # Persons are sent as they are read; the activities are read meanwhile, and here SS 12000 fails on them.
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "2")
    httpx.put(f"{sandboxes.urls['ss12000']}/_sandbox/faults", json={"server_error": 1.0, "path_prefix": "/activities"})
    failed = await provision(sandboxes)
    httpx.put(f"{sandboxes.urls['ss12000']}/_sandbox/faults", json={})

    assert failed.is_failed() and "could not be read whole" in failed.message and "no later step" in failed.message
    dnp = held(sandboxes)
    assert dnp["duties"] == dnp["groups"] == dnp["activities"] == set()
    # Every person DNP took is in the ledger as held, and nothing DNP lacks: the next run builds on it.
    assert ledger().held_keys(PIPELINE, f"{sandboxes.dataset.huvudman_orgnr}/persons") == dnp["persons"]

    again = await provision(sandboxes)

    assert again.is_completed(), again.message
    assert held(sandboxes) == await expected(sandboxes)
    assert summary()["persons"]["sent"] == len((await expected(sandboxes))["persons"] - dnp["persons"])


async def test_a_school_unit_the_huvudman_lacks_stops_the_run_before_anything_is_sent(
        sandboxes: systems.Sandboxes) -> None:
    state = await provision(sandboxes, school_units=["99999999"])

    assert state.is_failed() and "not school units of the huvudman: 99999999" in state.message
    assert held(sandboxes) == {kind: set() for kind in STEPS}
