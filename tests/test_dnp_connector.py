"""DNP connectors: rules (pure), open-data ids, client (respx) and client against the sandboxes over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx
import yaml
from stdnum import luhn

from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.client import (
    MAX_PAYLOAD_BYTES,
    RATE_MARGIN,
    DnpClient,
    DnpError,
    JobTimeout,
    PayloadTooLarge,
    chunk_by_size,
    encode_record,
)
from skolflow.connectors.dnp.models import (
    RECORD_MODELS,
    Activity,
    AsynchronousResponse,
    CivicNo,
    Duty,
    DutyAssignment,
    Email,
    Enrolment,
    Group,
    GroupMembership,
    LogEntry,
    ObjectReference,
    Person,
)
from skolflow.connectors.dnp.opendata import (
    DEFAULT_TEST_ACTIVITIES,
    OpenDataClient,
    activity_id,
    organisation_id,
    school_unit_id,
    skolverket_id,
)
from skolflow.connectors.dnp.opendata_sandbox import create_app as create_opendata_app
from skolflow.connectors.dnp.sandbox import create_app
from skolflow.connectors.http import HttpSettings, RateLimiter, RetryPolicy
from skolflow.sandbox.dataset import generate
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.tasks.dnp_steps import describe
from tests.remote import MOCKED_REMOTE

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "dnp"
API = yaml.safe_load((SCHEMAS / "dnp-provisioning-api.yaml").read_text(encoding="utf-8"))
FAST = HttpSettings(retry=RetryPolicy(attempts=4, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)
BASE = "https://dnp.example.se/provisioning/v1"
TOKEN = "sandbox-token"
DATASET = generate(students=12)
UNIT = school_unit_id(DATASET.school_units[0].code)
PARENT = activity_id("MA åk 6")


def conforms(definition: str, body: Any) -> None:
    """``body`` is valid against the official OpenAPI's schema ``definition``."""
    jsonschema.validate(body, {**API, "$ref": f"#/components/schemas/{definition}"})


def pnr(birth: str, serial: str = "123") -> str:
    return birth + serial + luhn.calc_check_digit(birth[2:] + serial)


def uid() -> str:
    return str(uuid.uuid4())


def student(**changes: Any) -> Person:
    values: dict[str, Any] = {
        "id": uid(), "civic_no": CivicNo(value=pnr("20130412")), "given_name": "Saga", "family_name": "Nilsson",
        "edu_person_principal_names": [f"{uid()}@edu.sandvik.se"],
        "enrolments": [Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="GR", school_year=6)]}
    return Person(**{**values, **changes})


def staff(**changes: Any) -> Person:
    values: dict[str, Any] = {
        "id": uid(), "civic_no": CivicNo(value=pnr("19800501", "456")), "given_name": "Hugo",
        "family_name": "Berg", "edu_person_principal_names": [f"{uid()}@sandvik.se"],
        "emails": [Email(value="hugo.berg@sandvik.se", type="Skola personal")]}
    return Person(**{**values, **changes})


def duty(person: Person, **changes: Any) -> Duty:
    values = {"id": uid(), "person": ObjectReference(id=person.id), "duty_at": ObjectReference(id=UNIT),
              "duty_role": "Lärare"}
    return Duty(**{**values, **changes})


def group(members: list[Person], **changes: Any) -> Group:
    values = {"id": uid(), "display_name": "6A", "group_type": "Klass", "school_type": "GR",
              "organisation": ObjectReference(id=UNIT),
              "group_memberships": [GroupMembership(person=ObjectReference(id=m.id)) for m in members]}
    return Group(**{**values, **changes})


def activity(groups: list[Group], duties: list[Duty], **changes: Any) -> Activity:
    values = {"id": uid(), "display_name": "Matematik 6A", "activity_type": "Undervisning",
              "groups": [ObjectReference(id=g.id) for g in groups], "organisation": ObjectReference(id=UNIT),
              "parent_activity": ObjectReference(id=PARENT),
              "teachers": [DutyAssignment(duty=ObjectReference(id=d.id)) for d in duties]}
    return Activity(**{**values, **changes})


def codes(violations: list[rules.Violation]) -> list[str]:
    return [v.code for v in violations]


# --- models against the official OpenAPI ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RECORD_MODELS))
def test_models_carry_the_openapi_s_property_names(kind: str) -> None:
    schemas = API["components"]["schemas"]
    name = {"persons": "Person", "duties": "Duty", "groups": "Group", "activities": "Activity"}[kind]
    if name == "Group":
        expected = set(schemas["GroupFragment"]["properties"]) | set(schemas["Group"]["allOf"][1]["properties"])
    else:
        expected = set(schemas[name]["properties"])
    aliases = {f.alias or n for n, f in RECORD_MODELS[kind].model_fields.items()}
    assert aliases == expected


def test_records_built_here_are_valid_for_the_official_schema() -> None:
    person = student()
    conforms("Person", person.to_wire())
    conforms("Person", staff().to_wire())
    conforms("Duty", duty(person).to_wire())
    grp = group([person])
    conforms("Group", grp.to_wire())
    conforms("Activity", activity([grp], []).to_wire())


# --- rules (pure) ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("school_type", rules.SCHOOL_TYPES)
def test_the_five_dnp_school_types_are_accepted(school_type: str) -> None:
    enrolment = Enrolment(enroled_at=ObjectReference(id=UNIT), school_type=school_type, school_year=3,
                          education_code="NATNAT")
    assert rules.person_violations(student(enrolments=[enrolment]), {UNIT}) == []


@pytest.mark.parametrize("school_type", ["GRAN", "FKLASS", "VUX", "gr"])
def test_other_school_types_are_refused(school_type: str) -> None:
    enrolment = Enrolment(enroled_at=ObjectReference(id=UNIT), school_type=school_type, school_year=3)
    assert codes(rules.person_violations(student(enrolments=[enrolment]))) == [rules.SCHOOL_TYPE_INVALID]
    grp = group([], school_type=school_type)
    assert codes(rules.group_violations(grp)) == [rules.SCHOOL_TYPE_INVALID]


@pytest.mark.parametrize("school_type", ["GR", "SP", "SAM"])
def test_school_year_is_required_for_gr_sp_and_sam(school_type: str) -> None:
    enrolment = Enrolment(enroled_at=ObjectReference(id=UNIT), school_type=school_type)
    found = rules.person_violations(student(enrolments=[enrolment]))
    assert codes(found) == [rules.SCHOOL_YEAR_REQUIRED_CODE]
    assert found[0].attribute_name == "enrolments[0].schoolYear"


def test_school_year_is_one_to_ten_and_not_required_for_gy_or_vuxgy() -> None:
    gy = Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="GY", education_code="NATNAT")
    vux = Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="VUXGY")
    assert rules.person_violations(student(enrolments=[gy, vux])) == []
    eleven = Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="GR", school_year=11)
    assert codes(rules.person_violations(student(enrolments=[eleven]))) == [rules.SCHOOL_YEAR_INVALID]


def test_education_code_is_required_for_gy_only() -> None:
    gy = Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="GY")
    assert codes(rules.person_violations(student(enrolments=[gy]))) == [rules.EDUCATION_CODE_REQUIRED_CODE]


def test_a_person_has_exactly_one_well_formed_eppn() -> None:
    assert codes(rules.person_violations(student(edu_person_principal_names=[]))) == [rules.EPPN_COUNT]
    two = [f"{uid()}@edu.sandvik.se", f"{uid()}@edu.sandvik.se"]
    assert codes(rules.person_violations(student(edu_person_principal_names=two))) == [rules.EPPN_COUNT]
    assert codes(rules.person_violations(student(edu_person_principal_names=["no-domain"]))) == [rules.EPPN_FORMAT]


def test_an_eppn_made_of_the_name_is_skolverket_s_warning_3047() -> None:
    found = rules.person_violations(student(edu_person_principal_names=["nilsaga01@edu.sandvik.se"]))
    assert codes(found) == [rules.EPPN_GUIDELINE_WARNING] and found[0].severity == "Warning"
    assert rules.errors(found) == []


def test_a_steps_table_shows_an_eppn_masked_as_an_email_address_is() -> None:
    """An EPPN is often made of the name (the 3047 warning above): the Prefect artifact shows no more of it than
    of an e-mail address, for a person's row and for the row of a duty that names them."""
    saga = student(edu_person_principal_names=["saga.nilsson@edu.sandvik.se"])
    hugo = staff(edu_person_principal_names=["hugo.berg@sandvik.se"])
    person_row, duty_row = describe(saga, {}), describe(duty(hugo), {hugo.id: hugo})
    assert person_row["eppn"] == "s***@edu.sandvik.se"
    assert duty_row["eppn"] == "h***@sandvik.se"
    shown = json.dumps([person_row, duty_row]).lower()
    assert not any(name in shown for name in ("saga", "nilsson", "hugo", "berg@"))


def test_an_eppn_another_person_holds_is_refused() -> None:
    teacher = staff()
    holders = {teacher.edu_person_principal_names[0]: teacher.id}
    same_eppn = student(edu_person_principal_names=teacher.edu_person_principal_names)
    assert codes(rules.eppn_violations(same_eppn, holders)) == [rules.EPPN_TAKEN]
    assert rules.eppn_violations(teacher, holders) == []  # resending oneself is no conflict


def test_e_mail_is_required_for_staff_not_for_students() -> None:
    assert codes(rules.person_violations(staff(emails=None))) == [rules.EMAIL_REQUIRED]
    assert codes(rules.person_violations(staff(emails=[]))) == [rules.EMAIL_REQUIRED]
    assert rules.person_violations(staff()) == []
    assert rules.person_violations(student(emails=None)) == []


@pytest.mark.parametrize(("value", "kind"), [
    (pnr("20130412"), "personnummer"),
    (pnr("20130472"), "samordningsnummer"),
    ("20090127TF20", "tillfälligt personnummer"),
    ("20090127TF12", "tillfälligt personnummer"),
])
def test_civic_numbers_dnp_accepts(value: str, kind: str) -> None:
    assert rules.civic_no_kind(value) == kind
    assert rules.person_violations(student(civic_no=CivicNo(value=value))) == []


@pytest.mark.parametrize("value", [
    pnr("20130412")[:-1] + str((int(pnr("20130412")[-1]) + 1) % 10),  # wrong check digit
    pnr("20130412")[2:],  # ten digits
    pnr("20130412")[:8] + "-" + pnr("20130412")[8:],  # separator
    "20090231TF20",  # no such date
    "20090127TX20",
])
def test_civic_numbers_dnp_refuses_are_reported_masked(value: str) -> None:
    found = rules.person_violations(student(civic_no=CivicNo(value=value)))
    assert codes(found) == [rules.CIVIC_NO_INVALID]
    assert value not in (found[0].attribute_value or "") and value not in found[0].message


def test_only_swedish_civic_numbers() -> None:
    found = rules.person_violations(student(civic_no=CivicNo(value=pnr("20130412"), nationality="NO")))
    assert codes(found) == [rules.NATIONALITY_INVALID]


def test_references_to_school_units_must_be_skolverket_s_ids() -> None:
    other = skolverket_id("99999999")
    enrolment = Enrolment(enroled_at=ObjectReference(id=other), school_type="GR", school_year=6)
    assert codes(rules.person_violations(student(enrolments=[enrolment]), {UNIT})) == [rules.SCHOOL_UNIT_UNKNOWN]
    assert codes(rules.duty_violations(duty(staff(), duty_at=ObjectReference(id=other)), {UNIT})) == [
        rules.SCHOOL_UNIT_UNKNOWN]


def test_duties_need_an_existing_staff_person_and_a_known_role() -> None:
    teacher, pupil = staff(), student()
    persons = {teacher.id: teacher, pupil.id: pupil}
    assert rules.duty_reference_violations(duty(teacher), persons) == []
    assert codes(rules.duty_reference_violations(duty(staff()), persons)) == [rules.PERSON_MISSING]
    assert codes(rules.duty_reference_violations(duty(pupil), persons)) == [rules.STUDENT_AS_STAFF]
    assert codes(rules.duty_violations(duty(teacher, duty_role="Vaktmästare"))) == [rules.DUTY_ROLE_INVALID]


@pytest.mark.parametrize("group_type", ["Mentor", "Provgrupp", "Schema", "Avdelning", "Personalgrupp", "Övrigt"])
def test_groups_only_klass_or_undervisning(group_type: str) -> None:
    assert codes(rules.group_violations(group([], group_type=group_type))) == [rules.GROUP_TYPE_INVALID]
    assert rules.group_violations(group([], group_type="Undervisning")) == []


def test_a_group_s_missing_student_is_a_warning() -> None:
    here, gone = student(), student()
    found = rules.group_reference_violations(group([here, gone]), {here.id})
    assert codes(found) == [rules.MEMBER_MISSING] and found[0].severity == "Warning"
    assert found[0].attribute_value == gone.id


def test_activities_are_undervisning_under_a_known_test_activity() -> None:
    grp, teacher_duty = group([]), duty(staff())
    known = {PARENT}
    assert rules.activity_violations(activity([grp], [teacher_duty]), known) == []
    assert codes(rules.activity_violations(activity([grp], [], activity_type="Provaktivitet"), known)) == [
        rules.ACTIVITY_TYPE_INVALID]
    unknown = activity([grp], [], parent_activity=ObjectReference(id=activity_id("NOPE")))
    assert codes(rules.activity_violations(unknown, known)) == [rules.TEST_ACTIVITY_UNKNOWN]
    assert codes(rules.activity_violations(activity([], []), known)) == [rules.GROUPS_EMPTY]
    missing = rules.activity_reference_violations(activity([grp], [teacher_duty]), set(), set())
    assert codes(missing) == [rules.GROUP_MISSING, rules.DUTY_MISSING]


def test_a_violation_becomes_a_log_entry_of_the_official_shape() -> None:
    import datetime as dt

    violation = rules.person_violations(staff(emails=None))[0]
    entry = violation.to_log_entry("Person", uid(), dt.datetime.now(dt.UTC))
    conforms("LogEntry", entry.to_wire())
    assert entry.severity_level == "Error" and entry.message.startswith("Värde saknas")


# --- open data --------------------------------------------------------------------------------------------------


def test_skolverket_ids_are_uuid5_of_the_code_in_the_nil_namespace() -> None:
    text = (SCHEMAS / "provisioning-data-api.yaml").read_text(encoding="utf-8")
    examples = re.findall(r"med\s+`\w+`\s+_?([A-Za-z0-9]+)_?\s+får\s+`id`\s+värde\s+_?([0-9a-f-]{36})", text)
    assert len(examples) == 4  # organisation, programme, school unit, test activity
    for code, expected in examples:
        assert skolverket_id(code) == expected == str(uuid.uuid5(uuid.UUID(int=0), code))
    assert organisation_id("556704-4268") == "657ae6a4-2978-5fbe-b357-ba353c0f03b5"


async def test_open_data_client_against_its_sandbox() -> None:
    with SandboxServer() as server:
        url = server.start("dnp-open-data", with_faults(create_opendata_app(DATASET), "dnp", FaultConfig()))
        async with OpenDataClient(url, http=FAST) as client:
            assert await client.alive()
            organisation = await client.organisation_by_code(DATASET.huvudman_orgnr, expand_school_units=True)
            assert organisation is not None and organisation.id == organisation_id(DATASET.huvudman_orgnr)
            assert {u.schoolUnitCode for u in organisation.schoolUnits or []} == {
                u.code for u in DATASET.school_units}
            unit = await client.school_unit_by_code(DATASET.school_units[0].code)
            assert unit is not None and unit.id == UNIT
            assert (await client.school_unit(UNIT)) == unit
            activities = await client.activities()
            assert {a.id for a in activities} == {activity_id(name) for name, _, _ in DEFAULT_TEST_ACTIVITIES}
            assert all(a.id == skolverket_id(a.displayName) for a in activities)
            programme = await client.programme_by_code("EKJURV")
            assert programme is not None and programme.id == "f8bd4423-9693-51ed-a854-6e9984e6c2f7"
            assert await client.school_unit_by_code("00000000") is None
            assert await client.activity(skolverket_id("unknown")) is None


# --- client (respx) ----------------------------------------------------------------------------------------------


def accepted(job_id: str = "3fa85f64-5717-4562-b3fc-2c963f66afa7") -> httpx.Response:
    return httpx.Response(202, json={"jobId": job_id, "message": "Anropet har tagits emot."},
                          headers={"Location": f"{BASE}/persons/bulk/jobs/{job_id}"})


def stamped(times: list[float], answer: httpx.Response) -> Any:
    def record(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return answer

    return record


def frozen(limiter: RateLimiter) -> list[float]:
    """Every call asked for at the same instant; what is returned collects the waits the limiter decides on."""
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(round(seconds, 9))

    limiter.clock = lambda: 0.0
    limiter.sleep = wait
    return waits


async def test_writes_are_spaced_below_five_per_second() -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/persons/bulk").mock(return_value=accepted())
        async with DnpClient(BASE, TOKEN, http=FAST) as client:
            waits, reads = frozen(client.writes), frozen(client.reads)
            await asyncio.gather(*(client.submit("persons", [student()]) for _ in range(6)))
    assert route.call_count == 6 and reads == []
    step = 1 / (5 * RATE_MARGIN)
    assert waits == pytest.approx([step * n for n in range(1, 6)])  # the first at once, then one slot each
    assert all(call.request.headers["Authorization"] == f"Bearer {TOKEN}" for call in route.calls)
    assert route.calls[0].request.url.params["updateIfExists"] == "false"


async def test_reads_have_their_own_faster_limiter() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/persons/lookup").mock(return_value=httpx.Response(200, json=[]))
        async with DnpClient(BASE, TOKEN, http=FAST) as client:
            writes, reads = frozen(client.writes), frozen(client.reads)
            await asyncio.gather(*(client.lookup("persons", [uid()]) for _ in range(5)))
    step = 1 / (10 * RATE_MARGIN)
    assert writes == [] and reads == pytest.approx([step * n for n in range(1, 5)])


async def test_a_token_source_is_awaited_before_each_call() -> None:
    tokens = iter(["one", "two"])

    async def current() -> str:
        return next(tokens)

    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/alive").mock(return_value=httpx.Response(200))
        async with DnpClient(BASE, current, http=FAST) as client:
            assert await client.alive() and await client.alive()
    assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer one", "Bearer two"]


def test_chunks_stay_within_the_cap_and_fill_it() -> None:
    people = [student(given_name="x" * 300) for _ in range(1500)]
    chunks = list(chunk_by_size(people))
    assert [p for chunk in chunks for p in chunk] == people
    sizes = [len(b'{"data":[' + b",".join(encode_record(p) for p in chunk) + b"]}") for chunk in chunks]
    assert max(sizes) <= MAX_PAYLOAD_BYTES
    one = len(encode_record(people[0])) + 1
    assert all(size > MAX_PAYLOAD_BYTES - one for size in sizes[:-1])  # no chunk could have taken one more


def test_chunking_at_the_exact_boundary() -> None:
    records = [{"id": "a" * 8}] * 3  # each {"id":"aaaaaaaa"} is 17 bytes
    exact = len(b'{"data":[]}') + 3 * 17 + 2
    assert [len(c) for c in chunk_by_size(records, exact)] == [3]
    assert [len(c) for c in chunk_by_size(records, exact - 1)] == [2, 1]
    with pytest.raises(PayloadTooLarge):
        list(chunk_by_size([{"id": "a" * 100}], 50))


async def test_a_body_over_the_cap_is_never_sent() -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        route = mock.post("/persons/bulk").mock(return_value=accepted())
        async with DnpClient(BASE, TOKEN, http=FAST) as client:
            with pytest.raises(PayloadTooLarge):
                await client.submit("persons", [student(given_name="x" * 1000) for _ in range(250)])
            jobs = await client.submit_chunked("persons", [student(given_name="x" * 1000) for _ in range(250)])
    assert len(jobs) == route.call_count == 2
    assert all(len(call.request.content) <= MAX_PAYLOAD_BYTES for call in route.calls)


async def test_wait_polls_is_completed_until_done_then_reads_the_job() -> None:
    job_id = uid()
    status = {"jobId": job_id, "responses": [
        {"id": uid(), "response": {"status": "Success", "statusCode": 201}, "meta": {}},
        {"id": uid(), "response": {"status": "Error", "statusCode": 400, "errors": [
            {"id": "SF1006", "statusCode": 400, "message": "Värde saknas för <emails>.", "severityLevel": "Error",
             "timeOfOccurance": "2026-01-19T10:00:00.000+01:00"}]}, "meta": {}}]}
    conforms("AsynchronousResponse", status)
    with respx.mock(base_url=BASE) as mock:
        done = mock.get(f"/persons/bulk/jobs/{job_id}/isCompleted").mock(side_effect=[
            httpx.Response(200, json=False), httpx.Response(200, json=False), httpx.Response(200, json=True)])
        job = mock.get(f"/persons/bulk/jobs/{job_id}").mock(return_value=httpx.Response(200, json=status))
        async with DnpClient(BASE, TOKEN, http=FAST) as client:
            answer = await client.wait("persons", job_id, timeout=10, interval=0.01)
            again = await client.job("persons", job_id)
    assert done.call_count == 3 and job.call_count == 2  # the status is asked for each time, never cached
    assert answer.is_completed and [r.response.status for r in answer.responses] == ["Success", "Error"]
    assert answer.by_status("Error")[0].response.errors[0].id == "SF1006" and again == answer
    assert job.calls[0].request.headers["Cache-Control"] == "no-cache"


async def test_wait_gives_up_after_its_timeout() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get(url__regex=r".*/isCompleted$").mock(return_value=httpx.Response(200, json=False))
        async with DnpClient(BASE, TOKEN, http=FAST) as client:
            with pytest.raises(JobTimeout):
                await client.wait("groups", uid(), timeout=0.3, interval=0.05)


async def test_a_429_is_retried_after_the_wait_the_server_names() -> None:
    too_many = [{"id": "5021", "statusCode": 429, "message": "Den högsta tillåtna antal förfrågningar har uppnåtts.",
                 "severityLevel": "Error", "timeOfOccurance": "2026-01-19T10:00:00.000+01:00"}]
    times: list[float] = []
    answers = iter([httpx.Response(429, json=too_many, headers={"Retry-After": "1"}),
                    httpx.Response(429, json=too_many, headers={"X-RateLimit-Reset": "0.4"}), accepted()])

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return next(answers)

    with respx.mock(base_url=BASE) as mock:
        mock.post("/duties/bulk").mock(side_effect=answer)
        async with DnpClient(BASE, TOKEN, http=FAST) as client:
            assert await client.submit("duties", [duty(staff())]) == "3fa85f64-5717-4562-b3fc-2c963f66afa7"
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 0.4


async def test_errors_carry_skolverket_s_log_entries_masked() -> None:
    civic = pnr("20130412")
    body = [{"id": "2010", "statusCode": 400, "message": f"Ogiltigt format på <civicNos>: {civic}",
             "severityLevel": "Error", "timeOfOccurance": "2026-01-19T10:00:00.000+01:00"}]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/persons/lookup").mock(return_value=httpx.Response(400, json=body))
        async with DnpClient(BASE, TOKEN, http=FAST) as client:
            with pytest.raises(DnpError) as info:
                await client.lookup("persons", civic_nos=[civic])
    assert info.value.status_code == 400 and info.value.codes == ["2010"]
    assert civic not in str(info.value) and civic not in info.value.body


# --- client against the sandbox over real HTTP --------------------------------------------------------------------


@contextlib.contextmanager
def serve(job_delay_seconds: float = 0.05) -> Iterator[str]:
    with SandboxServer() as server:
        yield server.start("dnp", with_faults(create_app(DATASET, token=TOKEN, job_delay_seconds=job_delay_seconds),
                                              "dnp", FaultConfig()))


@pytest.fixture
def sandbox() -> Iterator[str]:
    with serve() as url:
        yield url


def dnp(url: str, **options: Any) -> DnpClient:
    return DnpClient(url, TOKEN, http=FAST, **options)


async def provision(client: DnpClient, kind: Any, records: list[Any], **options: Any) -> AsynchronousResponse:
    return await client.wait(kind, await client.submit(kind, records, **options), timeout=10, interval=0.05)


def outcome(answer: AsynchronousResponse, record_id: str) -> tuple[str, list[str], list[str]]:
    result = next(r for r in answer.responses if r.id == record_id)
    return (result.response.status, [e.id for e in result.response.errors],
            [w.id for w in result.response.warnings])


async def test_each_person_rule_is_answered_as_a_log_entry(sandbox: str) -> None:
    taken = staff()
    cases = {
        rules.SCHOOL_TYPE_INVALID: student(enrolments=[Enrolment(enroled_at=ObjectReference(id=UNIT),
                                                                 school_type="GRAN", school_year=6)]),
        rules.SCHOOL_YEAR_REQUIRED_CODE: student(enrolments=[Enrolment(enroled_at=ObjectReference(id=UNIT),
                                                                       school_type="SP")]),
        rules.EDUCATION_CODE_REQUIRED_CODE: student(enrolments=[Enrolment(enroled_at=ObjectReference(id=UNIT),
                                                                          school_type="GY")]),
        rules.EPPN_COUNT: student(edu_person_principal_names=[]),
        rules.EMAIL_REQUIRED: staff(emails=None),
        rules.CIVIC_NO_INVALID: student(civic_no=CivicNo(value=pnr("20130412")[2:])),
        rules.SCHOOL_UNIT_UNKNOWN: student(enrolments=[Enrolment(enroled_at=ObjectReference(id=uid()),
                                                                 school_type="GR", school_year=6)]),
        rules.EPPN_TAKEN: student(edu_person_principal_names=taken.edu_person_principal_names),
        rules.BODY_ID_FORMAT: student(id="not-a-uuid"),
    }
    fine = [student(civic_no=CivicNo(value="20090127TF20")), student(civic_no=CivicNo(value=pnr("20130472")))]
    async with dnp(sandbox) as client:
        await provision(client, "persons", [taken])
        job_id = await client.submit("persons", [*cases.values(), *fine])
        await client.wait("persons", job_id, timeout=10, interval=0.05)
        await asyncio.sleep(1.0)  # let the client's calls leave the sandbox's rate window before the raw ones
        async with httpx.AsyncClient(base_url=sandbox, headers={"Authorization": f"Bearer {TOKEN}"}) as raw:
            body = (await raw.get(f"/persons/bulk/jobs/{job_id}")).json()
            only_errors = (await raw.get(f"/persons/bulk/jobs/{job_id}", params={"showOnlyError": "true"})).json()
    conforms("AsynchronousResponse", body)
    answer = AsynchronousResponse.model_validate(body)
    for code, person in cases.items():
        status, errors, _ = outcome(answer, person.id)
        assert (status, errors) == ("Error", [code]), code
    assert all(outcome(answer, p.id)[0] == "Success" for p in fine)
    assert len(only_errors["responses"]) == len(cases)
    entry = next(r for r in answer.responses if r.id == cases[rules.EMAIL_REQUIRED].id).response.errors[0]
    assert entry.resource_type == "Person" and entry.severity_level == "Error" and "E-postadress" in entry.message


async def test_references_must_exist_in_order(sandbox: str) -> None:
    teacher, pupil, gone = staff(), student(), student()
    early = duty(teacher)
    klass = group([pupil, gone])
    teaching = duty(teacher)
    async with dnp(sandbox) as client:
        answer = await provision(client, "duties", [early])
        assert outcome(answer, early.id)[:2] == ("Error", [rules.PERSON_MISSING])
        await provision(client, "persons", [teacher, pupil])
        student_duty = duty(pupil)
        answer = await provision(client, "duties", [teaching, student_duty])
        assert outcome(answer, teaching.id)[0] == "Success"
        assert outcome(answer, student_duty.id)[:2] == ("Error", [rules.STUDENT_AS_STAFF])
        answer = await provision(client, "groups", [klass, group([], group_type="Mentor")])
        assert outcome(answer, klass.id) == ("Warning", [], [rules.MEMBER_MISSING])
        assert outcome(answer, answer.responses[1].id)[:2] == ("Error", [rules.GROUP_TYPE_INVALID])
        good = activity([klass], [teaching])
        unknown_parent = activity([klass], [teaching], parent_activity=ObjectReference(id=activity_id("XX åk 1")))
        missing_group = activity([group([])], [teaching])
        answer = await provision(client, "activities", [good, unknown_parent, missing_group])
        assert outcome(answer, good.id)[0] == "Success"
        assert outcome(answer, unknown_parent.id)[:2] == ("Error", [rules.TEST_ACTIVITY_UNKNOWN])
        assert outcome(answer, missing_group.id)[:2] == ("Error", [rules.GROUP_MISSING])
        held = await client.get("activities", good.id)
        assert held is not None and held.parent_activity.id == PARENT


async def test_job_lifecycle_with_warning_and_temporary_error() -> None:
    calm, warned, flaky = student(), student(), student()
    with serve(job_delay_seconds=1.0) as sandbox:
        async with httpx.AsyncClient(base_url=sandbox) as admin:
            await admin.put("/_sandbox/outcomes", json={warned.id: "Warning", flaky.id: "TemporaryError"})
        await check_lifecycle(sandbox, calm, warned, flaky)


async def check_lifecycle(sandbox: str, calm: Person, warned: Person, flaky: Person) -> None:
    async with dnp(sandbox) as client:
        job_id = await client.submit("persons", [calm, warned, flaky])
        pending = await client.job("persons", job_id)
        assert not pending.is_completed and {r.response.status for r in pending.responses} == {"Pending"}
        assert not await client.is_completed("persons", job_id)
        answer = await client.wait("persons", job_id, timeout=10, interval=0.05)
        assert outcome(answer, calm.id)[0] == "Success"
        assert outcome(answer, warned.id)[0] == "Warning" and outcome(answer, warned.id)[2]
        assert outcome(answer, flaky.id)[:2] == ("TemporaryError", [rules.SERVICE_UNAVAILABLE])
        assert await client.get("persons", flaky.id) is None  # a temporary error stores nothing
        assert (await client.get("persons", warned.id)) is not None
        retried = await provision(client, "persons", [flaky])
        assert outcome(retried, flaky.id)[0] == "Success"
        location = next(r for r in retried.responses).response.location
        assert location == f"/persons/{flaky.id}"


async def test_update_if_exists_put_and_delete(sandbox: str) -> None:
    pupil, never = student(), student()
    async with dnp(sandbox) as client:
        await provision(client, "persons", [pupil])
        again = await provision(client, "persons", [pupil])
        assert outcome(again, pupil.id)[:2] == ("Error", [rules.ALREADY_EXISTS])
        renamed = pupil.model_copy(update={"given_name": "Alva"})
        upsert = await provision(client, "persons", [renamed], update_if_exists=True)
        assert outcome(upsert, pupil.id)[0] == "Success" and upsert.responses[0].response.status_code == 200
        put = await client.wait("persons", await client.update("persons", [never]), timeout=10, interval=0.05)
        assert outcome(put, never.id)[:2] == ("Error", [rules.NOT_FOUND])
        assert (await client.get("persons", pupil.id)).given_name == "Alva"
        deleted = await client.wait("persons", await client.delete("persons", [pupil.id, never.id]), timeout=10,
                                    interval=0.05)
        assert outcome(deleted, pupil.id)[0] == "Success"
        assert outcome(deleted, never.id)[:2] == ("Error", [rules.NOT_FOUND])
        assert await client.get("persons", pupil.id) is None
        # the EPPN is free again once its person is deleted
        reused = student(edu_person_principal_names=pupil.edu_person_principal_names)
        assert outcome(await provision(client, "persons", [reused]), reused.id)[0] == "Success"


async def test_lookup_and_paged_list(sandbox: str) -> None:
    people = [student(civic_no=CivicNo(value=pnr("20130412", f"{n:03d}"))) for n in range(1, 6)]  # 000: never issued
    async with dnp(sandbox) as client:
        await provision(client, "persons", people)
        listed = [p async for p in client.list("persons", limit=2)]
        assert {p.id for p in listed} == {p.id for p in people}
        assert all(p.enrolments is None for p in listed)  # the list shows a subset of attributes
        found = await client.lookup("persons", [people[0].id], civic_nos=[people[1].civic_no.value],
                                    eppns=people[2].edu_person_principal_names)
        assert {p.id for p in found} == {p.id for p in people[:3]} and all(p.enrolments for p in found)
        assert await client.lookup("groups", [uid()]) == []
        async with httpx.AsyncClient(base_url=sandbox, headers={"Authorization": f"Bearer {TOKEN}"}) as raw:
            bad = await raw.get("/persons", params={"limit": 101})
    assert bad.status_code == 400 and bad.json()[0]["id"] == rules.LIMIT_INVALID


async def test_a_body_over_200_kb_is_answered_413(sandbox: str) -> None:
    people = [student(given_name="x" * 1000).to_wire() for _ in range(220)]
    async with httpx.AsyncClient(base_url=sandbox, headers={"Authorization": f"Bearer {TOKEN}"}) as raw:
        response = await raw.post("/persons/bulk", json={"data": people})
    assert response.status_code == 413 and response.json()[0]["id"] == rules.PAYLOAD_TOO_LARGE
    conforms("LogEntry", response.json()[0])
    async with dnp(sandbox, max_payload_bytes=10 * MAX_PAYLOAD_BYTES) as client:
        with pytest.raises(DnpError) as info:
            await client.submit("persons", [student(given_name="x" * 1000) for _ in range(220)])
    assert info.value.status_code == 413 and info.value.codes == [rules.PAYLOAD_TOO_LARGE]


async def test_a_wrong_token_is_refused_with_5002(sandbox: str) -> None:
    async with DnpClient(sandbox, "not-the-token", http=FAST) as client:
        with pytest.raises(DnpError) as info:
            await client.submit("persons", [student()])
        assert await client.alive()  # /alive needs no token
    assert info.value.status_code == 403 and info.value.codes == [rules.TOKEN_INVALID]


async def test_a_raw_client_beyond_five_writes_per_second_earns_429(sandbox: str) -> None:
    job_id = uid()
    async with httpx.AsyncClient(base_url=sandbox, headers={"Authorization": f"Bearer {TOKEN}"}) as raw:
        answers = await asyncio.gather(*(raw.get(f"/persons/bulk/jobs/{job_id}/isCompleted") for _ in range(8)))
        reads = await asyncio.gather(*(raw.get("/persons") for _ in range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(404) == 5 and statuses.count(429) == 3
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()[0]["id"] == rules.TOO_MANY_REQUESTS
    assert limited.headers["X-RateLimit-Limit"] == "5" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < float(limited.headers["X-RateLimit-Reset"]) <= 1
    assert all(r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "10" for r in reads)


async def test_dnp_client_spaces_every_call_within_the_stated_limits() -> None:
    """The client's own decisions, not arrival times at a server (which a busy machine bunches up): every write and
    job-status call passes the write limiter, every read the read limiter, and each limiter releases its calls at
    least 1/5 s (writes) and 1/10 s (reads) apart even when all of them are asked for at the same instant."""
    people = [student() for _ in range(8)]
    calls: list[tuple[str, str, str]] = []
    unlimited = create_app(DATASET, token=TOKEN, job_delay_seconds=0.05, write_limit=10_000, read_limit=10_000)
    with SandboxServer() as server:  # a server that does not judge: the client's decisions are what is checked
        sandbox = server.start("dnp", with_faults(unlimited, "dnp", FaultConfig()))
        await _spaced(sandbox, people, calls)


async def _spaced(sandbox: str, people: list[Any], calls: list[tuple[str, str, str]]) -> None:
    async with dnp(sandbox) as client:
        released: dict[str, list[float]] = {"writes": [0.0], "reads": [0.0]}  # the first call of each: at once
        for name in released:
            limiter = getattr(client, name)
            limiter.clock = lambda: 0.0  # every call asked for at the same instant: the worst case

            async def reserved(wait: float, name: str = name) -> None:
                released[name].append(wait)  # released at 0 + wait
            limiter.sleep = reserved
        passing = client._call

        async def call(method: str, path: str, limiter: RateLimiter, **kwargs: Any) -> httpx.Response:
            calls.append((method, path, "writes" if limiter is client.writes else "reads"))
            return await passing(method, path, limiter, **kwargs)

        client._call = call  # type: ignore[method-assign]
        jobs = await asyncio.gather(*(client.submit("persons", [p]) for p in people))
        answers = await asyncio.gather(*(client.wait("persons", j, timeout=30, interval=0.01) for j in jobs))
        await asyncio.gather(*(client.get("persons", p.id) for p in people))
    assert all(a.responses[0].response.status == "Success" for a in answers)
    for method, path, limiter in calls:
        assert limiter == ("writes" if method == "POST" or "/jobs/" in path else "reads"), (method, path)
    assert len(released["writes"]) == sum(1 for *_, name in calls if name == "writes")
    assert len(released["reads"]) == sum(1 for *_, name in calls if name == "reads")
    for name, most in (("writes", 5), ("reads", 10)):
        times = sorted(released[name])
        assert all(times[i + most] - times[i] >= 1.0 for i in range(len(times) - most)), (name, times)


def test_log_entry_model_reads_skolverket_s_example() -> None:
    example = json.loads(API["components"]["responses"]["200_job_status"]["content"]["application/json"]["example"])
    answer = AsynchronousResponse.model_validate(example)
    warning: LogEntry = answer.responses[0].response.warnings[0]
    assert warning.id == rules.EPPN_GUIDELINE_WARNING and warning.time_of_occurance.startswith("2025-08-14")
