"""Where skolflow keeps its data and which profile it runs in, from the environment.

Read at the edges (tasks, flows, CLI) only: connectors never see settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from skolflow.connectors.http import HttpSettings, RetryPolicy
from skolflow.errors import SafeError
from skolflow.guard import Door, Profile

__all__ = ["Profile", "Settings", "SettingsError"]


class SettingsError(SafeError, ValueError):
    """An environment variable holds what skolflow cannot use; the message names the variable and what it takes."""


def _number(name: str, kind: type[int] | type[float], default: float) -> Any:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name} must be a {'whole ' if kind is int else ''}number, not {value!r}") from None
    if number <= 0:
        raise SettingsError(f"{name} must be more than 0, not {value!r}")
    return number

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
        except ValueError:
            allowed = ", ".join(p.value for p in Profile)
            raise SettingsError(f"SKOLFLOW_PROFILE must be one of {allowed}") from None
        return cls(profile=profile, data_dir=data_dir, database_url=url,
                   http_timeout=_number("SKOLFLOW_HTTP_TIMEOUT", float, 30.0),
                   http_attempts=_number("SKOLFLOW_HTTP_ATTEMPTS", int, 6))

    def http(self, confirm_production: bool = False) -> HttpSettings:
        """The HTTP behaviour every connector of a run gets: timeouts and retries from the environment, and the
        production guard for this profile, which every request the clients send passes (see skolflow.guard)."""
        return HttpSettings(timeout=httpx.Timeout(self.http_timeout, connect=min(10.0, self.http_timeout)),
                            retry=RetryPolicy(attempts=self.http_attempts),
                            door=Door(self.profile, confirm_production))
