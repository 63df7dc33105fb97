"""Fewer pauses of Python's cyclic garbage collector while a run holds tens of thousands of records.

CPython collects its oldest generation each time the long-lived objects have grown by a quarter, and such a
collection visits every tracked object. A run that reads and keeps a large source grows by a quarter again and
again: measured in DNP provisioning at 40,000 students, some twenty full collections of up to 0.7 s each, 5 s in
all, every one a pause of the event loop in which no call to DNP goes out although its rate would allow one. Two
remedies while a run holds its records: a larger threshold for the youngest generation makes collections of
every generation rarer, and :func:`long_lived` (called as pages of records are kept) moves what exists into the
permanent generation, which collections do not visit, so that each one looks only at what is new since. The
records are freed by reference counting as before; cycles among frozen objects wait for the end of the run.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 100_000  # CPython's default is 700 allocations between collections of the youngest generation

_lock = threading.Lock()
_holders = 0
_before: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the youngest generation's threshold while the block runs, and let :func:`long_lived` freeze; runs side
    by side in one process share it, and the last to leave unfreezes and puts back what was there before."""
    global _holders, _before
    with _lock:
        if _holders == 0:
            _before = gc.get_threshold()
            gc.set_threshold(max(YOUNG_THRESHOLD, _before[0]), *_before[1:])
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _before is not None:
                gc.set_threshold(*_before)
                gc.unfreeze()


def long_lived() -> None:
    """What exists now stays for the run: later collections need not visit it (inside :func:`fewer_collections`)."""
    with _lock:
        if _holders:
            gc.freeze()
