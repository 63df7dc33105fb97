"""skolflow.boundary: Prefect's task and flow, with every exception leaving a body sanitised.

The wrapper must pass for the function wherever Prefect looks at it (names, signature, parameter schema,
validation of string annotations, version, task keys), and what leaves a failed run must say nothing of
the input: not in the state message, not in the run's logs.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import logging
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect import Flow, Task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.utilities.hashing import file_hash

import skolflow
from skolflow.boundary import flow, task
from skolflow.errors import InvalidInput

NAME, CIVIC, EMAIL = "Kari Ødegård", "01018036736", "kari.odegard@skole.example.no"
FILE = f"fodselsnummer;navn;epost\n{CIVIC};{NAME};{EMAIL}\n".encode("latin-1")
AT = FILE.index("Ø".encode("latin-1"))
PACKAGE = Path(skolflow.__file__).parent


def read_bytes(data: bytes) -> str:
    return data.decode("utf-8")  # UnicodeDecodeError: its repr holds ``data`` whole


@task(name="les-sync", persist_result=False)
def read_sync(data: bytes) -> str:
    """Read a file's bytes (sync)."""
    return read_bytes(data)


@task(name="les-async", persist_result=False)
async def read_async(data: bytes) -> str:
    return read_bytes(data)


@task(persist_result=False, timeout_seconds=0.5)
def overrunning() -> None:
    time.sleep(3)


@flow(name="boundary-tasks", persist_result=False)
async def failing_task(is_async: bool) -> str:
    return await read_async(FILE) if is_async else read_sync(FILE)


@flow(name="boundary-flow", persist_result=False)
async def failing_flow(since: dt.datetime, count: int = 1) -> str:
    """A flow that fails in its own body.

    Args:
        since: a parameter whose annotation only this module's globals resolve
    """
    return read_bytes(FILE)


@flow(name="boundary-sync-flow", persist_result=False)
def failing_sync_flow() -> str:
    raise KeyError(NAME)


@flow(persist_result=False)
def timing_out() -> str:
    return overrunning(return_state=True).name


def test_no_module_takes_flow_or_task_from_prefect_directly() -> None:
    """Every task and flow goes through skolflow.boundary, so none can forget to sanitise."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "boundary.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            imported = isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "prefect" and \
                {alias.name for alias in node.names} & {"flow", "task"}
            attribute = isinstance(node, ast.Attribute) and node.attr in ("flow", "task") and \
                isinstance(node.value, ast.Name) and node.value.id == "prefect"
            if imported or attribute:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, "take flow and task from skolflow.boundary: " + ", ".join(offenders)


def test_prefect_sees_the_function_itself() -> None:
    assert isinstance(read_sync, Task) and isinstance(failing_flow, Flow)
    assert (read_sync.name, read_sync.description) == ("les-sync", "Read a file's bytes (sync).")
    assert (read_sync.fn.__name__, read_sync.fn.__qualname__, read_sync.fn.__module__) == \
        ("read_sync", "read_sync", __name__)
    assert not read_sync.isasync and read_async.isasync and failing_flow.isasync and not failing_sync_flow.isasync
    assert inspect.iscoroutinefunction(read_async.fn) and not inspect.iscoroutinefunction(read_sync.fn)
    assert str(inspect.signature(failing_flow.fn)) == "(since: 'dt.datetime', count: 'int' = 1) -> 'str'"
    # The parameter schema, with the docstring's description, as the UI and deployments show it.
    since = failing_flow.parameters.properties["since"]
    assert (since["format"], since["description"]) == ("date-time", "a parameter whose annotation only this "
                                                                      "module's globals resolve")
    assert failing_flow.parameters.required == ["since"]
    assert failing_flow.fn.__globals__ is globals()
    # Prefect's default version (the hash of the function's file) and entrypoint, not the boundary's.
    assert failing_flow.version == file_hash(__file__)
    assert failing_flow._entrypoint == f"{__name__}:failing_flow"
    # Task keys are qualname + code hash: each task keeps its own.
    assert len({read_sync.task_key, read_async.task_key, overrunning.task_key}) == 3
    assert read_sync.task_key.startswith("read_sync-")
    assert "return read_bytes(data)" in (read_sync.source_code or "")


def test_a_generator_is_refused() -> None:
    with pytest.raises(TypeError, match="generator"):
        @task
        def rows() -> object:
            yield 1


async def run_logs(flow_run_id: UUID) -> str:
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                      limit=200, offset=0)
    return "\n".join(f"{logging.getLevelName(log.level)} {log.message}" for log in logs)


def assert_nothing_personal(*texts: str) -> None:
    for text in texts:
        for value in (CIVIC, "Ødegård", "\\xd8deg", EMAIL, "kari.odegard"):
            assert value not in text, f"{value!r} in:\n{text}"


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync task", "async task"])
async def test_a_failing_task_leaves_only_the_reduced_error(is_async: bool, caplog: pytest.LogCaptureFixture) -> None:
    state = await failing_task(is_async, return_state=True)

    assert state.is_failed()
    assert f"UnicodeDecodeError: not readable as utf-8 at byte {AT}" in state.message
    logs = await run_logs(state.state_details.flow_run_id)
    assert f"InvalidInput: UnicodeDecodeError: not readable as utf-8 at byte {AT}" in logs
    assert "Traceback" in caplog.text  # the console shows where it happened, not what was read
    assert_nothing_personal(state.message, logs, caplog.text)
    with pytest.raises(InvalidInput):
        await state.result()


@pytest.mark.usefixtures("prefect_harness")
async def test_a_failing_flow_leaves_only_the_reduced_error(caplog: pytest.LogCaptureFixture) -> None:
    # The string annotation is resolved and validated: the wrapper has the module's globals.
    state = await failing_flow("2026-01-15T08:00:00+01:00", return_state=True)
    sync_state = failing_sync_flow(return_state=True)

    assert state.is_failed() and f"UnicodeDecodeError: not readable as utf-8 at byte {AT}" in state.message
    assert sync_state.is_failed() and sync_state.message.endswith("SanitisedError: KeyError")
    logs = await run_logs(state.state_details.flow_run_id) + await run_logs(sync_state.state_details.flow_run_id)
    assert_nothing_personal(state.message, sync_state.message, logs, caplog.text)


@pytest.mark.usefixtures("prefect_harness")
def test_prefects_own_timeout_is_still_a_timeout() -> None:
    assert timing_out() == "TimedOut"
