"""Deployments from deployments/*.toml: what they hold, what a bad file is told, registering them, and the
prefect.yaml made from them for `prefect deploy`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect import get_client
from prefect.cli.deploy._config import _load_deploy_configs_and_actions
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from rich.console import Console
from typer.testing import CliRunner

from skolflow.deployments import (
    DeploymentConfigError,
    build,
    deploy,
    load,
    prefect_yaml,
    set_working_directory_to_installed_code,
)
from skolflow.flows.cli import app

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = ROOT / "deployments" / "sandbox.toml"
PREFECT_YAML = ROOT / "prefect.yaml"


def test_the_sandbox_file_deploys_every_pipeline_with_its_schedule_and_time_zone() -> None:
    environment = load(SANDBOX)
    deployments = {(d.flow_name, d.name): d for d in build(environment)}

    assert {flow for flow, _ in deployments} == {"betyg-to-beda", "skola24-to-haldor", "dnp-provisioning",
                                                  "udir-results", "udir-registration", "udir-reconcile"}
    nightly = deployments[("betyg-to-beda", "nightly")]
    (schedule,) = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "Europe/Stockholm")
    assert deployments[("udir-results", "grading-period")].schedules[0].schedule.timezone == "Europe/Oslo"
    assert not deployments[("udir-registration", "on-demand")].schedules
    for deployment in deployments.values():
        assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
        assert deployment.concurrency_limit == 1
        assert deployment.entrypoint.startswith("skolflow.flows.")
    assert nightly.parameters == {"anslutningspart": "212000-0142"}


@pytest.mark.parametrize(("entry", "message"), [
    ('flow = "betyg-till-beda"', "flow must be one of"),
    ('flow = "betyg-to-beda"\ntimezone = "UTC"', "Europe/Stockholm or Europe/Oslo"),
    ('flow = "betyg-to-beda"\nparameters = { huvudman = "x" }', "takes no parameter huvudman"),
    ('flow = "betyg-to-beda"\ncron = "0 2 * * *"', "a scheduled run needs anslutningspart"),
    ('flow = "betyg-to-beda"\nschedule = "nightly"', r"unknown key\(s\) schedule"),
])
def test_a_bad_file_is_refused_naming_the_deployment(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "kommun.toml"
    path.write_text(f'[[deployment]]\nname = "natt"\n{entry}\n', encoding="utf-8")
    with pytest.raises(DeploymentConfigError, match=message) as raised:
        build(load(path))
    assert "natt" in str(raised.value)


@pytest.mark.usefixtures("prefect_harness")
async def test_deploy_registers_every_deployment_on_a_process_pool() -> None:
    names = await deploy(load(SANDBOX), "skolflow-test-pool")

    assert "betyg-to-beda/nightly" in names and len(names) == 6
    async with get_client() as client:
        pool = await client.read_work_pool("skolflow-test-pool")
        nightly = await client.read_deployment_by_name("betyg-to-beda/nightly")
    assert pool.type == "process"
    assert nightly.work_pool_name == "skolflow-test-pool"
    assert nightly.schedules[0].schedule.timezone == "Europe/Stockholm"
    assert nightly.global_concurrency_limit is not None and nightly.global_concurrency_limit.limit == 1
    assert nightly.entrypoint == "skolflow.flows.betyg_to_beda.betyg_to_beda"

    again = await deploy(load(SANDBOX), "skolflow-test-pool")  # idempotent: updates, never duplicates
    assert sorted(again) == sorted(names)


def test_the_shipped_prefect_yaml_is_what_the_sandbox_file_makes() -> None:
    assert PREFECT_YAML.read_text(encoding="utf-8") == prefect_yaml(load(SANDBOX), source="deployments/sandbox.toml"), \
        "prefect.yaml differs from deployments/sandbox.toml: uv run skolflow prefect-yaml deployments/sandbox.toml"


def test_prefect_reads_from_prefect_yaml_the_deployments_skolflow_deploy_registers() -> None:
    """Read as `prefect deploy` reads it: a field Prefect refuses would be skipped with a warning, not an error."""
    console = Console(record=True, width=200)
    configs, actions = _load_deploy_configs_and_actions(PREFECT_YAML, console=console)
    registered = build(load(SANDBOX), work_pool="skolflow")

    assert console.export_text() == ""
    assert actions["pull"] == [{"skolflow.deployments.set_working_directory_to_installed_code": {}}]
    assert [c["name"] for c in configs] == [d.name for d in registered]
    for config, deployment in zip(configs, registered, strict=True):
        path, function = config["entrypoint"].split(":")
        assert (ROOT / path).is_file() and function.replace("_", "-") == deployment.flow_name
        assert [(s["cron"], s["timezone"]) for s in config["schedules"]] == \
            [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules]
        assert config["parameters"] == deployment.parameters
        assert config["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        assert config["work_pool"]["name"] == "skolflow"
        assert config["tags"] == deployment.tags and config["paused"] is False


def test_the_pull_step_leads_a_run_to_the_installed_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where a worker starts a run: a directory of its own; restored afterwards

    directory = Path(set_working_directory_to_installed_code()["directory"])

    assert directory == Path.cwd() == ROOT  # the editable install this test runs from
    for entry in yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))["deployments"]:
        assert (directory / entry["entrypoint"].split(":")[0]).is_file()
    assert (directory / "schemas").is_dir()  # the codecs read their XSDs from beside the package


def test_the_command_writes_prefect_yaml_for_another_environment_and_pool(tmp_path: Path) -> None:
    kommun = tmp_path / "kommun.toml"
    kommun.write_text(SANDBOX.read_text(encoding="utf-8").replace('environment = "sandbox"',
                                                                  'environment = "kommun"'), encoding="utf-8")
    output = tmp_path / "prefect.kommun.yaml"

    result = CliRunner().invoke(app, ["prefect-yaml", str(kommun), "--output", str(output), "--pool", "skolflow-k8s"])

    assert result.exit_code == 0, result.output
    assert f"deploy--all--prefect-file{output}" in "".join(result.output.split())  # however the console wrapped it
    written = yaml.safe_load(output.read_text(encoding="utf-8"))
    assert {d["work_pool"]["name"] for d in written["deployments"]} == {"skolflow-k8s"}
    assert all("kommun" in d["tags"] for d in written["deployments"])
    assert f"Generated from {kommun.as_posix()}" in output.read_text(encoding="utf-8")


def test_the_command_refuses_a_bad_file_naming_the_deployment(tmp_path: Path) -> None:
    bad = tmp_path / "kommun.toml"
    bad.write_text('[[deployment]]\nname = "natt"\nflow = "betyg-to-beda"\ncron = "0 2 * * *"\n', encoding="utf-8")

    result = CliRunner().invoke(app, ["prefect-yaml", str(bad), "--output", str(tmp_path / "prefect.yaml")])

    assert result.exit_code == 2 and "natt" in result.output
    assert not (tmp_path / "prefect.yaml").exists()
