"""Deployments of every pipeline, from a TOML file per environment (``deployments/*.toml``).

The file says which deployments an environment has, their schedules (cron in the school's own time
zone: Europe/Stockholm or Europe/Oslo), their parameters and the work pool; the code here says what
every deployment of a pipeline has in common: its flow, its concurrency (Betyg → Beda runs never
overlap; a DNP run waits for the one before), its tags. ``skolflow deploy`` registers them with the
Prefect server for a process worker; ``skolflow serve`` runs them in one long-lived process instead;
``skolflow prefect-yaml`` writes them as a ``prefect.yaml`` for those who deploy with ``prefect deploy``.
All three go through :func:`build`, so they cannot disagree about what a deployment is.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # not a dependency of skolflow's own: Prefect's, which reads prefect.yaml with it
from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import EntrypointType
from prefect.schedules import Cron

DEFAULT_POOL = "skolflow"
TIME_ZONES = frozenset({"Europe/Stockholm", "Europe/Oslo"})


def _flows() -> dict[str, Callable[[], Flow[..., Any]]]:
    """Each pipeline's flow by its name, imported only when asked for."""

    def betyg() -> Flow[..., Any]:
        from skolflow.flows.betyg_to_beda import betyg_to_beda
        return betyg_to_beda

    def skola24() -> Flow[..., Any]:
        from skolflow.flows.skola24_to_haldor import skola24_to_haldor
        return skola24_to_haldor

    def registration() -> Flow[..., Any]:
        from skolflow.flows.udir_registration import udir_registration
        return udir_registration

    def reconcile() -> Flow[..., Any]:
        from skolflow.flows.udir_reconcile import udir_reconcile
        return udir_reconcile

    def results() -> Flow[..., Any]:
        from skolflow.flows.udir_results import udir_results
        return udir_results

    def dnp() -> Flow[..., Any]:
        from skolflow.flows.dnp_provisioning import dnp_provisioning
        return dnp_provisioning

    return {"betyg-to-beda": betyg, "skola24-to-haldor": skola24, "udir-registration": registration,
            "udir-reconcile": reconcile, "udir-results": results, "dnp-provisioning": dnp}


FLOWS = _flows()
# One run of a deployment at a time; a run due while one is running waits for it (never two Beda or DNP
# runs at once). The flows also hold a per-anslutningspart / per-huvudman Prefect concurrency limit,
# which covers runs started outside the deployment (the CLI, another deployment).
SERIAL = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


class DeploymentConfigError(ValueError):
    """The deployments file says something skolflow cannot deploy; the message names the deployment."""


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    flow: str
    parameters: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    timezone: str = "Europe/Stockholm"
    description: str = ""
    paused: bool = False


@dataclass(frozen=True)
class Environment:
    name: str
    work_pool: str
    deployments: list[DeploymentSpec]


def load(path: Path) -> Environment:
    """Read and check a deployments file; every problem names the deployment it is in."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    specs = []
    for index, entry in enumerate(data.get("deployment", []), start=1):
        name = entry.get("name") or f"deployment #{index}"
        if entry.get("flow") not in FLOWS:
            raise DeploymentConfigError(f"{path.name}: {name}: flow must be one of {', '.join(FLOWS)}, "
                                        f"not {entry.get('flow')!r}")
        timezone = entry.get("timezone", "Europe/Stockholm")
        if timezone not in TIME_ZONES:
            raise DeploymentConfigError(f"{path.name}: {name}: timezone must be Europe/Stockholm or Europe/Oslo")
        unknown = set(entry) - {"name", "flow", "parameters", "cron", "timezone", "description", "paused"}
        if unknown:
            raise DeploymentConfigError(f"{path.name}: {name}: unknown key(s) {', '.join(sorted(unknown))}")
        specs.append(DeploymentSpec(name=name, flow=entry["flow"], parameters=dict(entry.get("parameters", {})),
                                    cron=entry.get("cron"), timezone=timezone,
                                    description=entry.get("description", ""), paused=bool(entry.get("paused"))))
    keys = [(s.flow, s.name) for s in specs]
    if len(set(keys)) != len(keys):
        raise DeploymentConfigError(f"{path.name}: a flow has two deployments of the same name")
    return Environment(name=data.get("environment", path.stem), work_pool=data.get("work_pool", DEFAULT_POOL),
                       deployments=specs)


def build(environment: Environment, *, work_pool: str | None = None) -> list[RunnerDeployment]:
    """The Prefect deployments; with ``work_pool`` they are for a worker, without it for ``serve``."""
    deployments = []
    for spec in environment.deployments:
        flow = FLOWS[spec.flow]()
        known, required = set(flow.parameters.properties), set(flow.parameters.required or [])
        if unknown := sorted(set(spec.parameters) - known):
            raise DeploymentConfigError(f"{spec.flow}/{spec.name}: {spec.flow} takes no parameter "
                                        f"{', '.join(unknown)}")
        if spec.cron and (missing := sorted(required - set(spec.parameters))):
            raise DeploymentConfigError(f"{spec.flow}/{spec.name}: a scheduled run needs {', '.join(missing)}")
        schedules = [Cron(spec.cron, timezone=spec.timezone)] if spec.cron else None
        try:
            deployment = flow.to_deployment(
                name=spec.name, schedules=schedules, parameters=spec.parameters, paused=spec.paused,
                concurrency_limit=SERIAL, tags=["skolflow", spec.flow, environment.name],
                description=spec.description or (flow.description or "").split("\n")[0],
                work_pool_name=work_pool, entrypoint_type=EntrypointType.MODULE_PATH,
                _sync=True)  # the same whether called from async code (deploy) or not (serve)
        except ValueError as exc:  # e.g. a cron expression Prefect cannot read
            raise DeploymentConfigError(f"{spec.flow}/{spec.name}: {exc}") from None
        deployments.append(deployment)
    return deployments


async def ensure_process_pool(name: str) -> bool:
    """Create the process work pool if it does not exist; True when it was created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_work_pool(name)
            return False
        except ObjectNotFound:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            return True


async def deploy(environment: Environment, work_pool: str | None = None) -> list[str]:
    """Register every deployment with the server for ``work_pool`` (created if missing); their names."""
    pool = work_pool or environment.work_pool
    await ensure_process_pool(pool)
    names = []
    for deployment in build(environment, work_pool=pool):
        await deployment.aapply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def set_working_directory_to_installed_code() -> dict[str, str]:
    """prefect.yaml's pull step: work in the directory that holds the installed ``skolflow`` package.

    prefect.yaml's entrypoints are file paths (``skolflow/flows/betyg_to_beda.py:betyg_to_beda``: the form
    ``prefect deploy --name betyg-to-beda/nightly`` matches on), and a worker starts every run in an empty directory
    of its own. The code is wherever this module is installed: the checkout whose ``uv run`` started a process
    worker, or /app in the worker image (Dockerfile). Finding it here lets one prefect.yaml serve every machine
    without naming a path that is true on only one of them. The install must be editable (uv's default), as the
    codecs read their XSDs from ``schemas/`` beside the package.
    """
    directory = Path(__file__).resolve().parent.parent
    os.chdir(directory)
    return {"directory": str(directory)}


def _yaml_entry(deployment: RunnerDeployment) -> dict[str, Any]:
    """One deployment as prefect.yaml says it, field for field what ``skolflow deploy`` registers."""
    module, function = deployment.entrypoint.rsplit(".", 1)
    return {
        "name": deployment.name,
        "description": deployment.description,
        "entrypoint": f"{module.replace('.', '/')}.py:{function}",
        "tags": deployment.tags,
        "parameters": deployment.parameters,
        # Written even when empty or false, so that deploying again removes a schedule or a pause the file dropped.
        "schedules": [{"cron": s.schedule.cron, "timezone": s.schedule.timezone} for s in deployment.schedules],
        "paused": deployment.paused,
        "concurrency_limit": {"limit": deployment.concurrency_limit,
                              "collision_strategy": deployment.concurrency_options.collision_strategy.value},
        "work_pool": {"name": deployment.work_pool_name},
    }


def prefect_yaml(environment: Environment, *, source: str, work_pool: str | None = None) -> str:
    """The environment's deployments as a ``prefect.yaml`` that ``prefect --no-prompt deploy --all`` registers.

    ``source`` is the deployments file it came from, named in the header so that nobody edits the copy. Without a
    terminal ``prefect deploy`` asks nothing and takes every deployment's work pool from the file (``--pool`` is
    ignored with ``--all``), so the pool is written into each one; it must exist (``skolflow deploy`` creates it,
    ``prefect deploy`` does not).
    """
    entries = [_yaml_entry(d) for d in build(environment, work_pool=work_pool or environment.work_pool)]
    document = {"name": "skolflow",
                "pull": [{f"{__name__}.{set_working_directory_to_installed_code.__name__}": {}}],
                "deployments": entries}
    header = (f"# skolflow's deployments for the {environment.name} environment, for `prefect deploy --all`.\n"
              f"# Generated from {source} by `skolflow prefect-yaml`: change that file and generate this one again,\n"
              "# never edit this one by hand (README § Deployments).\n")
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
