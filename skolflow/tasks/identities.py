"""The identity join (DESIGN §1): platform GUIDs → personnummer and skolenhetskod, via SS 12000.

Units are few and read once per run; persons are looked up per batch in one call, so a batch of 200
students costs two SS 12000 requests, not 200.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from skolflow.connectors.ss12000.client import SS12000Client
from skolflow.connectors.ss12000.models import Organisation

PROTECTED_MARKINGS = frozenset({"Sekretessmarkering", "Skyddad folkbokföring"})


@dataclass(frozen=True)
class ResolvedPerson:
    id: str
    civic_no: str | None
    security_marking: str | None

    @property
    def protected(self) -> bool:
        return self.security_marking in PROTECTED_MARKINGS


@dataclass(frozen=True)
class ResolvedUnit:
    id: str
    code: str | None
    huvudman_orgnr: str | None  # organisationNumber of the nearest Huvudman above the unit


def _digits(orgnr: str | None) -> str:
    return "".join(ch for ch in (orgnr or "") if ch.isdigit())


def units_by_id(organisations: Iterable[Organisation]) -> dict[str, ResolvedUnit]:
    """Every school unit with its huvudman, walking ``parentOrganisation`` up to a Huvudman."""
    orgs = {o.id.lower(): o for o in organisations}

    def huvudman_of(org: Organisation) -> str | None:
        seen: set[str] = set()
        current: Organisation | None = org
        while current is not None and current.id not in seen:
            seen.add(current.id)
            if current.organisationType == "Huvudman":
                return current.organisationNumber
            parent = current.parentOrganisation
            current = orgs.get(parent.id.lower()) if parent else None
        return None

    return {key: ResolvedUnit(key, org.schoolUnitCode, huvudman_of(org))
            for key, org in orgs.items() if org.organisationType == "Skolenhet"}


async def read_units(ss: SS12000Client) -> dict[str, ResolvedUnit]:
    return units_by_id([org async for org in ss.organisations()])


async def resolve_persons(ss: SS12000Client, person_ids: Iterable[str]) -> dict[str, ResolvedPerson]:
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    persons = await ss.lookup_persons(ids)
    return {p.id.lower(): ResolvedPerson(p.id.lower(), p.civicNo.value if p.civicNo else None, p.securityMarking)
            for p in persons}


def same_orgnr(a: str | None, b: str | None) -> bool:
    return bool(a) and _digits(a)[-10:] == _digits(b)[-10:]
