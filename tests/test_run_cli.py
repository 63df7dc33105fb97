"""`skolflow run …` as an administrator types it, against the sandboxes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from skolflow.flows.cli import app
from skolflow.ledger import Ledger
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig
from skolflow.tasks.schools import dump_schools

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    running = systems.start(ds.generate(students=30, schools=3, seed=9, mistakes=1),
                            {name: FaultConfig() for name in systems.SYSTEMS})
    for key, value in running.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    yield running
    running.stop()


def test_one_student_by_personnummer_never_puts_the_number_in_the_flow_run(
        sandboxes: systems.Sandboxes) -> None:
    student = next(p for p in sandboxes.dataset.students()
                   if all(g.value not in ("1", "F") for g in sandboxes.dataset.records[p.id].grades))
    result = CliRunner().invoke(app, ["run", "betyg-to-beda", "--anslutningspart", "2120000142",
                                      "--personnummer", student.civic_no])
    assert result.exit_code == 0, result.output
    held = httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
    assert set(held) == {student.civic_no}
    [run] = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"]).runs("betyg_to_beda")
    assert run.parameters["student"] == student.id
    assert student.civic_no not in result.output


def test_an_unknown_personnummer_is_refused_before_any_run() -> None:
    result = CliRunner().invoke(app, ["run", "betyg-to-beda", "--anslutningspart", "2120000142",
                                      "--personnummer", "19121212-1213"])
    assert result.exit_code != 0 and "check digit" in result.output


def test_skola24_to_haldor_dry_run_pushes_nothing(sandboxes: systems.Sandboxes, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    schools = tmp_path / "schools.toml"
    schools.write_text(dump_schools(systems.school_configs(sandboxes.dataset, sandboxes.timetable)))
    monkeypatch.setenv("SKOLFLOW_SKOLA24_SCHOOLS", str(schools))
    result = CliRunner().invoke(app, ["run", "skola24-to-haldor", "--dry-run", "--from", "2026-11-23",
                                      "--to", "2026-11-29"])
    assert result.exit_code == 0, result.output
    assert "planned" in result.output
    for config in systems.school_configs(sandboxes.dataset, sandboxes.timetable):
        held = httpx.get(f"{sandboxes.urls['haldor']}/_sandbox/schools/{config.haldor_school}/positions").json()
        assert held["count"] == 0


def test_udir_commands_register_reconcile_and_fetch_results(sandboxes: systems.Sandboxes, tmp_path: Path) -> None:
    from skolflow.sandbox import udir_data
    from skolflow.tasks.udir_candidates import write_csv

    data = udir_data.generate()
    school = data.schools[0]
    path = write_csv(tmp_path / "kandidater.csv", udir_data.sample_candidates(data, school.orgnr))
    common = ["--skole", school.orgnr, "--periode", data.current_period, "--skolenavn", school.name,
              "--brukernavn-pas", "sas.bruker"]

    registration = CliRunner().invoke(app, ["run", "udir-registration", str(path), *common])
    assert registration.exit_code == 0, registration.output
    assert "registered" in registration.stdout

    plan = CliRunner().invoke(app, ["run", "udir-reconcile", str(path), *common, "--dry-run"])
    assert plan.exit_code == 0, plan.output
    manual = sum(1 for r in data.registrations if r.orgnr == school.orgnr)
    assert f"plan: delete {manual}" in plan.stdout

    out = tmp_path / "resultater"
    results = CliRunner().invoke(app, ["run", "udir-results", "--skole", school.orgnr, "--periode",
                                       udir_data.PREVIOUS_PERIOD, "--sas-bruker", "sas.bruker", "--output", str(out)])
    assert results.exit_code == 0, results.output
    assert (out / f"{school.orgnr}-{udir_data.PREVIOUS_PERIOD}.xlsx").exists()
