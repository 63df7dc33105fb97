"""The scale-out path: Betyg → Beda's batches fanned out to Dask workers with prefect-dask's DaskTaskRunner.

The real flow, run with ``with_options(task_runner=DaskTaskRunner(address=…))`` (README § Scale-out), against
the sandboxes over HTTP. A local cluster of two in-process workers stands in for a Dask cluster on
Kubernetes; what is proven is that the flow's batch tasks execute on the Dask workers and that the run's
outcome is the same as on the default runner: every valid student delivered to Beda, nothing lost.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from distributed import LocalCluster
from prefect_dask import DaskTaskRunner

from skolflow.flows.betyg_to_beda import PIPELINE, betyg_to_beda
from skolflow.ledger import Ledger
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig

pytestmark = pytest.mark.usefixtures("prefect_harness")

STUDENTS = 80
BATCH_SIZE = 10


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    running = systems.start(ds.generate(students=STUDENTS, schools=3, seed=21, mistakes=2),
                            {name: FaultConfig() for name in systems.SYSTEMS})
    for key, value in running.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    yield running
    running.stop()


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=2, dashboard_address=None) as local:
        yield local


def executed(cluster: LocalCluster) -> int:
    return sum(worker.state.executed_count for worker in cluster.workers.values())


async def test_betyg_to_beda_batches_run_on_dask_workers(sandboxes: systems.Sandboxes, cluster: LocalCluster) -> None:
    before = executed(cluster)
    on_dask = betyg_to_beda.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))

    state = await on_dask(anslutningspart=sandboxes.dataset.huvudman_orgnr, batch_size=BATCH_SIZE,
                          return_state=True)

    assert state.is_completed(), state.message
    summary = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"]).runs(PIPELINE, limit=1)[0].summary
    batches = -(-summary["students"] // BATCH_SIZE)
    assert executed(cluster) - before >= batches  # every batch task ran on a Dask worker
    assert summary["lost"] == 0 and summary["failed"] == 0
    held = httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
    assert summary["accepted"] == len(held) == summary["students"] - summary["rejected"]
