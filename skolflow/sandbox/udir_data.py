"""The seeded Norwegian synthetic data set Udir's sandbox serves from.

Three schools with Udir's own test organisation numbers, an eksamensplan per period and level (with
one exam only some schools may register for), candidates with valid fødselsnummer and some
D-numbers (check digits from python-stdnum), candidates already registered at another school,
registrations made by hand in PAS, results with every participation status and some complaint
grades, and sensor appointments. The same seed always gives the same data.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from stdnum.no import fodselsnummer

from skolflow.connectors.udir.models import Opplaeringsniva
from skolflow.identity import validate_norwegian_fodselsnummer, validate_norwegian_orgnr

CURRENT_PERIOD = "V-2026"
PREVIOUS_PERIOD = "H-2025"

GIVEN_NAMES = ("Nora", "Emma", "Ingrid", "Sofie", "Maja", "Jakob", "Emil", "Noah", "Oliver", "Filip", "Aksel",
               "Sigrid", "Tiril", "Magnus", "Henrik", "Live", "Ola", "Kari", "Eirik", "Solveig")
FAMILY_NAMES = ("Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
                "Berg", "Haugen", "Hagen", "Bakken", "Dahl", "Lie", "Rønning", "Sæther", "Ødegård")

VGS_EXAMS = ("NOR1211", "NOR1212", "NOR0214", "NOR0215", "NOR1415", "MAT1019", "ENG1002", "SAM3072")
GS_EXAMS = ("MAT0010", "NOR0011", "ENG0012")
REA3015_VARIANTS = ("JAV", "AS", "CS", "DIV")


@dataclass(frozen=True)
class UdirSchool:
    orgnr: str
    name: str
    niva: Opplaeringsniva


@dataclass(frozen=True)
class UdirPeriod:
    kode: str
    pamelding_start: dt.datetime
    pamelding_stopp: dt.datetime
    gjennomforing_start: dt.datetime
    gjennomforing_stopp: dt.datetime


@dataclass(frozen=True)
class PlannedExam:
    """One exam of a period's plan; ``schools`` limits a variant to those schools (empty: every school)."""

    fagkode: str
    niva: Opplaeringsniva
    variant: str | None = None
    schools: frozenset[str] = frozenset()
    day: int = 0  # days after the period's first exam day


@dataclass(frozen=True)
class Candidate:
    fodselsnr: str
    fornavn: str
    etternavn: str
    malform: str
    kandidattype: str
    orgnr: str


@dataclass(frozen=True)
class ManualRegistration:
    """A registration made by hand in PAS (the API must list it too)."""

    orgnr: str
    periode: str
    fagkode: str
    gruppe: str
    fodselsnr: str


@dataclass(frozen=True)
class Result:
    orgnr: str
    periode: str
    fagkode: str
    gruppe: str
    fodselsnr: str
    kandidatnr: str
    deltakelsesstatus: str  # D, IDF, DF, MB, or EA (cancelled exam)
    karakter: int  # 0 without a grade
    klagekarakter: int | None = None
    klagebegrunnelse: str | None = None


@dataclass(frozen=True)
class Appointment:
    orgnr: str
    periode: str
    fodselsnr: str
    fornavn: str
    etternavn: str
    sensor_fagkoder: tuple[str, ...]
    klagenemnd_fagkoder: tuple[str, ...]


@dataclass
class UdirData:
    schools: list[UdirSchool]
    periods: list[UdirPeriod]
    current_period: str
    exams: dict[str, list[PlannedExam]]  # period → plan
    candidates: list[Candidate]
    elsewhere: dict[str, str]  # fødselsnummer → orgnr of the other school the candidate is registered at
    registrations: list[ManualRegistration] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)

    def school(self, orgnr: str) -> UdirSchool | None:
        return next((s for s in self.schools if s.orgnr == orgnr), None)


def fodselsnr(birth: dt.date, individual: int, *, d_number: bool = False) -> str:
    """A valid fødselsnummer (or D-nummer: day + 40) with check digits from python-stdnum."""
    day = birth.day + (40 if d_number else 0)
    base = f"{day:02d}{birth:%m%y}{individual:03d}"
    k1 = fodselsnummer.calc_check_digit1(base)
    k2 = fodselsnummer.calc_check_digit2(base + k1)
    return validate_norwegian_fodselsnummer(base + k1 + k2)


def _unique_fodselsnr(rng: random.Random, used: set[str], year: int, d_number: bool) -> str:
    """Born in ``year``; individual numbers 500–999 for 2000–2039, 000–499 for the 1900s (stdnum's rule)."""
    while True:
        birth = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
        individual = rng.randrange(500, 1000) if year >= 2000 else rng.randrange(0, 500)
        try:
            number = fodselsnr(birth, individual, d_number=d_number)
        except ValueError:  # a check digit of 10: this individual number is never issued
            continue
        if number not in used:
            used.add(number)
            return number


def _period(kode: str) -> UdirPeriod:
    year = int(kode[2:])
    spring = kode.startswith("V")
    start = dt.datetime(year, 5, 15, 9) if spring else dt.datetime(year, 11, 20, 9)
    registration = dt.datetime(year - 1, 12, 1) if spring else dt.datetime(year, 9, 1)
    return UdirPeriod(kode, registration, registration + dt.timedelta(days=60), start, start + dt.timedelta(days=30))


def _plan(schools: list[UdirSchool]) -> list[PlannedExam]:
    plan = [PlannedExam(code, "VGS", day=i) for i, code in enumerate(VGS_EXAMS)]
    plan += [PlannedExam("REA3015", "VGS", variant, day=len(VGS_EXAMS)) for variant in REA3015_VARIANTS]
    plan += [PlannedExam(code, "GS", day=i) for i, code in enumerate(GS_EXAMS)]
    # A school-specific variant: only the last VGS school is responsible for it.
    only = frozenset({[s for s in schools if s.niva == "VGS"][-1].orgnr})
    plan.append(PlannedExam("SAM3073", "VGS", "LOKAL", only, day=2))
    return plan


def generate(students_per_school: int = 12, seed: int = 2026) -> UdirData:
    rng = random.Random(seed)
    schools = [
        UdirSchool(validate_norwegian_orgnr("875561162"), "Sandvik videregående skole", "VGS"),
        UdirSchool(validate_norwegian_orgnr("874546852"), "Fjellheim skole", "GS"),
        UdirSchool(validate_norwegian_orgnr("974589664"), "Nordstrand videregående skole", "VGS"),
    ]
    used: set[str] = set()
    candidates: list[Candidate] = []
    for school in schools:
        year = 2008 if school.niva == "VGS" else 2010
        for index in range(students_per_school):
            privatist = school.niva == "VGS" and index % 6 == 5
            d_number = index % 4 == 3  # every fourth has a D-nummer
            number = _unique_fodselsnr(rng, used, 1995 if privatist else year, d_number)
            candidates.append(Candidate(number, rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES),
                                        "Nynorsk" if index % 5 == 4 else "Bokmal",
                                        "Privatist" if privatist else "Elev", school.orgnr))
    # Candidates of each VGS school already registered at another school this period.
    elsewhere: dict[str, str] = {}
    for school in schools:
        if school.niva == "VGS":
            other = next(s for s in schools if s.niva == "VGS" and s.orgnr != school.orgnr)
            for candidate in candidates_at(candidates, school.orgnr)[:2]:
                elsewhere[candidate.fodselsnr] = other.orgnr
    registrations = [ManualRegistration(school.orgnr, CURRENT_PERIOD, "ENG1002" if school.niva == "VGS" else "ENG0012",
                                        "Manuelt påmeldt", c.fodselsnr)
                     for school in schools for c in candidates_at(candidates, school.orgnr)[-2:]]
    results = _results(rng, schools, candidates)
    appointments = [Appointment(school.orgnr, period, _unique_fodselsnr(rng, used, 1975, False),
                                rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES),
                                sensor, klage)
                    for school in schools for period in (PREVIOUS_PERIOD, CURRENT_PERIOD)
                    for sensor, klage in ((("NOR1211", "ENG1002"), ("NOR1212",)), (("MAT1019",), ()))]
    return UdirData(schools=schools, periods=[_period(PREVIOUS_PERIOD), _period(CURRENT_PERIOD)],
                    current_period=CURRENT_PERIOD,
                    exams={PREVIOUS_PERIOD: _plan(schools), CURRENT_PERIOD: _plan(schools)},
                    candidates=candidates, elsewhere=elsewhere, registrations=registrations,
                    results=results, appointments=appointments)


def candidates_at(candidates: list[Candidate], orgnr: str) -> list[Candidate]:
    return [c for c in candidates if c.orgnr == orgnr]


def _results(rng: random.Random, schools: list[UdirSchool], candidates: list[Candidate]) -> list[Result]:
    """Last period's results: mostly grades, and each participation status at least once per school."""
    results = []
    statuses = ("IDF", "DF", "MB", "EA")
    for school in schools:
        fagkode = "NOR1211" if school.niva == "VGS" else "MAT0010"
        for index, candidate in enumerate(candidates_at(candidates, school.orgnr)):
            status = statuses[index] if index < len(statuses) else "D"
            grade = rng.randint(2, 6) if status == "D" else 0
            complaint = status == "D" and index % 5 == 0
            results.append(Result(school.orgnr, PREVIOUS_PERIOD, fagkode, "Eksamensgruppe 1", candidate.fodselsnr,
                                  f"{100 + index:03d}{school.orgnr[-3:]}-H", status, grade,
                                  min(6, grade + 1) if complaint else None,
                                  "Sensors vurdering opprettholdt delvis." if complaint else None))
    return results


def teacher_fodselsnr(index: int = 0) -> str:
    """A valid fødselsnummer for a responsible teacher (born in 1980), the ``index``-th that exists."""
    found = -1
    for individual in range(100, 500):
        try:
            number = fodselsnr(dt.date(1980, 3, 14), individual)
        except ValueError:
            continue
        found += 1
        if found == index:
            return number
    raise ValueError(index)


def sample_candidates(data: UdirData, orgnr: str) -> list[dict[str, str]]:
    """A school's candidates file (skolflow's CSV columns) as a school would write it, mistakes included.

    Every candidate of the school but the last two takes NOR1211 (the first two are registered at
    another school: Udir answers PameldtAnnenSkole); the next two take NOR0214 and NOR0215 together,
    the fifth REA3015 in variant JAV. Two rows break a rule skolflow checks before sending (NOR0214
    without NOR0215, a fagkode not in the plan). The registrations made by hand in PAS are not in the file.
    """
    teacher = {"ansvarlig_fodselsnummer": teacher_fodselsnr(), "ansvarlig_fornavn": "Turid",
               "ansvarlig_etternavn": "Lærer", "ansvarlig_epost": "turid.laerer@skole.example.no"}
    mine = candidates_at(data.candidates, orgnr)
    rows: list[dict[str, str]] = []

    def add(c: Candidate, fagkode: str, group: str, variant: str = "", with_teacher: bool = True) -> None:
        rows.append({"fodselsnummer": c.fodselsnr, "fornavn": c.fornavn, "etternavn": c.etternavn,
                     "malform": c.malform, "kandidattype": c.kandidattype, "fagkode": fagkode, "variant": variant,
                     "kandidatgruppe": group, **(teacher if with_teacher else {})})

    for candidate in mine[:-2]:
        add(candidate, "NOR1211", "3STA norsk")
    for candidate in mine[2:4]:
        add(candidate, "NOR0214", "3STA sidemål", with_teacher=False)
        add(candidate, "NOR0215", "3STA sidemål", with_teacher=False)
    add(mine[4], "REA3015", "IT2 Java", "JAV")
    add(mine[5], "NOR0214", "3STB sidemål")  # without NOR0215: refused before sending
    add(mine[6], "ABC1234", "Ukjent fag")  # not in the eksamensplan: refused before sending
    return rows
