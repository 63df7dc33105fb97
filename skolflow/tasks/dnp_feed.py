"""Persons handed from the SS 12000 read to DNP's persons step while the read goes on.

DNP's call rate is what bounds a first load, so the persons step should not wait for the last page of a source
of tens of thousands of persons. What a person's DNP record needs is read first — the school units and the
current duties (who is staff) — and then each page of persons is mapped as it arrives and handed to the step,
which compares it with what DNP last accepted and sends it in chunks as they fill. Groups and activities need
every person, so they are mapped when the read is done (:meth:`PersonFeed.finish`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable, Sequence

from skolflow.connectors.dnp.models import Person
from skolflow.connectors.dnp.opendata import Activity as NationalTest
from skolflow.connectors.ss12000 import Refused
from skolflow.connectors.ss12000 import models as ss
from skolflow.gcpolicy import long_lived
from skolflow.tasks.dnp_mapping import Mapped, Mapper


class PersonFeed:
    """The reader calls :meth:`begin`, :meth:`add` for each page and, whatever happens, :meth:`end`; the persons
    step iterates over the mapped records, a batch per page, until the end."""

    def __init__(self, test_activities: Sequence[NationalTest], include_units: Collection[str] | None,
                 known_school_units: Collection[str] | None):
        self._tests = test_activities
        self._include_units = include_units or None
        self._known_school_units = known_school_units
        self._mapper: Mapper | None = None
        self._queue: asyncio.Queue[list[Person] | None] = asyncio.Queue()
        self.started = asyncio.Event()  # set once persons can be mapped, or when the read ended before that

    def begin(self, school_units: Iterable[ss.Organisation], duties: Iterable[ss.Duty]) -> None:
        """What every person's mapping needs is read (a selected school unit not among them: SelectionError)."""
        self._mapper = Mapper(school_units, duties, self._tests, include_units=self._include_units,
                              known_school_units=self._known_school_units)
        self.started.set()

    @property
    def began(self) -> bool:
        """Whether persons could be mapped: False when the read ended before the school units and duties were read."""
        return self._mapper is not None

    def add(self, persons: Iterable[ss.Person]) -> None:
        """A page of persons as read: its DNP records go to the step at once."""
        assert self._mapper is not None, "begin() comes first"
        if mapped := self._mapper.persons(persons):
            self._queue.put_nowait(mapped)
        long_lived()  # the source is kept whole until the run ends

    def end(self) -> None:
        """No more persons: the read is done, or failed (then the step sends what it was handed)."""
        self.started.set()
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[list[Person]]:
        while (batch := await self._queue.get()) is not None:
            yield batch

    def finish(self, groups: Iterable[ss.Group], activities: Iterable[ss.ActivityExpanded],
               refused: Iterable[Refused]) -> Mapped:
        """Every record of the source, once it is read whole (:meth:`Mapper.finish`)."""
        assert self._mapper is not None, "begin() comes first"
        return self._mapper.finish(groups, activities, refused)
