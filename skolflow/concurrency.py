"""Awaiting several independent calls at once, without leaving any of them unwatched."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def all_of(*calls: Awaitable[Any]) -> tuple[Any, ...]:
    """Await ``calls`` together and return their results; the first failure is raised once all have ended.

    (``asyncio.gather`` would raise it while the others still run, unwatched: a listing still being read from a
    client that its caller has already closed.)
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return tuple(results)
