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


def _postgres_url() -> str | None:
    return os.environ.get(PG_URL_ENV)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the user's ~/.skolflow."""
    monkeypatch.setenv("SKOLFLOW_DATA_DIR", str(tmp_path / "skolflow-data"))
    monkeypatch.delenv("SKOLFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("SKOLFLOW_PROFILE", raising=False)


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
