"""The sandboxes as flow tests use them: every system served over HTTP, the run's environment pointed at them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from skolflow.connectors.dnp.opendata import OpenDataClient
from skolflow.connectors.ss12000.client import SS12000Client
from skolflow.ledger import Ledger
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig
from skolflow.tasks.dnp_mapping import map_to_dnp, select_test_activities
from skolflow.tasks.dnp_steps import STEPS


@contextmanager
def serving(data: ds.Dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    """Every sandbox without faults, a fresh SQLite ledger in ``tmp_path``, and short HTTP timeouts."""
    running = systems.start(data, {name: FaultConfig() for name in systems.SYSTEMS})
    try:
        for key, value in running.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SKOLFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
        monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "5")
        yield running
    finally:
        running.stop()


def ledger() -> Ledger:
    return Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"])


def dnp_held(sandboxes: systems.Sandboxes) -> dict[str, set[str]]:
    """The ids DNP's sandbox holds, per step."""
    records = httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()["records"]
    return {kind: set(records.get(kind, [])) for kind in STEPS}


async def dnp_expected(sandboxes: systems.Sandboxes) -> dict[str, set[str]]:
    """The DNP ids the whole source maps to now (rejected records excluded), read as the flow does not: no
    watermark, no ledger."""
    urls = sandboxes.urls
    async with SS12000Client(urls["ss12000"], systems.SS12000_TOKEN) as source:
        persons = [p async for p in source.persons()]
        duties = [d async for d in source.duties()]
        groups = [g async for g in source.groups(group_type=["Klass", "Undervisning"])]
        activities = [a async for a in source.activities(expand=["syllabus"])]
        units = [o async for o in source.organisations(organisation_type="Skolenhet")]
    async with OpenDataClient(urls["dnp-opendata"]) as opendata:
        catalogue = await opendata.activities()
    mapped = map_to_dnp(persons, duties, groups, activities, units,
                        select_test_activities(catalogue, [a.displayName for a in catalogue]))
    return {kind: {r.id for r in getattr(mapped, kind)} for kind in STEPS}
