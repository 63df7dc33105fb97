"""Which schools Skola24 → Haldor syncs: a TOML file, one ``[[school]]`` table per school.

A new school is added by adding a table: no code changes. Example (README § Skola24 → Haldor)::

    [[school]]
    name = "Norra grundskolan"
    domain = "sandvik.skola24.se"
    school_guid = "4c3e…"
    match = "email"            # or "personnummer"
    haldor_school = "haldor-12345678"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from skolflow.errors import sanitise
from skolflow.tasks.timetable import MatchKey


class SchoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    domain: str
    school_guid: str
    match: MatchKey = MatchKey.EMAIL
    haldor_school: str


class SchoolConfigError(ValueError):
    """The schools file is missing or a school in it is not described right."""


def schools_file(data_dir: Path) -> Path:
    return Path(os.environ.get("SKOLFLOW_SKOLA24_SCHOOLS") or data_dir / "skola24-haldor.toml")


def load_schools(path: Path) -> list[SchoolConfig]:
    if not path.exists():
        raise SchoolConfigError(f"no schools configured: {path} does not exist (see README § Skola24 → Haldor)")
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8")).get("school", [])
    except tomllib.TOMLDecodeError as exc:
        raise SchoolConfigError(f"{path}: {exc}") from exc
    schools = []
    for index, table in enumerate(tables):
        try:
            schools.append(SchoolConfig.model_validate(table))
        except ValidationError as exc:
            raise SchoolConfigError(f"{path}: school {index + 1} ({table.get('name', '?')}): {sanitise(exc)}") \
                from None
    if not schools:
        raise SchoolConfigError(f"{path} lists no [[school]]")
    return schools


def dump_schools(schools: list[SchoolConfig]) -> str:
    """The TOML a user would write by hand for these schools (used by the demo and `skolflow sandbox`)."""
    blocks = []
    for school in schools:
        lines = ["[[school]]"] + [f'{key} = "{value}"' for key, value in school.model_dump(mode="json").items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
