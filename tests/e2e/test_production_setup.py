"""The production set-up the README describes: a Prefect server and the ledger both on PostgreSQL, runs by CLI."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from skolflow.ledger import Ledger

from .conftest import RunsOnServer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


def flow_runs(api_url: str) -> list[dict[str, Any]]:
    answer = httpx.post(f"{api_url}/flow_runs/filter", json={"sort": "START_TIME_ASC", "limit": 200}, timeout=30)
    answer.raise_for_status()
    return answer.json()


def flow_names(api_url: str) -> dict[str, str]:
    answer = httpx.post(f"{api_url}/flows/filter", json={"limit": 200}, timeout=30)
    answer.raise_for_status()
    return {flow["id"]: flow["name"] for flow in answer.json()}


def test_every_run_reached_the_server_and_completed_under_a_name_an_admin_can_tell_apart(
        runs_on_server: RunsOnServer) -> None:
    api = runs_on_server.server.api_url
    names = flow_names(api)
    runs = flow_runs(api)
    assert {names[run["flow_id"]] for run in runs} >= {"betyg-to-beda", "skola24-to-haldor"}
    # Every run ended (none left running, none crashed); the two pipelines run here all completed.
    assert [(run["name"], run["state_type"]) for run in runs if run["state_type"] not in ("COMPLETED", "FAILED")] == []
    assert {run["state_type"] for run in runs
            if names[run["flow_id"]] in ("betyg-to-beda", "skola24-to-haldor")} == {"COMPLETED"}
    per_flow = Counter(names[run["flow_id"]] for run in runs)
    assert per_flow["betyg-to-beda"] == 4  # the demo's two, the nightly-style run and the one-student dry run
    assert per_flow["skola24-to-haldor"] == 2
    betyg = [run["name"] for run in runs if names[run["flow_id"]] == "betyg-to-beda"]
    assert all(name.startswith(f"betyg-to-beda · {runs_on_server.orgnr} · ") for name in betyg)
    assert len(set(betyg)) > 1  # one student's run is named apart from a full run


def test_the_ledger_on_postgresql_recorded_the_runs(runs_on_server: RunsOnServer) -> None:
    ledger = Ledger(runs_on_server.ledger_url)
    try:
        runs = ledger.runs("betyg_to_beda")
        outcomes = ledger.outcomes("betyg_to_beda", limit=500)
    finally:
        ledger.engine.dispose()
    assert len(runs) == 2
    assert {run.flow_run_id for run in runs} <= {run["id"] for run in flow_runs(runs_on_server.server.api_url)}
    full = next(run for run in runs if not run.dry_run)
    assert full.summary["accepted"] + full.summary["rejected"] == full.summary["students"] > 0
    assert Counter(o.outcome for o in outcomes if o.run_id == full.id)["accepted"] == full.summary["accepted"]


def test_a_one_student_run_carries_the_platform_id_not_the_personnummer(runs_on_server: RunsOnServer) -> None:
    api = runs_on_server.server.api_url
    one = [run for run in flow_runs(api) if run["parameters"].get("student")]
    assert len(one) == 1
    assert one[0]["parameters"]["student"] == runs_on_server.student_id
    assert one[0]["parameters"]["dry_run"] is True
