"""The identity join (DESIGN §1): platform GUIDs → personnummer and skolenhetskod, via SS 12000.

Units are few and read once per run; persons are looked up per batch in one call, so a batch of 200
students costs two SS 12000 requests, not 200. Persons are read as :class:`PersonIdentity` (id, civic
number, security marking): a person record is refused only for what the join needs of it. A refused
record is kept, as ``refused`` on the person or unit it would have resolved, so that every student it
concerns is rejected naming the SS 12000 record, the field and the rule — never left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from skolflow.connectors.ss12000.client import Refused, SS12000Client
from skolflow.connectors.ss12000.models import Organisation, PersonIdentity

PROTECTED_MARKINGS = frozenset({"Sekretessmarkering", "Skyddad folkbokföring"})


@dataclass(frozen=True)
class ResolvedPerson:
    id: str
    civic_no: str | None
    security_marking: str | None
    refused: Refused | None = None  # the SS 12000 record could not be read: nothing above is known

    @property
    def protected(self) -> bool:
        return self.security_marking in PROTECTED_MARKINGS


@dataclass(frozen=True)
class ResolvedUnit:
    id: str
    code: str | None
    huvudman_orgnr: str | None  # organisationNumber of the nearest Huvudman above the unit
    refused: Refused | None = None  # the unit's record, or one above it, could not be read


def _digits(orgnr: str | None) -> str:
    return "".join(ch for ch in (orgnr or "") if ch.isdigit())


def units_by_id(organisations: Iterable[Organisation], refused: Iterable[Refused] = ()) -> dict[str, ResolvedUnit]:
    """Every school unit with its huvudman, walking ``parentOrganisation`` up to a Huvudman.

    A refused organisation record resolves to a unit that carries the refusal (it may be a school unit), and a
    unit whose way up passes a refused record carries that one: its huvudman cannot be known.
    """
    orgs = {o.id.lower(): o for o in organisations}
    unreadable = {r.record_id.lower(): r for r in refused if r.record_id}

    def huvudman_of(org: Organisation) -> tuple[str | None, Refused | None]:
        seen: set[str] = set()
        current: Organisation | None = org
        while current is not None and current.id not in seen:
            seen.add(current.id)
            if current.organisationType == "Huvudman":
                return current.organisationNumber, None
            parent = current.parentOrganisation
            if parent and parent.id.lower() in unreadable:
                return None, unreadable[parent.id.lower()]
            current = orgs.get(parent.id.lower()) if parent else None
        return None, None

    units = {key: ResolvedUnit(key, None, None, refusal) for key, refusal in unreadable.items()}
    for key, org in orgs.items():
        if org.organisationType == "Skolenhet":
            units[key] = ResolvedUnit(key, org.schoolUnitCode, *huvudman_of(org))
    return units


async def read_units(ss: SS12000Client) -> dict[str, ResolvedUnit]:
    organisations = [org async for org in ss.organisations()]
    return units_by_id(organisations, ss.refused)


async def resolve_persons(ss: SS12000Client, person_ids: Iterable[str]) -> dict[str, ResolvedPerson]:
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    persons = await ss.lookup_persons(ids, read_as=PersonIdentity)
    asked = {person_id.lower() for person_id in ids}
    resolved = {r.record_id.lower(): ResolvedPerson(r.record_id.lower(), None, None, r)
                for r in ss.refused if r.record_id.lower() in asked}
    resolved.update({p.id.lower(): ResolvedPerson(p.id.lower(), p.civicNo.value if p.civicNo else None,
                                                  p.securityMarking) for p in persons})
    return resolved


def same_orgnr(a: str | None, b: str | None) -> bool:
    return bool(a) and _digits(a)[-10:] == _digits(b)[-10:]
