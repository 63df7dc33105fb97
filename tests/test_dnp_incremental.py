"""DNP provisioning reading SS 12000 by change (``meta.modified.after``, ``/deletedEntities``), run by Prefect for real.

After a first run (a full read), runs read only what changed since the watermark. These tests change the SS 12000
sandbox between runs and compare what the DNP sandbox holds with the source mapped independently of the flow, as
tests/test_flow_dnp.py does: a change reaches DNP, a removal is deleted as a full read would delete it, and the
scheduled full read (or ``full_read=True``) catches a change the incremental read could not see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skolflow.flows.dnp_provisioning import _marks, dnp_provisioning, incremental_since
from skolflow.ledger import Ledger, Outcome
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.tasks.dnp_steps import PIPELINE, STEPS
from tests.serving import dnp_expected as expected
from tests.serving import dnp_held as held
from tests.serving import ledger, serving

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    with serving(ds.generate(students=90, schools=6, seed=11), monkeypatch, tmp_path) as running:
        yield running


def family_name_in_dnp(sandboxes: systems.Sandboxes, person_id: str) -> str:
    answer = httpx.get(f"{sandboxes.urls['dnp']}/persons/{person_id}",
                       headers={"Authorization": f"Bearer {systems.DNP_TOKEN}"})
    answer.raise_for_status()
    return str(answer.json()["familyName"])



def summary() -> dict[str, Any]:
    return ledger().runs(PIPELINE, limit=1)[0].summary


async def provision(sandboxes: systems.Sandboxes, **params: Any) -> Any:
    state = await dnp_provisioning(huvudman=sandboxes.dataset.huvudman_orgnr, return_state=True, **params)
    assert state.is_completed(), state.message
    return state


def a_held_student(sandboxes: systems.Sandboxes) -> ds.Person:
    persons = held(sandboxes)["persons"]
    return next(p for p in sandboxes.dataset.students() if p.id in persons)


async def test_a_changed_person_is_read_by_change_and_reaches_dnp(sandboxes: systems.Sandboxes) -> None:
    first = await provision(sandboxes)
    assert "read whole" in first.message  # the first run has no watermark
    student = a_held_student(sandboxes)
    sandboxes.dataset.change_person(student.id, family_name="Ändradsson")

    second = await provision(sandboxes)

    assert "read by change" in second.message, second.message
    assert [summary()[k]["sent"] for k in STEPS] == [1, 0, 0, 0]
    assert family_name_in_dnp(sandboxes, student.id) == "Ändradsson"
    assert held(sandboxes) == await expected(sandboxes)
    run_id = ledger().runs(PIPELINE, limit=1)[0].id
    history = ledger().outcomes(PIPELINE, run_id=run_id, record_key=student.id)
    assert [o.outcome for o in history] == [Outcome.ACCEPTED]  # the record's history goes on


async def test_an_unchanged_run_reads_by_change_and_counts_everything_unchanged(
        sandboxes: systems.Sandboxes) -> None:
    await provision(sandboxes)
    want = await expected(sandboxes)

    again = await provision(sandboxes)

    assert "read by change" in again.message, again.message
    second = summary()
    assert all(second[k]["sent"] == 0 and second[k]["calls"] == 0 for k in STEPS)
    assert [second[k]["unchanged"] for k in STEPS] == [len(want[k]) for k in STEPS]


async def test_a_removed_person_is_deleted_as_a_full_read_deletes_it(sandboxes: systems.Sandboxes) -> None:
    await provision(sandboxes)
    student = a_held_student(sandboxes)
    sandboxes.dataset.remove_person(student.id)  # listed in /deletedEntities; their groups change too

    state = await provision(sandboxes)

    assert "removed from the source" in state.message, state.message
    after = held(sandboxes)
    assert student.id not in after["persons"]
    assert after == await expected(sandboxes)
    deleted = {o.record_key for o in ledger().outcomes(PIPELINE, limit=5000) if o.outcome == Outcome.DELETED}
    assert student.id in deleted


async def test_a_changed_enrolment_reads_the_source_whole(sandboxes: systems.Sandboxes) -> None:
    await provision(sandboxes)
    student = next(p for p in sandboxes.dataset.students() if p.id in held(sandboxes)["persons"]
                   and p.school_form == "GR" and p.school_year is not None and p.school_year < 9)
    sandboxes.dataset.change_person(student.id, school_year=student.school_year + 1)  # type: ignore[operator]

    state = await provision(sandboxes)

    assert "enrolments" in state.message, state.message  # groups and test activities may follow the student
    assert held(sandboxes) == await expected(sandboxes)
    assert summary()["persons"]["sent"] >= 1


async def test_the_scheduled_full_read_catches_a_change_the_incremental_read_missed(
        sandboxes: systems.Sandboxes) -> None:
    await provision(sandboxes)
    student = a_held_student(sandboxes)
    # A source that changed the record without moving meta.modified past the watermark (a back-dated import).
    sandboxes.dataset.change_person(student.id, dt.datetime(2024, 6, 1, tzinfo=dt.UTC), family_name="Missadsson")

    missed = await provision(sandboxes)

    assert "read by change" in missed.message
    assert [summary()[k]["sent"] for k in STEPS] == [0, 0, 0, 0]
    assert family_name_in_dnp(sandboxes, student.id) != "Missadsson"

    # A week later the full read is due.
    store = ledger()
    _, full_mark = _marks(sandboxes.dataset.huvudman_orgnr)
    run_id = store.runs(PIPELINE, limit=1)[0].id
    store.set_watermark(PIPELINE, full_mark, dt.datetime.now(dt.UTC) - dt.timedelta(days=7, minutes=1), run_id)

    caught = await provision(sandboxes)

    assert "read whole" in caught.message, caught.message
    assert [summary()[k]["sent"] for k in STEPS] == [1, 0, 0, 0]
    assert family_name_in_dnp(sandboxes, student.id) == "Missadsson"
    assert "read by change" in (await provision(sandboxes)).message  # and the next run reads by change again


async def test_full_read_parameter_reads_whole_and_a_short_period_makes_every_run_full(
        sandboxes: systems.Sandboxes) -> None:
    await provision(sandboxes)
    student = a_held_student(sandboxes)
    sandboxes.dataset.change_person(student.id, dt.datetime(2024, 6, 1, tzinfo=dt.UTC), family_name="Tvingadsson")

    forced = await provision(sandboxes, full_read=True)

    assert "read whole" in forced.message
    assert family_name_in_dnp(sandboxes, student.id) == "Tvingadsson"
    assert "read whole" in (await provision(sandboxes, full_read_days=0)).message


async def test_a_run_with_a_selection_or_a_dry_run_reads_whole_and_moves_no_watermark(
        sandboxes: systems.Sandboxes) -> None:
    orgnr = sandboxes.dataset.huvudman_orgnr
    changes_mark, full_mark = _marks(orgnr)
    unit = sandboxes.dataset.school_units[0].code

    await provision(sandboxes, school_units=[unit])
    await provision(sandboxes, dry_run=True)

    assert ledger().watermark(PIPELINE, changes_mark) is None and ledger().watermark(PIPELINE, full_mark) is None
    assert "read whole" in (await provision(sandboxes)).message


def test_incremental_since_reads_whole_on_the_first_run_and_when_the_full_read_is_due(ledger: Ledger) -> None:
    now = dt.datetime(2026, 12, 3, 3, 0, tzinfo=dt.UTC)
    changes_mark, full_mark = _marks("212000-0142")
    run_id = ledger.start_run(PIPELINE, "212000-0142", parameters={}, dry_run=False)
    assert incremental_since(ledger, "212000-0142", now, 7) is None

    ledger.set_watermark(PIPELINE, changes_mark, now - dt.timedelta(hours=24), run_id)
    ledger.set_watermark(PIPELINE, full_mark, now - dt.timedelta(days=6), run_id)
    since = incremental_since(ledger, "212000-0142", now, 7)
    assert since is not None and since.replace(tzinfo=dt.UTC) == now - dt.timedelta(hours=24)

    assert incremental_since(ledger, "212000-0142", now, 6) is None  # the full read is due
    assert incremental_since(ledger, "212000-0143", now, 7) is None  # another huvudman has its own marks
