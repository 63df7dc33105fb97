"""Content hashes and per-record diffs: what makes a rerun send only what changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any


def content_hash(content: Any) -> str:
    """SHA-256 of canonical JSON: the same content always gives the same hash, whatever the key order."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Diff:
    added: list[Any] = field(default_factory=list)
    changed: list[tuple[Any, Any]] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def summary(self) -> str:
        return f"+{len(self.added)} ~{len(self.changed)} -{len(self.removed)}"


def diff_items(previous: Iterable[Any], current: Iterable[Any], key: Callable[[Any], Hashable]) -> Diff:
    """Compare two complete lists by ``key``: anything in ``previous`` but not ``current`` was removed.

    This is the Betyg API's full-list semantics: a grade missing from a later list has been deleted.
    """
    before = {key(item): item for item in previous}
    after = {key(item): item for item in current}
    return Diff(
        added=[item for k, item in after.items() if k not in before],
        changed=[(before[k], item) for k, item in after.items() if k in before and before[k] != item],
        removed=[item for k, item in before.items() if k not in after],
    )
