"""The README's production path: `skolflow deploy` to a server on PostgreSQL, a process worker runs a deployment.

A newcomer deploys, sees the scheduled runs the server plans in Swedish time, and watches a run of the
nightly deployment picked up by a worker on the process pool and completed. A data engineer who knows Prefect
does the same with `prefect deploy --all` and the shipped prefect.yaml.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from skolflow.deployments import load
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems

from .conftest import PrefectServer, clean_environment, run_skolflow, running_server, stop_session

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

POOL = "skolflow-e2e"
RUN_TIMEOUT = 240.0
ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments" / "sandbox.toml"
PREFECT_TIMEOUT = 300


@pytest.fixture(scope="module")
def deploy_server(postgres_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server of these tests' own: their deployments plan scheduled runs the other e2e tests must not see."""
    with running_server(postgres_base_url, tmp_path_factory.mktemp("prefect-deploy-server")) as server:
        yield server


def api(server: PrefectServer, method: str, path: str, **body: object) -> object:
    answer = httpx.request(method, f"{server.api_url}{path}", json=body or None, timeout=30)
    answer.raise_for_status()
    return answer.json()


def run_to_the_end(server: PrefectServer, deployment_id: str) -> dict[str, Any]:
    """Start a run of the deployment now and wait until it has ended; the run as the server has it."""
    run = api(server, "POST", f"/deployments/{deployment_id}/create_flow_run",
              state={"type": "SCHEDULED", "name": "Scheduled"})
    assert isinstance(run, dict)
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        current = api(server, "GET", f"/flow_runs/{run['id']}")
        assert isinstance(current, dict)
        if current["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") or time.monotonic() > deadline:
            return current
        time.sleep(1)


def prefect(args: list[str], env: dict[str, str], cwd: Path) -> None:
    """`uv run prefect …` as the README says it: the project's interpreter, no terminal to answer prompts."""
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=PREFECT_TIMEOUT)
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


def environment(server: PrefectServer, sandboxes: systems.Sandboxes, tmp_path: Path) -> dict[str, str]:
    return {**clean_environment(), **sandboxes.environment(), "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_RUNNER_POLL_FREQUENCY": "2", "SKOLFLOW_PROFILE": "sandbox",
            "SKOLFLOW_DATA_DIR": str(tmp_path / "data"), "SKOLFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}


def test_deploy_then_a_process_worker_runs_the_nightly_deployment(deploy_server: PrefectServer,
                                                                  tmp_path: Path) -> None:
    dataset = ds.generate(students=40, mistakes=1)
    sandboxes = systems.start(dataset)
    worker: subprocess.Popen[bytes] | None = None
    try:
        env = environment(deploy_server, sandboxes, tmp_path)
        printed = run_skolflow(["deploy", str(DEPLOYMENTS), "--pool", POOL], env)
        assert "deployed betyg-to-beda/nightly" in printed

        nightly = api(deploy_server, "GET", "/deployments/name/betyg-to-beda/nightly")
        assert isinstance(nightly, dict)
        planned_runs = {"deployment_id": {"any_": [nightly["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}}}
        # What the server's scheduler service does on its loop, asked for now rather than waited for.
        api(deploy_server, "POST", f"/deployments/{nightly['id']}/schedule")
        scheduled = api(deploy_server, "POST", "/flow_runs/filter", limit=10, flow_runs=planned_runs)
        assert isinstance(scheduled, list) and scheduled, "the server planned no run of the nightly deployment"
        planned = dt.datetime.fromisoformat(scheduled[0]["next_scheduled_start_time"])
        assert planned.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%H:%M") == "02:00"

        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        current = run_to_the_end(deploy_server, nightly["id"])
        assert current["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
        assert current["name"].startswith(f"betyg-to-beda · {dataset.huvudman_orgnr}")
        held = httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
        assert held, "the worker's run delivered nothing to Beda"
    finally:
        if worker is not None:
            stop_session(worker)
        sandboxes.stop()


def test_serve_runs_the_deployments_in_one_process(deploy_server: PrefectServer, tmp_path: Path) -> None:
    dataset = ds.generate(students=30, mistakes=1)
    sandboxes = systems.start(dataset)
    served: subprocess.Popen[bytes] | None = None
    try:
        log = (tmp_path / "serve.log").open("wb")
        served = subprocess.Popen([sys.executable, "-m", "skolflow.flows.cli", "serve", str(DEPLOYMENTS)],
                                  env=environment(deploy_server, sandboxes, tmp_path), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while "being served" not in (tmp_path / "serve.log").read_text() and time.monotonic() < deadline:
            time.sleep(1)
        deployment = api(deploy_server, "GET", "/deployments/name/betyg-to-beda/nightly")
        assert isinstance(deployment, dict), (tmp_path / "serve.log").read_text()[-3000:]

        current = run_to_the_end(deploy_server, deployment["id"])

        assert current["state_type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        assert httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
    finally:
        if served is not None:
            stop_session(served)
        sandboxes.stop()


def test_prefect_deploy_all_registers_the_deployments_file_and_a_worker_runs_one(deploy_server: PrefectServer,
                                                                                 tmp_path: Path) -> None:
    """The README's `prefect deploy` path: the shipped prefect.yaml, deployed from the repository's root without a
    terminal, holds what deployments/sandbox.toml says, and a process worker started elsewhere finds the code."""
    environment_file = load(DEPLOYMENTS)
    dataset = ds.generate(students=30, mistakes=1)
    sandboxes = systems.start(dataset)
    worker: subprocess.Popen[bytes] | None = None
    try:
        env = environment(deploy_server, sandboxes, tmp_path)
        prefect(["work-pool", "create", environment_file.work_pool, "--type", "process"], env, cwd=tmp_path)
        prefect(["--no-prompt", "deploy", "--all"], env, cwd=ROOT)

        for spec in environment_file.deployments:
            deployment = api(deploy_server, "GET", f"/deployments/name/{spec.flow}/{spec.name}")
            assert isinstance(deployment, dict)
            schedules = [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"])
                         for s in deployment["schedules"]]
            assert schedules == ([(spec.cron, spec.timezone, True)] if spec.cron else []), spec
            assert deployment["work_pool_name"] == environment_file.work_pool
            assert deployment["global_concurrency_limit"]["limit"] == 1
            assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
            assert deployment["parameters"] == spec.parameters
            assert deployment["tags"] == ["skolflow", spec.flow, environment_file.name]
            assert deployment["entrypoint"].startswith("skolflow/flows/")

        nightly = api(deploy_server, "GET", "/deployments/name/betyg-to-beda/nightly")
        assert isinstance(nightly, dict)
        log = (tmp_path / "worker.log").open("wb")
        # Started outside the repository: the pull step, not the worker's directory, must lead the run to the code.
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool",
                                   environment_file.work_pool], cwd=tmp_path, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        current = run_to_the_end(deploy_server, nightly["id"])
        assert current["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
        assert httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
    finally:
        if worker is not None:
            stop_session(worker)
        sandboxes.stop()
