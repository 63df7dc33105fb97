"""Shared fixtures: ledgers on SQLite and PostgreSQL, and an isolated data directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from skolflow.ledger import Ledger

PG_URL_ENV = "SKOLFLOW_TEST_DATABASE_URL"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"  # what .ci/run sets; a developer's machine may have it


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def pytest_configure(config: pytest.Config) -> None:
    """Use the local PostgreSQL without being told, when it is there: a newcomer's run then skips nothing it need not.

    Set here, before the tests are collected, so the ledger tests and the end-to-end tests see the same answer.
    """
    if not os.environ.get(PG_URL_ENV) and _reachable(LOCAL_POSTGRES):
        os.environ[PG_URL_ENV] = LOCAL_POSTGRES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line on what was skipped and how to run it, rather than a bare count."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    said = "; ".join(f"{count} × {reason}" for reason, count in sorted(reasons.items(), key=lambda r: -r[1]))
    terminalreporter.write_line(f"skipped: {said}. PostgreSQL tests run with {PG_URL_ENV} (or PostgreSQL at "
                                f"{LOCAL_POSTGRES}); .ci/run runs everything.")


def _postgres_url() -> str | None:
    return os.environ.get(PG_URL_ENV)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the user's ~/.skolflow."""
    monkeypatch.setenv("SKOLFLOW_DATA_DIR", str(tmp_path / "skolflow-data"))
    monkeypatch.delenv("SKOLFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("SKOLFLOW_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def _fresh_dnp_budget() -> None:
    """Each test starts with DNP's rate budget as a new process has it: no calls counted, no clock replaced."""
    from skolflow.connectors.dnp.client import forget_budgets

    forget_budgets()


def postgres_schema_url(base_url: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards, so tests never see each other's rows."""
    schema = f"skolflow_test_{uuid.uuid4().hex[:12]}"
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in plain else "?"
    try:
        yield f"{plain}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    base = _postgres_url()
    if not base:
        pytest.skip(f"{PG_URL_ENV} not set: PostgreSQL ledger tests skipped")
    yield from postgres_schema_url(base)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    store = Ledger(ledger_url)
    yield store
    store.engine.dispose()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (a temporary server on SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here; keeps logs quiet
    with prefect_test_harness(server_startup_timeout=120):
        yield
