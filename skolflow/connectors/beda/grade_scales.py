"""Which grade values each school form and course allows: seed 004 (PING PONG Betyg API 1.1.1).

This is the single home of the rule. Beda's sandbox answers with it, and the pipeline checks grades
with it before sending, so the two can never disagree.

- Grundskolan, gymnasieskolan, SFI, komvux, särvux: A–F and "-" ("-" = no grade could be set);
  gymnasiearbetet in gymnasieskolan only E/F/-.
- Gymnasiesärskolan: A–E, "***" and "-"; its gymnasiearbete only E/***/-; courses of the 2002
  curriculum are graded VG/G/***. A Betyg API document does not say which curriculum a GYSAR
  course belongs to, so a GYSAR grade is accepted on either scale, but never mixing the two for
  gymnasiearbetet (which only the current curriculum has).
- Grundsärskolan: A–E and 1.
- Komvux and särvux: a betygsliknande omdöme (orienteringskurs) only G/IG, and only there.
- Yrkeshögskolan: VG/G/IG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHOOL_FORMS = ("GR", "GRSAR", "GY", "GYSAR", "SFI", "SARVUX", "VUX", "YH")

A_TO_F = frozenset({"A", "B", "C", "D", "E", "F", "-"})
GYSAR_CURRENT = frozenset({"A", "B", "C", "D", "E", "***", "-"})
GYSAR_2002 = frozenset({"VG", "G", "***"})
GRSAR = frozenset({"A", "B", "C", "D", "E", "1"})
YH = frozenset({"VG", "G", "IG"})
ASSESSMENT = frozenset({"G", "IG"})
GY_WORK = frozenset({"E", "F", "-"})
GYSAR_WORK = frozenset({"E", "***", "-"})

SCALES: dict[str, frozenset[str]] = {
    "GR": A_TO_F,
    "GY": A_TO_F,
    "GYSAR": GYSAR_CURRENT | GYSAR_2002,
    "GRSAR": GRSAR,
    "SFI": A_TO_F,
    "VUX": A_TO_F,
    "SARVUX": A_TO_F,
    "YH": YH,
}

ASSESSMENT_FORMS = frozenset({"VUX", "SARVUX"})
# Gymnasiearbetet: course codes GYAR + programme code (GYARBF = Barn- och fritidsprogrammet).
GYMNASIEARBETE = re.compile(r"^GYAR[A-ZÅÄÖ]{2,3}$")
# Upper-case letters and digits, optionally ending in lower-case level letters (MATMAT01a, HISHIS01a1).
COURSE_CODE = re.compile(r"^[A-ZÅÄÖ][A-ZÅÄÖ0-9]{1,11}[a-z0-9]{0,3}$")


@dataclass(frozen=True)
class RuleBreak:
    """A grade that breaks a rule: ``rule`` is a stable id, ``field`` the offending field."""

    rule: str
    field: str
    message: str


def is_gymnasiearbete(code: str) -> bool:
    return bool(GYMNASIEARBETE.match(code))


def allowed_values(school_form: str, code: str, assessment: bool = False) -> frozenset[str]:
    """The values a grade may take; empty for a school form Beda does not know."""
    if assessment:
        return ASSESSMENT if school_form in ASSESSMENT_FORMS else frozenset()
    if is_gymnasiearbete(code):
        if school_form == "GY":
            return GY_WORK
        if school_form == "GYSAR":
            return GYSAR_WORK
    return SCALES.get(school_form, frozenset())


def check_grade(school_form: str, code: str, value: str, assessment: bool = False) -> list[RuleBreak]:
    """Every rule the grade breaks, in the order a reader would fix them."""
    if school_form not in SCALES:
        return [RuleBreak("school-form", "skolform", f"okänd skolform {school_form!r}")]
    problems: list[RuleBreak] = []
    if not COURSE_CODE.match(code):
        problems.append(RuleBreak("course-code", "kurskod", f"kurs- eller ämneskoden {code!r} har fel format"))
    if is_gymnasiearbete(code) and school_form not in ("GY", "GYSAR"):
        problems.append(RuleBreak(
            "course-school-form", "kurskod",
            f"gymnasiearbetet {code} kan inte betygsättas i skolform {school_form}"))
    if assessment and school_form not in ASSESSMENT_FORMS:
        problems.append(RuleBreak(
            "assessment-school-form", "omdome",
            f"betygsliknande omdöme finns bara i komvux och särvux, inte i {school_form}"))
    else:
        allowed = allowed_values(school_form, code, assessment)
        if value not in allowed:
            what = "betygsliknande omdöme" if assessment else ("gymnasiearbetet" if is_gymnasiearbete(code)
                                                               else f"skolform {school_form}")
            problems.append(RuleBreak(
                "grade-scale", "betyg",
                f"betyget {value!r} är inte tillåtet för {what} ({code}); tillåtna: {'/'.join(sorted(allowed))}"))
    return problems
