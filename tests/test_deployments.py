"""Deployments from deployments/*.toml: what they hold, what a bad file is told, and registering them."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.objects import ConcurrencyLimitStrategy

from skolflow.deployments import DeploymentConfigError, build, deploy, load

SANDBOX = Path(__file__).resolve().parents[1] / "deployments" / "sandbox.toml"


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
