"""Prefect's embedded server as skolflow's commands use it when no Prefect server is configured.

Without ``PREFECT_API_URL`` every ``skolflow`` command that runs a flow starts Prefect's temporary server on
SQLite. On a fresh machine that server first creates its database, which on a small machine takes longer than
the 20 seconds Prefect waits for it by default, and the first command a newcomer types died with "Timed out while
attempting to connect to ephemeral Prefect API server". :func:`prepare` gives it the time (unless the user chose
a limit) and says what is happening, before Prefect is imported and reads its settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

STARTUP_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# A cold start measured about 40-60 s on a busy 2-core machine; ten minutes leaves room for a slow disk.
COLD_START_SECONDS = "600"


def prepare(console: Console) -> None:
    """Before Prefect is imported: room for a cold start, no telemetry, and a word if the database is new."""
    os.environ.setdefault(STARTUP_TIMEOUT, COLD_START_SECONDS)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here, and none wanted
    path = database_path()
    if path is not None and not path.exists():
        console.print(f"[dim]First start of Prefect's embedded server with {path.parent}: creating its database "
                      f"at {path}. This takes a minute or two on a small machine, once.[/]")


def database_path() -> Path | None:
    """The SQLite file of Prefect's embedded server, or None when runs go to a configured server (or database)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        return None
    url = settings.server.database.connection_url
    text = url.get_secret_value() if url is not None else ""
    if not text:
        return Path(settings.home) / "prefect.db"
    _, _, path = text.partition(":///")
    return Path(path) if text.startswith("sqlite") and path and path != ":memory:" else None
