"""DNP's rules for what the provisioning service accepts: pure, shared by the sandbox and the pipeline.

The rules are those the OpenAPI's tags and schemas state (schemas/dnp/dnp-provisioning-api.yaml) and
CHANGELOG 1.3.2: school types GR, SP, SAM, GY, VUXGY only; exactly one EPPN per person and not one a
student's and a staff member's record share; e-mail required for staff; ``schoolYear`` required for GR,
SP and SAM and ``educationCode`` for GY; ``civicNo`` a personnummer, samordningsnummer or temporary
``ÅÅÅÅMMDDTFxx``; groups of type ``Klass`` or ``Undervisning`` only; activities of type
``Undervisning`` whose ``parentActivity`` is one of Skolverket's test activities; references to
persons, duties and groups that exist (a group's missing student is a warning since 1.3.2).

Codes: Skolverket publishes only a few LogEntry codes (those in the OpenAPI's examples, kept here
under their numbers: 3047, 2010, 2011, 2025, 3085, 4001, 5002, 5020, 5021, 5022, 5004). For the other
rules Skolverket's codes are not public, so they carry skolflow's codes, prefixed ``SF`` so that they
can never be mistaken for Skolverket's; the messages follow the wording of Skolverket's examples.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from skolflow.connectors.dnp.models import (
    Activity,
    Duty,
    Group,
    LogEntry,
    ObjectType,
    Person,
    Severity,
)
from skolflow.identity import InvalidIdentity, Rule, mask, parse_swedish_identity

SCHOOL_TYPES = ("GR", "SP", "SAM", "GY", "VUXGY")
SCHOOL_YEAR_REQUIRED = ("GR", "SP", "SAM")
EDUCATION_CODE_REQUIRED = ("GY",)
GROUP_TYPES = ("Klass", "Undervisning")
ACTIVITY_TYPE = "Undervisning"
DUTY_ROLES = (
    "Rektor", "Lärare", "Förskollärare", "Barnskötare", "Bibliotekarie", "Lärarassistent", "Fritidspedagog",
    "Annan personal", "Studie- och yrkesvägledare", "Förstelärare", "Kurator", "Skolsköterska", "Skolläkare",
    "Skolpsykolog", "Speciallärare/specialpedagog", "Skoladministratör", "Övrig arbetsledning",
)
SCHOOL_YEAR_RANGE = range(1, 11)

# Skolverket's own codes, as its OpenAPI shows them.
EPPN_GUIDELINE_WARNING = "3047"
BODY_ID_FORMAT = "2010"
PATH_ID_FORMAT = "2011"
UPDATE_IF_EXISTS_FORMAT = "2025"
LIMIT_INVALID = "3085"
NOT_FOUND = "4001"
TOKEN_INVALID = "5002"
UNKNOWN_ERROR = "5004"
PAYLOAD_TOO_LARGE = "5020"
TOO_MANY_REQUESTS = "5021"
SERVICE_UNAVAILABLE = "5022"

# skolflow's codes for the rules whose Skolverket codes are not public.
CIVIC_NO_INVALID = "SF1001"
NATIONALITY_INVALID = "SF1002"
EPPN_COUNT = "SF1003"
EPPN_FORMAT = "SF1004"
EPPN_TAKEN = "SF1005"
EMAIL_REQUIRED = "SF1006"
SCHOOL_TYPE_INVALID = "SF1007"
SCHOOL_YEAR_REQUIRED_CODE = "SF1008"
SCHOOL_YEAR_INVALID = "SF1009"
EDUCATION_CODE_REQUIRED_CODE = "SF1010"
SCHOOL_UNIT_UNKNOWN = "SF1011"
DUTY_ROLE_INVALID = "SF1012"
PERSON_MISSING = "SF1013"
STUDENT_AS_STAFF = "SF1014"
GROUP_TYPE_INVALID = "SF1015"
MEMBER_MISSING = "SF1016"
ACTIVITY_TYPE_INVALID = "SF1017"
TEST_ACTIVITY_UNKNOWN = "SF1018"
GROUP_MISSING = "SF1019"
DUTY_MISSING = "SF1020"
GROUPS_EMPTY = "SF1021"
ALREADY_EXISTS = "SF1022"
RECORD_INVALID = "SF1023"

INVALID_VALUE = "Ogiltigt värde"
INVALID_FORMAT = "Ogiltigt format"
MISSING_VALUE = "Värde saknas"
POOR_VALUE = "Bristfälligt värde"
MISSING_REFERENCE = "Referens saknas"

_TEMPORARY = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})TF[0-9]{2}")
_EPPN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Violation:
    """One broken rule, before it is dated and tied to a record as a :class:`LogEntry`."""

    code: str
    message_type: str
    message: str
    attribute_name: str
    attribute_value: str | None = None
    severity: Severity = "Error"
    status_code: int = 400

    def to_log_entry(self, resource_type: ObjectType, resource_id: str, at: dt.datetime) -> LogEntry:
        return LogEntry(id=self.code, status_code=self.status_code, message_type=self.message_type,
                        message=self.message, resource_type=resource_type, resource_id=resource_id,
                        attribute_name=self.attribute_name, attribute_value=self.attribute_value,
                        severity_level=self.severity, time_of_occurance=at.isoformat(timespec="milliseconds"))


def errors(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "Error"]


def warnings(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "Warning"]


def civic_no_kind(value: str) -> str:
    """``personnummer``, ``samordningsnummer`` or ``tillfälligt personnummer``; InvalidIdentity otherwise.

    DNP's contract: "12 siffror utan separatorer", so a separated or ten-digit number is a rule break, not
    normalised; personnummer and samordningsnummer are skolflow.identity's wire form (its one policy), an
    interimistiskt nummer is refused there. The temporary number is DNP's own standard ``ÅÅÅÅMMDDTFxx``, exactly
    so written and starting with a real date; any other letters in the serial are not DNP's standard.
    """
    temporary = _TEMPORARY.fullmatch(value)
    if temporary:
        year, month, day = (int(part) for part in temporary.groups())
        try:
            dt.date(year, month, day)
        except ValueError:
            raise InvalidIdentity(f"{mask(value)}: a temporary number must start with a valid date",
                                  Rule.DATE) from None
        return "tillfälligt personnummer"
    return str(parse_swedish_identity(value, wire=True).kind)


def _school_unit(attribute: str, unit_id: str, school_units: Collection[str] | None) -> list[Violation]:
    if school_units is None or unit_id in school_units:
        return []
    return [Violation(SCHOOL_UNIT_UNKNOWN, INVALID_VALUE,
                      f"Ogiltigt värde på <{attribute}>. Skolenheten finns inte i provtjänsten; använd Skolverkets "
                      "UUID för skolenheten från open-data API.", attribute, unit_id)]


def _school_type(attribute: str, value: str) -> list[Violation]:
    if value in SCHOOL_TYPES:
        return []
    return [Violation(SCHOOL_TYPE_INVALID, INVALID_VALUE,
                      f"Ogiltigt värde på <{attribute}>. Tillåtna utbildningsformer är GR, SP, SAM, GY och VUXGY.",
                      attribute, value)]


def eppn_follows_guidelines(person: Person) -> bool:
    """False when the EPPN holds the family name's first three letters, or two of it and two of the given name.

    That is Skolverket's warning 3047 (the OpenAPI's example): the record is accepted, but the EPPN
    should be changed.
    """
    local = person.edu_person_principal_names[0].partition("@")[0].lower() if person.edu_person_principal_names else ""
    family, given = person.family_name.lower(), person.given_name.lower()
    marks = [family[:3]] if len(family) >= 3 else []
    if len(family) >= 2 and len(given) >= 2:
        marks += [family[:2] + given[:2], given[:2] + family[:2]]
    return not any(mark in local for mark in marks)


def person_violations(person: Person, school_units: Collection[str] | None = None) -> list[Violation]:
    """What is wrong with one Person on its own. ``school_units``: Skolverket's ids, when known."""
    found: list[Violation] = []
    try:
        civic_no_kind(person.civic_no.value)
    except InvalidIdentity:
        found.append(Violation(CIVIC_NO_INVALID, INVALID_FORMAT,
                               "Ogiltigt format på <civicNo>. Värdet ska vara ett svenskt personnummer, "
                               "samordningsnummer eller tillfälligt personnummer (ÅÅÅÅMMDDTFxx) med 12 tecken "
                               "utan avgränsare.", "civicNo.value", mask(person.civic_no.value)))
    if (person.civic_no.nationality or "SE") != "SE":
        found.append(Violation(NATIONALITY_INVALID, INVALID_VALUE,
                               "Ogiltigt värde på <civicNo.nationality>. För närvarande tas endast personnummer "
                               "utfärdade i Sverige emot; värdet ska vara SE.", "civicNo.nationality",
                               person.civic_no.nationality))
    eppns = person.edu_person_principal_names
    if len(eppns) != 1:
        found.append(Violation(EPPN_COUNT, INVALID_VALUE,
                               "Ogiltigt värde på <eduPersonPrincipalNames>. Listan ska innehålla exakt ett "
                               "federationsanvändarnamn.", "eduPersonPrincipalNames", str(len(eppns))))
    elif not _EPPN.fullmatch(eppns[0]):
        found.append(Violation(EPPN_FORMAT, INVALID_FORMAT,
                               "Ogiltigt format på <eduPersonPrincipalName>. Värdet ska bestå av en lokalt unik "
                               "identifierare, ett '@' och en domän.", "eduPersonPrincipalNames", eppns[0]))
    elif not eppn_follows_guidelines(person):
        found.append(Violation(EPPN_GUIDELINE_WARNING, POOR_VALUE,
                               "Bristfälligt värde på Federationsanvändarnamn, värdet innehåller de tre första "
                               "bokstäverna i efternamnet, eller de två första bokstäverna i efternamnet och de två "
                               "första bokstäverna i förnamnet. Uppdatera värdet så att det följer Skolverkets "
                               "riktlinjer för EPPN, se https://www.skolverket.se/skolutveckling/"
                               "digitala-nationella-prov/overforing-av-uppgifter-till-skolverket/eppn.",
                               "eppn", eppns[0], severity="Warning"))
    enrolments = person.enrolments or []
    if not enrolments and not any(email.value for email in person.emails or []):
        found.append(Violation(EMAIL_REQUIRED, MISSING_VALUE,
                               "Värde saknas för <emails>. E-postadress är obligatoriskt för skolpersonal.",
                               "emails"))
    for index, enrolment in enumerate(enrolments):
        prefix = f"enrolments[{index}]"
        found += _school_type(f"{prefix}.schoolType", enrolment.school_type)
        found += _school_unit(f"{prefix}.enroledAt.id", enrolment.enroled_at.id, school_units)
        if enrolment.school_year is None:
            if enrolment.school_type in SCHOOL_YEAR_REQUIRED:
                found.append(Violation(SCHOOL_YEAR_REQUIRED_CODE, MISSING_VALUE,
                                       "Värde saknas för <schoolYear>. Årskurs måste anges för utbildningsformerna "
                                       "GR, SP och SAM.", f"{prefix}.schoolYear"))
        elif enrolment.school_year not in SCHOOL_YEAR_RANGE:
            found.append(Violation(SCHOOL_YEAR_INVALID, INVALID_FORMAT,
                                   "Ogiltigt format på <schoolYear>. Årskurs ska vara ett tal mellan 1 och 10.",
                                   f"{prefix}.schoolYear", str(enrolment.school_year)))
        if enrolment.school_type in EDUCATION_CODE_REQUIRED and not enrolment.education_code:
            found.append(Violation(EDUCATION_CODE_REQUIRED_CODE, MISSING_VALUE,
                                   "Värde saknas för <educationCode>. Studievägskod måste anges för "
                                   "utbildningsformen GY.", f"{prefix}.educationCode"))
    return found


def eppn_violations(person: Person, holders: Mapping[str, str]) -> list[Violation]:
    """An EPPN another person already holds (``holders``: EPPN → person id) is refused.

    A student and a staff member are different Person records, so this is also what keeps a
    student's EPPN and a staff member's apart.
    """
    return [Violation(EPPN_TAKEN, INVALID_VALUE,
                      "Ogiltigt värde på <eduPersonPrincipalName>. Federationsanvändarnamnet används redan av en "
                      "annan person; elev och personal ska ha olika eduPersonPrincipalName.",
                      "eduPersonPrincipalNames", eppn)
            for eppn in person.edu_person_principal_names if holders.get(eppn, person.id) != person.id]


def duty_violations(duty: Duty, school_units: Collection[str] | None = None) -> list[Violation]:
    found = _school_unit("dutyAt.id", duty.duty_at.id, school_units)
    if duty.duty_role not in DUTY_ROLES:
        found.append(Violation(DUTY_ROLE_INVALID, INVALID_VALUE,
                               "Ogiltigt värde på <dutyRole>. Värdet ska finnas i värdeförrådet Code_DutyRole.",
                               "dutyRole", duty.duty_role))
    return found


def duty_reference_violations(duty: Duty, persons: Mapping[str, Person]) -> list[Violation]:
    """The duty's person must exist and must not be a student (a student's EPPN cannot carry a duty)."""
    person = persons.get(duty.person.id)
    if person is None:
        return [Violation(PERSON_MISSING, MISSING_REFERENCE,
                          "Personen som tjänstgöringen refererar till finns inte i provtjänsten. Överför personen "
                          "innan tjänstgöringen.", "person.id", duty.person.id)]
    if person.enrolments:
        return [Violation(STUDENT_AS_STAFF, INVALID_VALUE,
                          "Personen som tjänstgöringen refererar till är inskriven som elev. Skolpersonal ska ha ett "
                          "annat eduPersonPrincipalName än elever.", "person.id", duty.person.id)]
    return []


def group_violations(group: Group, school_units: Collection[str] | None = None) -> list[Violation]:
    found = _school_type("schoolType", group.school_type)
    found += _school_unit("organisation.id", group.organisation.id, school_units)
    if group.group_type not in GROUP_TYPES:
        found.append(Violation(GROUP_TYPE_INVALID, INVALID_VALUE,
                               "Ogiltigt värde på <groupType>. Endast grupper av typen Klass och Undervisning tas "
                               "emot av provtjänsten.", "groupType", group.group_type))
    return found


def group_reference_violations(group: Group, persons: Collection[str]) -> list[Violation]:
    """Members that do not exist: a warning since 1.3.2 (the group is accepted without them)."""
    return [Violation(MEMBER_MISSING, MISSING_REFERENCE,
                      "Eleven som gruppmedlemskapet refererar till finns inte i provtjänsten. Gruppen har accepterats "
                      "utan eleven; överför gruppen igen när eleven finns i provtjänsten.",
                      f"groupMemberships[{index}].person.id", membership.person.id, severity="Warning")
            for index, membership in enumerate(group.group_memberships or []) if membership.person.id not in persons]


def activity_violations(activity: Activity, test_activities: Collection[str] | None = None,
                        school_units: Collection[str] | None = None) -> list[Violation]:
    """``test_activities``: Skolverket's ids of its test activities (open-data API), when known."""
    found = _school_unit("organisation.id", activity.organisation.id, school_units)
    if activity.activity_type != ACTIVITY_TYPE:
        found.append(Violation(ACTIVITY_TYPE_INVALID, INVALID_VALUE,
                               "Ogiltigt värde på <activityType>. Endast aktiviteter av typen Undervisning tas emot "
                               "av provtjänsten.", "activityType", activity.activity_type))
    if not activity.groups:
        found.append(Violation(GROUPS_EMPTY, MISSING_VALUE,
                               "Värde saknas för <groups>. En aktivitet ska ha minst en grupp.", "groups"))
    if test_activities is not None and activity.parent_activity.id not in test_activities:
        found.append(Violation(TEST_ACTIVITY_UNKNOWN, INVALID_VALUE,
                               "Ogiltigt värde på <parentActivity.id>. Provaktiviteten finns inte i provtjänsten; "
                               "hämta provaktivitetens UUID från open-data API.", "parentActivity.id",
                               activity.parent_activity.id))
    return found


def activity_reference_violations(activity: Activity, groups: Collection[str],
                                  duties: Collection[str]) -> list[Violation]:
    found = [Violation(GROUP_MISSING, MISSING_REFERENCE,
                       "Gruppen som aktiviteten refererar till finns inte i provtjänsten. Överför gruppen innan "
                       "aktiviteten.", f"groups[{index}].id", ref.id)
             for index, ref in enumerate(activity.groups) if ref.id not in groups]
    found += [Violation(DUTY_MISSING, MISSING_REFERENCE,
                        "Tjänstgöringen som aktiviteten refererar till finns inte i provtjänsten. Överför "
                        "tjänstgöringen innan aktiviteten.", f"teachers[{index}].duty.id", teacher.duty.id)
              for index, teacher in enumerate(activity.teachers or []) if teacher.duty.id not in duties]
    return found
