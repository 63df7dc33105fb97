"""The rules Udir applies to a registration (seed 001), as pure functions.

Two kinds, answered differently by Udir:

* :func:`request_problems` — checked before Udir accepts a registration at all, answered with 400
  ``ApiError``: a valid period code (well formed, and a period Udir has an eksamensplan for), a valid
  e-mail for errors, valid fødselsnummer (D-numbers included, and those issued from 2032; an H-nummer or
  a synthetic test number is refused by name), fagkoder in the active eksamensplan of the
  registration's opplæringsnivå, kandidatgruppe names unique within a fagkode.
* :func:`subject_rule_breaks` — the special subject rules, checked per candidate while Udir processes
  the registration, answered in the candidate's ``StatusMessage``: NOR0214 and NOR0215 only together,
  NOR1415 never with either, REA3015 only in exactly one of the variants JAV, AS, CS, DIV.

The sandbox answers with these and the pipeline checks candidates with them before sending, so the
two never disagree. Messages mask every fødselsnummer.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from skolflow.connectors.udir.models import EksamensplanResponse, Opplaeringsniva, Pamelding
from skolflow.identity import (
    FODSELSNUMMER_KINDS,
    InvalidIdentity,
    NorwegianKind,
    mask,
    mask_email,
    parse_norwegian_identity,
)

PERIOD_CODE = re.compile(r"[HV]-[0-9]{4}")
# A practical address check (no spaces, one @, a dotted domain): what a mail server could deliver to.
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")

RULE_PERIOD = "eksamensperiodekode"
RULE_EMAIL = "epostadresse-ved-feil"
RULE_FODSELSNUMMER = "fodselsnummer"
RULE_FAGKODE = "fagkode-ikke-i-eksamensplan"
RULE_LEVEL = "fagkode-feil-opplaeringsniva"
RULE_GROUP_NAME = "kandidatgruppenavn-ikke-unikt"
RULE_NOR0214_NOR0215 = "NOR0214-NOR0215-sammen"
RULE_NOR1415 = "NOR1415-uten-NOR0214-NOR0215"
RULE_REA3015 = "REA3015-en-variant"

NOR_PAIR = frozenset({"NOR0214", "NOR0215"})
NOR1415 = "NOR1415"
REA3015 = "REA3015"
REA3015_VARIANTS = frozenset({"JAV", "AS", "CS", "DIV"})
LEVEL_NAMES: dict[Opplaeringsniva, str] = {"GS": "grunnskolen", "VGS": "videregående"}
# Well-formed numbers that name no one in the population register, as Udir's message names them.
REFUSED_KIND_NAMES = {
    NorwegianKind.H_NUMMER: "H-nummer (hjelpenummer)",
    NorwegianKind.SYNTETISK: "syntetisk fødselsnummer (testnummer)",
}


@dataclass(frozen=True)
class Problem:
    """One broken rule. ``fodselsnr`` is the full number (for the caller to key on), never in ``message``."""

    rule: str
    message: str
    fodselsnr: str | None = None
    fagkode: str | None = None
    gruppe: str | None = None


def period_code_problem(code: str) -> Problem | None:
    """``H-YYYY`` (høst) or ``V-YYYY`` (vår)."""
    if PERIOD_CODE.fullmatch(code or ""):
        return None
    return Problem(RULE_PERIOD, f"Eksamensperiodekoden '{code}' er ikke gyldig (H-ÅÅÅÅ eller V-ÅÅÅÅ).")


def unknown_period(code: str) -> Problem:
    """A well-formed code of a period Udir has no eksamensplan for (V-2031, say): no more valid than a malformed one."""
    return Problem(RULE_PERIOD, f"Eksamensperioden {code} finnes ikke i Udirs eksamensplaner.")


def level_name(level: Opplaeringsniva) -> str:
    return f"{LEVEL_NAMES[level]} ({level})"


def fagkode_problem(fagkode: str, plan: EksamensplanResponse, level: Opplaeringsniva | None,
                    period: str) -> Problem | None:
    """A fagkode must be in the plan of the registration's level (``level`` None: of any level).

    Each opplæringsnivå has a plan of its own, and a registration is judged at one: a GS exam (MAT0010)
    in a VGS registration is refused as if it were in no plan at all. The message names the level it
    is in, since the fix is then a different registration, not a corrected code.
    """
    if fagkode in plan.fagkoder(level):
        return None
    elsewhere = plan.levels(fagkode)
    if level is not None and elsewhere:
        return Problem(RULE_LEVEL, f"Fagkoden {fagkode} finnes ikke i eksamensplanen for {level_name(level)} i "
                                   f"{period}: den er en eksamen for "
                                   f"{' og '.join(level_name(other) for other in sorted(elsewhere))}.",
                       fagkode=fagkode)
    return Problem(RULE_FAGKODE, f"Fagkoden {fagkode} finnes ikke i den aktive eksamensplanen for {period}.",
                   fagkode=fagkode)


def email_problem(address: str | None) -> Problem | None:
    """An address for errors is optional; one given must be valid."""
    if address is None or EMAIL.fullmatch(address.strip()):
        return None
    return Problem(RULE_EMAIL, f"Epostadressen for feil '{mask_email(address)}' er ikke gyldig.")


def fodselsnummer_problem(value: str, fagkode: str | None = None) -> Problem | None:
    """A fødselsnummer or D-nummer (skolflow.identity: python-stdnum and Skatteetaten's rule from 2032).

    An H-nummer or a synthetic number is well formed but names no candidate, so the message says which it is:
    the school then knows to look up the candidate's own number rather than hunt for a typo.
    """
    try:
        identity = parse_norwegian_identity(value)
    except InvalidIdentity:
        return Problem(RULE_FODSELSNUMMER, f"Fødselsnummeret {mask(value)} er ikke gyldig.", value, fagkode)
    if identity.kind not in FODSELSNUMMER_KINDS:
        return Problem(RULE_FODSELSNUMMER, f"{mask(value)}: {REFUSED_KIND_NAMES[identity.kind]} kan ikke meldes opp "
                                           "hos Udir; bruk kandidatens fødselsnummer eller D-nummer.", value, fagkode)
    return None


def request_problems(pamelding: Pamelding, plan: EksamensplanResponse | None,
                     school_level: Opplaeringsniva | None = None) -> list[Problem]:
    """Every reason Udir would refuse the whole registration with 400; empty means it is accepted.

    ``plan`` is the period's eksamensplan available to the school, every level of it (None skips the
    checks that need it, for a caller that has not fetched it). The fagkoder are judged at the
    registration's own ``Opplaeringsniva`` or, without one, at the school's (``school_level``; None where
    the caller cannot tell, and then any level's plan will do).
    """
    period = pamelding.eksamens_periode_kode
    malformed = period_code_problem(period)
    problems = [p for p in (malformed, email_problem(pamelding.epostadresse_ved_feil)) if p]
    if plan is not None and malformed is None and period not in plan.perioder():
        problems.append(unknown_period(period))
    judged = plan if plan is not None and period in plan.perioder() else None
    level = pamelding.opplaeringsniva or school_level
    seen_names: set[tuple[str, str]] = set()
    for group in pamelding.kandidatgrupper:
        if judged is not None and (problem := fagkode_problem(group.fagkode, judged, level, period)):
            problems.append(problem)
        name = (group.fagkode, (group.navn or "").strip().casefold())
        if name in seen_names:
            problems.append(Problem(RULE_GROUP_NAME, f"Kandidatgruppenavnet '{group.navn}' er ikke unikt innenfor "
                                                     f"fagkoden {group.fagkode} på skolen.", fagkode=group.fagkode,
                                    gruppe=group.navn))
        seen_names.add(name)
        problems += [p for k in group.kandidater if (p := fodselsnummer_problem(k.fodselsnr, group.fagkode))]
    return problems


@dataclass(frozen=True)
class Registration:
    """One candidate in one subject, as a registration lists it."""

    fodselsnr: str
    fagkode: str
    variant: str | None = None


def registrations(pamelding: Pamelding) -> list[Registration]:
    return [Registration(k.fodselsnr, g.fagkode, g.variant) for g in pamelding.kandidatgrupper for k in g.kandidater]


def subject_rule_breaks(entries: Iterable[Registration]) -> list[Problem]:
    """The special subject rules, per candidate over everything one registration holds for them.

    A break names the candidate and the fagkode it refuses; the candidate's other subjects stand.
    """
    by_candidate: dict[str, list[Registration]] = defaultdict(list)
    for entry in entries:
        by_candidate[entry.fodselsnr].append(entry)
    problems: list[Problem] = []
    for fodselsnr, mine in by_candidate.items():
        codes = {entry.fagkode for entry in mine}
        shown = mask(fodselsnr)
        nor = codes & NOR_PAIR
        if len(nor) == 1:
            (code,) = nor
            problems.append(Problem(RULE_NOR0214_NOR0215, f"Kandidat {shown}: påmelding til {code} krever påmelding "
                                                          "til både NOR0214 og NOR0215.", fodselsnr, code))
        if NOR1415 in codes and nor:
            problems.append(Problem(RULE_NOR1415, f"Kandidat {shown}: påmelding til NOR1415 kan ikke kombineres med "
                                                  "NOR0214 eller NOR0215.", fodselsnr, NOR1415))
        variants = [entry.variant for entry in mine if entry.fagkode == REA3015]
        if variants and (len(variants) != 1 or variants[0] not in REA3015_VARIANTS):
            problems.append(Problem(RULE_REA3015, f"Kandidat {shown}: påmelding til REA3015 krever nøyaktig én av "
                                                  f"variantene {', '.join(sorted(REA3015_VARIANTS))} "
                                                  f"(fikk {', '.join(v or '(ingen)' for v in variants)}).",
                                    fodselsnr, REA3015))
    return problems
