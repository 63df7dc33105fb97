"""The README's production path: `skolflow deploy` to a server on PostgreSQL, a process worker runs a deployment.

A newcomer deploys, sees the scheduled runs the server plans in Swedish time, and watches a run of the
nightly deployment picked up by a worker on the process pool and completed.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems

from .conftest import PrefectServer, clean_environment, run_skolflow

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

POOL = "skolflow-e2e"
RUN_TIMEOUT = 240.0


def api(server: PrefectServer, method: str, path: str, **body: object) -> object:
    answer = httpx.request(method, f"{server.api_url}{path}", json=body or None, timeout=30)
    answer.raise_for_status()
    return answer.json()


def test_deploy_then_a_process_worker_runs_the_nightly_deployment(prefect_server: PrefectServer,
                                                                  tmp_path: Path) -> None:
    dataset = ds.generate(students=40, mistakes=1)
    sandboxes = systems.start(dataset)
    worker: subprocess.Popen[bytes] | None = None
    try:
        env = {**clean_environment(), **sandboxes.environment(), "PREFECT_API_URL": prefect_server.api_url,
               "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_WORKER_QUERY_SECONDS": "2", "SKOLFLOW_PROFILE": "sandbox",
               "SKOLFLOW_DATA_DIR": str(tmp_path / "data"),
               "SKOLFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
        deployments = Path(__file__).resolve().parents[2] / "deployments" / "sandbox.toml"
        printed = run_skolflow(["deploy", str(deployments), "--pool", POOL], env)
        assert "deployed betyg-to-beda/nightly" in printed

        nightly = api(prefect_server, "GET", "/deployments/name/betyg-to-beda/nightly")
        assert isinstance(nightly, dict)
        planned_runs = {"deployment_id": {"any_": [nightly["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}}}
        # What the server's scheduler service does on its loop, asked for now rather than waited for.
        api(prefect_server, "POST", f"/deployments/{nightly['id']}/schedule")
        scheduled = api(prefect_server, "POST", "/flow_runs/filter", limit=10, flow_runs=planned_runs)
        assert isinstance(scheduled, list) and scheduled, "the server planned no run of the nightly deployment"
        planned = dt.datetime.fromisoformat(scheduled[0]["next_scheduled_start_time"])
        assert planned.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%H:%M") == "02:00"

        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        run = api(prefect_server, "POST", f"/deployments/{nightly['id']}/create_flow_run",
                  state={"type": "SCHEDULED", "name": "Scheduled"})
        assert isinstance(run, dict)
        deadline = time.monotonic() + RUN_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            current = api(prefect_server, "GET", f"/flow_runs/{run['id']}")
            assert isinstance(current, dict)
            state = current["state_type"]
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
        assert current["name"].startswith(f"betyg-to-beda · {dataset.huvudman_orgnr}")
        held = httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
        assert held, "the worker's run delivered nothing to Beda"
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        sandboxes.stop()
