"""Artifacts admins read in the Prefect UI. Everything passed here is already masked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)


def artifact_key(*parts: str) -> str:
    """Prefect keys allow lower-case letters, digits and dashes only."""
    text = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() and ch.isascii() else "-" for ch in text).strip("-")


class Progress:
    """A progress artifact that follows a long run."""

    def __init__(self, artifact_id: UUID):
        self.id = artifact_id

    @classmethod
    async def start(cls, description: str) -> Progress:
        return cls(await acreate_progress_artifact(progress=0.0, description=description))

    async def update(self, done: int, total: int) -> None:
        await aupdate_progress_artifact(self.id, progress=100.0 * done / total if total else 100.0)


async def table(key: str, rows: Sequence[dict[str, Any]], description: str) -> None:
    await acreate_table_artifact(key=key, table=list(rows) or [{"": "inga rader"}], description=description)


async def markdown(key: str, text: str, description: str) -> None:
    await acreate_markdown_artifact(key=key, markdown=text, description=description)
