"""Where skolflow keeps its data and which profile it runs in, from the environment.

Read at the edges (tasks, flows, CLI) only: connectors never see settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx

from skolflow.connectors.http import HttpSettings, RetryPolicy


class Profile(StrEnum):
    SANDBOX = "sandbox"
    TEST = "test"
    PRODUCTION = "production"


DEFAULT_DATA_DIR = Path.home() / ".skolflow"


@dataclass(frozen=True)
class Settings:
    profile: Profile
    data_dir: Path
    database_url: str
    http_timeout: float = 30.0  # seconds per request (SKOLFLOW_HTTP_TIMEOUT)
    http_attempts: int = 6  # tries per request, transient faults only (SKOLFLOW_HTTP_ATTEMPTS)

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("SKOLFLOW_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
        url = os.environ.get("SKOLFLOW_DATABASE_URL") or f"sqlite:///{data_dir / 'ledger.db'}"
        try:
            profile = Profile(os.environ.get("SKOLFLOW_PROFILE", Profile.SANDBOX.value).lower())
        except ValueError as exc:
            allowed = ", ".join(p.value for p in Profile)
            raise ValueError(f"SKOLFLOW_PROFILE must be one of {allowed}") from exc
        return cls(profile=profile, data_dir=data_dir, database_url=url,
                   http_timeout=float(os.environ.get("SKOLFLOW_HTTP_TIMEOUT") or 30.0),
                   http_attempts=int(os.environ.get("SKOLFLOW_HTTP_ATTEMPTS") or 6))

    def http(self) -> HttpSettings:
        """The HTTP behaviour every connector of a run gets (timeouts and retries from the environment)."""
        return HttpSettings(timeout=httpx.Timeout(self.http_timeout, connect=min(10.0, self.http_timeout)),
                            retry=RetryPolicy(attempts=self.http_attempts))
