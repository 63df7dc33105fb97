"""The worker image's Dockerfile, read as instructions and checked for what the image must be.

CI's machine cannot build it (its base image comes from a registry that machine cannot reach), so the rules that
matter are checked on the file: the locked dependencies through uv, a non-root user, no secret
baked in, skolflow where prefect.yaml's pull step leads a run, and a build context that carries nothing else.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from skolflow.deployments import set_working_directory_to_installed_code

ROOT = Path(__file__).resolve().parents[1]
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|DATABASE_URL|API_URL|WEBHOOK", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments and parser directives left out."""
    logical, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def of(kind: str) -> list[str]:
    return [arguments for instruction, arguments in instructions() if instruction == kind]


def env_names() -> list[str]:
    names = []
    for arguments in of("ENV") + of("ARG"):
        names += [word.split("=", 1)[0] for word in shlex.split(arguments)]
    return names


def shipped_prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))


def test_the_base_is_the_python_the_project_requires() -> None:
    (base,) = of("FROM")
    assert base == "python:3.11-slim"
    assert 'requires-python = ">=3.11,<3.12"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_uv_from_pypi_installs_exactly_the_lock_without_dev_dependencies() -> None:
    runs = of("RUN")
    assert any(re.search(r"pip install --no-cache-dir uv==\d+\.\d+\.\d+", run) for run in runs)
    syncs = [run for run in runs if run.startswith("uv sync")]
    assert syncs and all("--locked" in s and "--no-dev" in s for s in syncs)
    assert not any("--no-editable" in s for s in syncs)  # the codecs read schemas/ beside the package
    steps = instructions()
    first_sync = steps.index(next(step for step in steps if step[0] == "RUN" and step[1].startswith("uv sync")))
    copied_before = " ".join(arguments for instruction, arguments in steps[:first_sync] if instruction == "COPY")
    assert "pyproject.toml" in copied_before and "uv.lock" in copied_before


def test_the_worker_runs_as_a_numeric_non_root_user() -> None:
    steps = [instruction for instruction, _ in instructions()]
    *_, user = of("USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "numeric, so that Kubernetes' runAsNonRoot can check it"
    assert max(i for i, s in enumerate(steps) if s == "USER") < min(i for i, s in enumerate(steps)
                                                                      if s in ("ENTRYPOINT", "CMD"))
    uid = user.split(":")[0]
    assert any(f"--uid {uid}" in run for run in of("RUN")), "the user exists in the image, with a home"


def test_no_secret_or_environment_of_a_site_is_baked_in() -> None:
    assert not [name for name in env_names() if SECRET_LIKE.search(name) or name.startswith("SKOLFLOW_")]
    assert not of("ADD")  # nothing fetched or unpacked from elsewhere


def test_skolflow_sits_where_prefect_yaml_pull_step_leads_a_run() -> None:
    document = shipped_prefect_yaml()
    step = set_working_directory_to_installed_code
    assert document["pull"] == [{f"{step.__module__}.{step.__name__}": {}}]  # the package's parent directory
    (workdir,) = of("WORKDIR")
    destinations = {PurePosixPath(workdir, arguments.split()[-1]) for arguments in of("COPY")}
    assert {PurePosixPath(workdir, "skolflow"), PurePosixPath(workdir, "schemas")} <= destinations
    assert f"{workdir}/.venv/bin" in " ".join(of("ENV"))


def test_the_default_command_starts_a_process_worker_on_prefect_yaml_pool() -> None:
    pools = {deployment["work_pool"]["name"] for deployment in shipped_prefect_yaml()["deployments"]}
    (command,) = of("CMD")
    (entrypoint,) = of("ENTRYPOINT")
    assert json.loads(entrypoint)[0] == "/usr/bin/tini"
    assert json.loads(command) == ["prefect", "worker", "start", "--pool", *pools, "--type", "process"]


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"  # everything out, then let in by name
    let_in = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = set()
    for arguments in of("COPY"):
        sources |= {source.rstrip("/") for source in arguments.split()[:-1]}
    assert let_in == sources
