"""What DNP provisioning reads: the huvudman's SS 12000 source, whole, and DNP's open-data catalogue.

The source is read whole on every run, not by ``meta.modified.after``: DNP replaces a person whole,
so every record must be complete, and a record's content hash against what DNP last accepted makes
an unchanged record cost nothing but the read. Reading whole also tells what left the source (it is
no longer listed), which is what deletions need. The catalogue is public and cached for hours.

Records the client could not read are kept as ``refused`` (id, field, rule), for the mapping to reject in
their step. A refused record has not left the source, so its id counts as present (:meth:`Source.refused_ids`):
what DNP holds of it is never deleted because of a defect in the source.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from prefect.cache_policies import INPUTS, NO_CACHE

from skolflow.blocks import SS12000Credentials
from skolflow.boundary import task
from skolflow.connectors.dnp.opendata import Activity as NationalTest
from skolflow.connectors.dnp.opendata import OpenDataClient
from skolflow.connectors.http import HttpSettings
from skolflow.connectors.ss12000 import Refused, SS12000Client
from skolflow.connectors.ss12000 import models as ss

CATALOGUE_CACHE = dt.timedelta(hours=6)


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
async def read_source(credentials: SS12000Credentials, http: HttpSettings) -> Source:
    async with SS12000Client(credentials.base_url, credentials.token.get_secret_value(), http) as source:
        return Source(
            persons=[p async for p in source.persons()],
            duties=[d async for d in source.duties(end_date_on_or_after=dt.date.today())],
            groups=[g async for g in source.groups(group_type=["Klass", "Undervisning"])],
            activities=[a async for a in source.activities(expand=["syllabus"])],
            school_units=[o async for o in source.organisations(organisation_type="Skolenhet")],
            refused=source.refused,
        )


@task(name="dnp-open-data", cache_policy=INPUTS - "http", cache_expiration=CATALOGUE_CACHE, persist_result=True)
async def read_catalogue(opendata_url: str, huvudman: str, http: HttpSettings) -> Catalogue:
    """Test activities and the huvudman's school units as Skolverket knows them (public data only)."""
    async with OpenDataClient(opendata_url, http) as opendata:
        activities = await opendata.activities()
        organisation = await opendata.organisation_by_code(huvudman, expand_school_units=True)
    units = frozenset(u.id for u in (organisation.schoolUnits or [])) if organisation else frozenset()
    return Catalogue(activities, units)
