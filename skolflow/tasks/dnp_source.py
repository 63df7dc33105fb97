"""What DNP provisioning reads: the huvudman's SS 12000 source, whole or by change, and DNP's open-data catalogue.

A **full read** (:func:`read_source`) reads every record: DNP replaces a person whole, so every record must be
complete, and a record's content hash against what DNP last accepted makes an unchanged record cost nothing but
the read. Reading whole also tells what left the source (it is no longer listed), which is what deletions need.

An **incremental read** (:func:`read_changes`) asks only for the persons whose ``meta.modified`` is after the
watermark, and whether anything else changed: groups, activities, duties or school units modified after it, or
anything listed in ``/deletedEntities`` after it. Persons are nearly all of the source (tens of thousands against
hundreds of the rest), so that is where a full read spends its time. The current duties and school units are read
whole (a page or two) and the staff they name looked up by id, since a duty needs its person's record. When more
than persons changed, :attr:`Changes.full_read_because` says what, and the flow reads the source whole instead:
an incremental read never guesses at what a group or an activity depends on.

The catalogue is public and cached for hours.

Records the client could not read are kept as ``refused`` (id, field, rule), for the mapping to reject in
their step. A refused record has not left the source, so its id counts as present (:meth:`Source.refused_ids`):
what DNP holds of it is never deleted because of a defect in the source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect.cache_policies import INPUTS, NO_CACHE

from skolflow.blocks import SS12000Credentials
from skolflow.boundary import task
from skolflow.concurrency import all_of
from skolflow.connectors.dnp.opendata import Activity as NationalTest
from skolflow.connectors.dnp.opendata import OpenDataClient
from skolflow.connectors.http import HttpSettings
from skolflow.connectors.ss12000 import Refused, SS12000Client
from skolflow.connectors.ss12000 import models as ss
from skolflow.tasks.dnp_feed import PersonFeed

CATALOGUE_CACHE = dt.timedelta(hours=6)
FEED_PAGE = 200  # persons mapped and handed to the persons step at a time: a DNP write holds some 370
T = TypeVar("T")


@dataclass
class Source:
    persons: list[ss.Person]
    duties: list[ss.Duty]
    groups: list[ss.Group]
    activities: list[ss.ActivityExpanded]
    school_units: list[ss.Organisation]
    refused: list[Refused] = field(default_factory=list)

    def refused_ids(self, path: str) -> set[str]:
        """The ids of the records of one endpoint (``"/persons"``, ``"/activities"``, …) that could not be read."""
        return {r.record_id for r in self.refused if r.path == path and r.record_id}


@dataclass(frozen=True)
class Catalogue:
    test_activities: list[NationalTest]
    school_units: frozenset[str]  # Skolverket's ids of the huvudman's school units


@task(name="ss12000-read-source", cache_policy=NO_CACHE, persist_result=False)
async def read_source(credentials: SS12000Credentials, http: HttpSettings, feed: PersonFeed | None = None) -> Source:
    """Every listing at once: the persons' pages take most of the time, and the rest is read meanwhile.

    With ``feed``, the school units and duties are read first and each page of persons is handed to the feed as
    it arrives, so that they can be sent while the rest is read; the feed is ended however the read ends.
    """
    try:
        async with SS12000Client(credentials.base_url, credentials.token.get_secret_value(), http) as source:
            persons_listed = source.persons()
            duties_listed = source.duties(end_date_on_or_after=dt.date.today())
            units_listed = source.organisations(organisation_type="Skolenhet")
            groups_listed = source.groups(group_type=["Klass", "Undervisning"])
            activities_listed = source.activities(expand=["syllabus"])
            if feed is None:
                persons, duties, groups, activities, units = await all_of(
                    _all(persons_listed), _all(duties_listed), _all(groups_listed), _all(activities_listed),
                    _all(units_listed))
            else:
                duties, units = await all_of(_all(duties_listed), _all(units_listed))
                feed.begin(units, duties)
                persons, groups, activities = await all_of(
                    _fed(persons_listed, feed), _all(groups_listed), _all(activities_listed))
            return Source(persons=persons, duties=duties, groups=groups, activities=activities, school_units=units,
                          refused=source.refused)
    finally:
        if feed is not None:
            feed.end()


async def _fed(persons: AsyncIterator[ss.Person], feed: PersonFeed) -> list[ss.Person]:
    """Every person, handed to ``feed`` :data:`FEED_PAGE` at a time as they are read."""
    everyone: list[ss.Person] = []
    page: list[ss.Person] = []
    async for person in persons:
        page.append(person)
        if len(page) == FEED_PAGE:
            feed.add(page)
            everyone += page
            page = []
    if page:
        feed.add(page)
        everyone += page
    return everyone


async def _all(records: AsyncIterator[T]) -> list[T]:
    return [record async for record in records]


@dataclass
class Changes:
    """What an incremental read found: the persons changed since the watermark, and what they need around them.

    ``duties`` and ``school_units`` are the source's current ones, read whole; ``staff`` the persons those duties
    name who are not among ``persons`` (looked up by id); ``refused`` what the client could not read.
    ``full_read_because`` is set when something besides persons changed: then these changes are not enough.
    """

    persons: list[ss.Person]
    duties: list[ss.Duty]
    school_units: list[ss.Organisation]
    staff: list[ss.Person] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    full_read_because: str | None = None

    def source(self) -> Source:
        """As a :class:`Source` of the changed persons, the staff and the duties (no groups, no activities)."""
        return Source(persons=[*self.persons, *self.staff], duties=self.duties, groups=[], activities=[],
                      school_units=self.school_units, refused=self.refused)


async def _any(records: AsyncIterator[Any]) -> bool:
    """Whether a listing has a first record; the rest is not read."""
    async with aclosing(records) as listing:  # type: ignore[type-var]
        async for _ in listing:
            return True
    return False


# What /deletedEntities lists that DNP provisioning reads.
DELETED_KINDS: tuple[ss.EntityType, ...] = ("Person", "Duty", "Group", "Activity", "Organisation")


@task(name="ss12000-read-changes", cache_policy=NO_CACHE, persist_result=False)
async def read_changes(credentials: SS12000Credentials, http: HttpSettings, since: dt.datetime) -> Changes:
    """The persons modified after ``since``, the current duties and school units, and the staff they name."""
    async with SS12000Client(credentials.base_url, credentials.token.get_secret_value(), http) as source:
        persons = [p async for p in source.persons(meta_modified_after=since)]
        duties = [d async for d in source.duties(end_date_on_or_after=dt.date.today())]
        units = [o async for o in source.organisations(organisation_type="Skolenhet")]
        changes = Changes(persons=persons, duties=duties, school_units=units)
        deleted = await source.deleted_entities(after=since, entities=DELETED_KINDS)
        gone = {kind: len(deleted.ids(kind)) for kind in DELETED_KINDS if deleted.ids(kind)}
        if gone:
            changes.full_read_because = "removed from the source: " + ", ".join(f"{n} {k}" for k, n in gone.items())
        elif await _any(source.groups(meta_modified_after=since)):
            changes.full_read_because = "groups changed"
        elif await _any(source.activities(meta_modified_after=since)):
            changes.full_read_because = "activities changed"
        elif await _any(source.duties(meta_modified_after=since)):
            changes.full_read_because = "duties changed"
        elif await _any(source.organisations(meta_modified_after=since)):
            changes.full_read_because = "organisations changed"
        if changes.full_read_because is None:
            changed = {p.id for p in persons}
            wanted = sorted({d.person.id for d in duties if d.person is not None} - changed)
            changes.staff = list(await source.lookup_persons(wanted)) if wanted else []
        changes.refused = list(source.refused)
    return changes


@task(name="dnp-open-data", cache_policy=INPUTS - "http", cache_expiration=CATALOGUE_CACHE, persist_result=True)
async def read_catalogue(opendata_url: str, huvudman: str, http: HttpSettings) -> Catalogue:
    """Test activities and the huvudman's school units as Skolverket knows them (public data only)."""
    async with OpenDataClient(opendata_url, http) as opendata:
        activities = await opendata.activities()
        organisation = await opendata.organisation_by_code(huvudman, expand_school_units=True)
    units = frozenset(u.id for u in (organisation.schoolUnits or [])) if organisation else frozenset()
    return Catalogue(activities, units)
