"""Both SS 12000 pipelines, run by Prefect for real, against an SS 12000 source as imperfect as real ones.

The sandboxes serve ``generate(imperfect=True)``: every :class:`~skolflow.sandbox.dataset.Defect` on a few records,
and an SS 12000 server with the manners of real ones (times without an offset, ``{"detail"}`` errors, no
``/persons/lookup``, a pageToken that forgets the filters, small pages). Each run must reach its end, deliver every
record the defects leave usable, and leave a rejection naming the SS 12000 record, the field and the rule for
each record they do not — and nothing of anyone's name or address in what Prefect shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL

from skolflow.connectors.beda.grade_scales import check_grade
from skolflow.connectors.dnp.opendata import DEFAULT_TEST_ACTIVITIES, activity_id
from skolflow.flows.betyg_to_beda import PIPELINE as BEDA
from skolflow.flows.betyg_to_beda import betyg_to_beda
from skolflow.flows.dnp_provisioning import dnp_provisioning
from skolflow.ledger import Outcome, RecordOutcome
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.dataset import Defect
from skolflow.tasks.dnp_mapping import SOURCE_REFUSED, activity_record_id
from skolflow.tasks.dnp_steps import PIPELINE as DNP
from tests.serving import ledger, serving

pytestmark = pytest.mark.usefixtures("prefect_harness")

DNP_FORMS = ("GR", "GY")


@pytest.fixture
def data() -> ds.Dataset:
    return ds.generate(students=60, schools=6, seed=7, imperfect=True)


@pytest.fixture
def sandboxes(data: ds.Dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    with serving(data, monkeypatch, tmp_path) as running:
        yield running


def outcomes(pipeline: str) -> list[RecordOutcome]:
    return ledger().outcomes(pipeline, run_id=ledger().runs(pipeline, limit=1)[0].id, limit=10_000)


def refused_persons(data: ds.Dataset) -> dict[str, str]:
    """The persons whose SS 12000 record breaks what the identity join reads, and the field it breaks."""
    return {person_id: field for defect, field in ((Defect.SECURITY_MARKING_OUTSIDE_ENUM, "securityMarking"),
                                                   (Defect.CIVIC_NO_UNREADABLE, "civicNo.value"))
            for person_id in data.defects[defect]}


async def shown_by_prefect(state: Any) -> str:
    """Everything of the run Prefect's UI shows: its name, parameters, state message, logs and artifacts."""
    await APILogHandler.aflush()
    run_id = str(state.state_details.flow_run_id)
    async with httpx.AsyncClient(base_url=PREFECT_API_URL.value()) as api:
        flow_run = (await api.get(f"/flow_runs/{run_id}")).json()
        runs = [run_id] + [r["id"] for r in (await api.post("/flow_runs/filter", json={
            "flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}})).json()]
        logs = (await api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": runs}}, "limit": 200})).json()
        artifacts = (await api.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": runs}},
                                                               "limit": 100})).json()
    assert logs and artifacts
    return " ".join([flow_run["name"], str(flow_run["parameters"]), state.message or ""]
                    + [log["message"] for log in logs] + [readable(a["data"]) for a in artifacts])


def readable(data: Any) -> str:
    """An artifact's data as the UI shows it: a table is stored as JSON with its non-ASCII letters escaped."""
    try:
        return json.dumps(json.loads(data), ensure_ascii=False) if isinstance(data, str) else str(data)
    except ValueError:
        return data


def nothing_personal(data: ds.Dataset, shown: str) -> None:
    """No address, name or full civic number of anyone (names as words of their own)."""
    streets = {p.address.street for p in data.persons if p.address}
    names = {p.given_name for p in data.persons} | {p.family_name for p in data.persons}
    assert not [street for street in streets if street in shown]
    assert not [name for name in names if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", shown)]
    assert not [p.civic_no for p in data.persons if p.civic_no in shown or p.civic_no[2:] in shown]


async def test_betyg_to_beda_delivers_every_usable_student_and_names_each_refused_record(
        sandboxes: systems.Sandboxes, data: ds.Dataset) -> None:
    state = await betyg_to_beda(anslutningspart=data.huvudman_orgnr, return_state=True)

    refused = refused_persons(data)
    valid = {p.id: p for p in data.students()
             if not any(check_grade(g.school_form, g.code, g.value, g.assessment) for g in data.records[p.id].grades)}
    held = httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
    # Tolerated: the dashed civic numbers (held under their 12 digits), no country, no given name (Beda needs none).
    assert set(held) == {p.civic_no for person_id, p in valid.items() if person_id not in refused}
    for defect in (Defect.CIVIC_NO_WITH_DASH, Defect.ADDRESS_WITHOUT_COUNTRY, Defect.NO_GIVEN_NAME):
        assert all(data.person(p).civic_no in held for p in data.defects[defect] if p in valid)
    summary = ledger().runs(BEDA, limit=1)[0].summary
    assert summary["lost"] == 0 and summary["students"] == len(data.records)
    # Every refused person's student has an outcome naming the SS 12000 record, the field and the rule.
    by_student = {o.source_key.strip("{}").lower(): o for o in outcomes(BEDA) if o.errors}
    for person_id, field in refused.items():
        outcome = by_student[person_id]
        assert outcome.outcome in (Outcome.REJECTED, Outcome.WAITING)
        [error] = outcome.errors
        assert error["kod"] == "ELEV_POST_AVVISAD" and error["falt"] == field
        assert person_id in error["meddelande"] and f"{field}: " in error["meddelande"]
    assert state.is_completed(), state.message
    shown = await shown_by_prefect(state)
    assert "ELEV_POST_AVVISAD" in shown  # the table of rejected students shows them
    nothing_personal(data, shown)


async def test_dnp_provisioning_sends_every_usable_record_and_rejects_each_refused_one_by_id_field_and_rule(
        sandboxes: systems.Sandboxes, data: ds.Dataset) -> None:
    state = await dnp_provisioning(huvudman=data.huvudman_orgnr, return_state=True)

    assert state.is_completed(), state.message
    records = httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()["records"]
    held = {kind: set(records.get(kind, [])) for kind in ("persons", "duties", "activities")}
    refused = {**refused_persons(data), **{p: "givenName" for p in data.defects[Defect.NO_GIVEN_NAME]}}
    [refused_duty] = data.defects[Defect.DUTY_ROLE_OUTSIDE_ENUM]
    dnp_units = {u.id for u in data.school_units if set(u.school_forms) & set(DNP_FORMS)}
    students = {p.id for p in data.students() if p.school_form in DNP_FORMS}
    staff = {d.person_id for d in data.duties if d.school_unit_id in dnp_units and d.id != refused_duty}
    assert held["persons"] == (students | staff) - set(refused)
    assert held["duties"] == {d.id for d in data.duties if d.school_unit_id in dnp_units} - {refused_duty}
    rejected = {(o.unit, o.record_key): o.errors for o in outcomes(DNP) if o.outcome == Outcome.REJECTED}
    for person_id, field in refused.items():
        assert [(e["kod"], e["falt"]) for e in rejected[("persons", person_id)]] == [(SOURCE_REFUSED, field)]
        assert person_id in rejected[("persons", person_id)][0]["meddelande"]
    assert [(e["kod"], e["falt"]) for e in rejected[("duties", refused_duty)]] == [(SOURCE_REFUSED, "dutyRole")]
    # Teachers given as persons are their duties; one with no duty at the unit is refused alone.
    [as_person] = data.defects[Defect.TEACHER_AS_PERSON]
    [without_duty] = data.defects[Defect.TEACHER_WITHOUT_DUTY]
    [link] = rejected[("activities", without_duty)]
    assert link["kod"] == SOURCE_REFUSED and re.fullmatch(r"teachers\[\d+\]\.person\.id", link["falt"])
    sent = await activities_held(sandboxes, [as_person, without_duty,
                                                   *data.defects[Defect.NO_CALENDAR_EVENTS_REQUIRED]])
    activity = {a.id: a for a in data.activities}
    for source_id, teachers in sent.items():
        assert teachers == set(activity[source_id].teacher_duty_ids) - {refused_duty}, source_id
    assert set(sent) == {as_person, without_duty, *data.defects[Defect.NO_CALENDAR_EVENTS_REQUIRED]}
    shown = await shown_by_prefect(state)
    assert SOURCE_REFUSED in shown  # in the steps' tables
    nothing_personal(data, shown)


async def activities_held(sandboxes: systems.Sandboxes, source_ids: list[str]) -> dict[str, set[str]]:
    """Source activity id → the duties DNP holds as its teachers (over every national test it was sent for)."""
    records = set(httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()["records"]["activities"])
    wanted = {activity_record_id(source, activity_id(name)): source for source in source_ids
              for name, _, _ in DEFAULT_TEST_ACTIVITIES}
    found: dict[str, set[str]] = {}
    async with httpx.AsyncClient(base_url=sandboxes.urls["dnp"],
                                 headers={"Authorization": f"Bearer {systems.DNP_TOKEN}"}) as raw:
        held = [record_id for record_id in wanted if record_id in records]
        for body in (await raw.post("/activities/lookup", json={"ids": held})).json():
            found.setdefault(wanted[body["id"]], set()).update(t["duty"]["id"] for t in body.get("teachers") or [])
    return found


async def test_what_dnp_holds_is_never_deleted_because_the_source_record_became_unreadable(
        sandboxes: systems.Sandboxes, data: ds.Dataset) -> None:
    gone_bad = set(refused_persons(data))
    defects, data.defects = data.defects, {}  # the same server, before those records went bad
    first = await dnp_provisioning(huvudman=data.huvudman_orgnr, return_state=True)
    assert first.is_completed(), first.message
    assert gone_bad <= set(httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()["records"]["persons"])

    data.defects = defects
    second = await dnp_provisioning(huvudman=data.huvudman_orgnr, return_state=True)

    assert second.is_completed(), second.message
    assert gone_bad <= set(httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()["records"]["persons"])
    assert not [o for o in outcomes(DNP) if o.outcome == Outcome.DELETED and o.record_key in gone_bad]
