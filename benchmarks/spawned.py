"""What the benchmarks share about their sandboxes' process: waiting for it to say it is serving."""

from __future__ import annotations

import queue
import time
from multiprocessing.process import BaseProcess
from typing import Any


def first_answer(process: BaseProcess, ready: Any, what: str, timeout: float) -> Any:
    """What the spawned sandboxes put on ``ready`` once they serve; an error if the process died or ``timeout`` ran
    out first (generating a large data set takes minutes, so the wait checks on the process rather than hanging)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ready.get(timeout=0.5)
        except queue.Empty:
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandboxes for {what} did not start") from None
