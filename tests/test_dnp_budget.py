"""Issue 13: one DNP rate budget per process, job reads that survive the contract's looseness, 413 halving.

Spacing is checked on the limiters' own decisions (their ``clock`` and ``sleep`` replaced), never on arrival
times at a server, which a busy machine bunches up. The integration tests run Prefect for real against the
sandboxes over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from stdnum import luhn

from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.client import (
    RATE_MARGIN,
    DnpClient,
    DnpError,
    PayloadTooLarge,
    RateBudget,
    bulk_body,
    encode_record,
    shared_budget,
)
from skolflow.connectors.dnp.models import AsynchronousResponse, CivicNo, Enrolment, ObjectReference, Person
from skolflow.connectors.dnp.opendata import DEFAULT_TEST_ACTIVITIES, activity_id, school_unit_id
from skolflow.connectors.dnp.sandbox import create_app
from skolflow.connectors.http import HttpSettings, RateLimiter, RetryPolicy
from skolflow.flows.dnp_provisioning import dnp_provisioning
from skolflow.ledger import Ledger, Outcome
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.tasks.dnp_mapping import activity_record_id
from skolflow.tasks.dnp_steps import (
    PIPELINE,
    STEPS,
    UNKNOWN_STATUS,
    _LedgerWriter,
    _Sending,
    batches_of,
    job_pace,
    record_hash,
    scope_of,
)
from tests.remote import MOCKED_REMOTE
from tests.serving import dnp_expected as expected
from tests.serving import ledger, serving

FAST = HttpSettings(retry=RetryPolicy(attempts=4, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)
BASE = "https://dnp.example.se/provisioning/v1"
TOKEN = "sandbox-token"
DATASET = ds.generate(students=12)
UNIT = school_unit_id(DATASET.school_units[0].code)
WRITE_STEP = 1 / (5 * RATE_MARGIN)
READ_STEP = 1 / (10 * RATE_MARGIN)


def uid() -> str:
    return str(uuid.uuid4())


def student(**changes: Any) -> Person:
    values: dict[str, Any] = {
        "id": uid(), "civic_no": CivicNo(value="20130412123" + luhn.calc_check_digit("130412123")),
        "given_name": "Saga", "family_name": "Nilsson",
        "edu_person_principal_names": [f"{uid()}@edu.sandvik.se"],
        "enrolments": [Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="GR", school_year=6)]}
    return Person(**{**values, **changes})


def accepted(job_id: str | None = None, **headers: str) -> httpx.Response:
    job_id = job_id or uid()
    return httpx.Response(202, json={"jobId": job_id}, headers={"Location": f"{BASE}/persons/bulk/jobs/{job_id}",
                                                                **headers})


class Clock:
    """Time that moves only when a limiter sleeps: what every wait was, and when each call was let through."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(round(seconds, 9))
            self.now += seconds


def frozen(limiter: RateLimiter, waits: list[float], lock: threading.Lock | None = None) -> None:
    """Every call asked for at the same instant (the worst case); ``waits`` collects what the limiter decides."""
    guard = lock or threading.Lock()

    async def wait(seconds: float) -> None:
        with guard:
            waits.append(round(seconds, 9))

    limiter.clock = lambda: 0.0
    limiter.sleep = wait


# --- a step's records on their way -------------------------------------------------------------------------------


@respx.mock
async def test_a_step_turns_each_record_into_json_once_and_keeps_the_bytes_dnp_received(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    people = [student(given_name=f"Elev {n}") for n in range(30)]
    posted: list[bytes] = []
    jobs: dict[str, list[str]] = {}

    def submit(request: httpx.Request) -> httpx.Response:
        posted.append(request.content)
        job_id = uid()
        jobs[job_id] = [record["id"] for record in json.loads(request.content)["data"]]
        return accepted(job_id)

    def status(request: httpx.Request) -> httpx.Response:
        job_id = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"jobId": job_id, "responses": [
            {"id": record_id, "response": {"status": "Success", "statusCode": 201}} for record_id in jobs[job_id]]})

    respx.post(f"{BASE}/persons/bulk").mock(side_effect=submit)
    respx.get(url__regex=rf"{BASE}/persons/bulk/jobs/[^/]+$").mock(side_effect=status)
    turned = 0
    to_wire = Person.to_wire

    def counted(self: Person) -> dict[str, Any]:
        nonlocal turned
        turned += 1
        return to_wire(self)

    monkeypatch.setattr(Person, "to_wire", counted)
    store = Ledger.shared(f"sqlite:///{tmp_path / 'ledger.db'}")
    sending = _Sending("persons", {p.id: p for p in people}, "212000-0142", "run-1", store)
    async with DnpClient(BASE, TOKEN, FAST, budget=RateBudget.of(1000, 1000), max_payload_bytes=4_000) as client:
        job_pace(client).expected = 0.1
        again = await sending.round(client, batches_of(people), fresh=True, last=True)
    await sending.write.flush()  # the ledger's writes run on their own thread; a step ends with this
    sending.write.close()

    assert again == [] and sending.report.accepted == 30 and len(posted) > 1  # several chunks
    assert turned == 30  # once per record: its chunk's size, the body, the ledger's request and content, the hash
    sent = {record["id"]: record for body in posted for record in json.loads(body)["data"]}
    outcomes = store.outcomes(PIPELINE, run_id="run-1")
    assert {o.record_key: json.loads(o.request_body or "") for o in outcomes} == sent
    held = store.sent_state(PIPELINE, scope_of("212000-0142", "persons"), list(sent))
    assert {key: row.content_hash for key, row in held.items()} == {p.id: record_hash(p) for p in people}


async def test_a_step_s_ledger_writes_keep_their_order_and_a_failed_one_is_raised_when_the_step_ends() -> None:
    writer = _LedgerWriter("test-ledger")
    written: list[int] = []

    def broken() -> None:
        raise OSError("disk I/O error")

    writer(written.append, 1)
    writer(broken)
    writer(written.append, 2)
    with pytest.raises(OSError, match="disk I/O error"):
        await writer.flush()
    writer.close()

    assert written == [1, 2]  # what came after the failed write is written all the same


# --- one budget per process ---------------------------------------------------------------------------------------


async def test_every_client_of_one_dnp_host_draws_on_one_budget() -> None:
    async with (DnpClient(BASE, TOKEN, http=FAST) as first, DnpClient(BASE + "/", TOKEN, http=FAST) as second,
                DnpClient("https://apigw-pre.example.se/provisioning/v1", TOKEN, http=FAST) as other_host,
                DnpClient(BASE, TOKEN, http=FAST, budget=RateBudget.of()) as own):
        pass
    assert first.writes is second.writes and first.reads is second.reads
    assert first.budget is shared_budget("HTTPS://dnp.example.se:443/other/path")  # the host, not the path
    assert other_host.writes is not first.writes  # verification and production are counted apart, as DNP does
    assert own.writes is not first.writes  # a test may still give a client its own


async def test_two_steps_clients_are_spaced_as_one() -> None:
    """What earned the 429s: each task's client started a fresh limiter right after the previous step's calls."""
    waits: list[float] = []
    with respx.mock(base_url=BASE) as mock:
        mock.post("/persons/bulk").mock(return_value=accepted())
        mock.post("/persons/bulk/delete").mock(return_value=accepted())
        async with DnpClient(BASE, TOKEN, http=FAST) as step, DnpClient(BASE, TOKEN, http=FAST) as deletion:
            frozen(step.writes, waits)
            await asyncio.gather(*(step.submit("persons", [student()]) for _ in range(3)),
                                 *(deletion.delete("persons", [uid()]) for _ in range(3)))
    assert waits == pytest.approx([WRITE_STEP * n for n in range(1, 6)])  # six calls, six slots, none shared


def test_tasks_on_different_threads_and_event_loops_share_the_budget() -> None:
    """Prefect runs sync and async tasks on other threads and loops: the budget holds across them."""
    waits: list[float] = []
    lock = threading.Lock()
    frozen(shared_budget(BASE).reads, waits, lock)
    errors: list[BaseException] = []

    def task() -> None:
        async def reads() -> None:
            async with DnpClient(BASE, TOKEN, http=FAST) as client:
                await asyncio.gather(*(client.get("persons", uid()) for _ in range(5)))
        try:
            asyncio.run(reads())  # a loop of this thread's own
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    with respx.mock(base_url=BASE) as mock:
        mock.get(url__regex=r"/persons/[^/]+$").mock(return_value=httpx.Response(404, json=[]))
        threads = [threading.Thread(target=task) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert sorted(waits) == pytest.approx([READ_STEP * n for n in range(1, 15)])  # 15 calls, 15 distinct slots


async def test_remaining_zero_on_a_2xx_holds_the_next_call_of_its_class_until_reset() -> None:
    clock = Clock()
    job_id = uid()
    sent_at: list[float] = []

    def at(answer: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: (sent_at.append(clock()), answer)[1]

    with respx.mock(base_url=BASE) as mock:
        mock.post("/persons/bulk").mock(side_effect=at(accepted(
            job_id, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0.8"})))
        mock.get(f"/persons/bulk/jobs/{job_id}/isCompleted").mock(side_effect=at(httpx.Response(200, json=True)))
        mock.get(url__regex=r"/persons/[^/]+$").mock(side_effect=at(httpx.Response(404, json=[])))
        async with DnpClient(BASE, TOKEN, http=FAST, budget=RateBudget.of(clock=clock, sleep=clock.sleep)) as client:
            await client.submit("persons", [student()])
            await client.get("persons", uid())  # reads have their own window: not held
            assert await client.is_completed("persons", job_id)
    assert sent_at == pytest.approx([0.0, 0.0, 0.8])  # not 0.222: DNP said the write window was spent
    assert clock.waits == pytest.approx([0.8])


async def test_remaining_r_lets_r_more_calls_go_before_reset() -> None:
    clock = Clock()
    answers = iter([httpx.Response(404, json=[], headers={"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "0.9"}),
                    httpx.Response(404, json=[]), httpx.Response(404, json=[])])
    with respx.mock(base_url=BASE) as mock:
        mock.get(url__regex=r"/persons/[^/]+$").mock(side_effect=lambda request: next(answers))
        async with DnpClient(BASE, TOKEN, http=FAST, budget=RateBudget.of(clock=clock, sleep=clock.sleep)) as client:
            for _ in range(3):
                await client.get("persons", uid())
    assert clock.waits == pytest.approx([READ_STEP, 0.9 - READ_STEP])  # the second at its slot, the third at reset


async def test_a_hold_learned_while_a_call_waits_moves_that_call_past_reset() -> None:
    """A call that reserved its slot before DNP said the window was spent does not go into it."""
    waits: list[float] = []
    limiter = RateLimiter(4.5, clock=lambda: 0.0)

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 9))
        if len(waits) == 1:  # while the second call waits, an answer says: nothing more until 1 s from now
            limiter.observe(0, 1.0)

    limiter.sleep = sleep
    await limiter.acquire()
    await limiter.acquire()
    assert waits == pytest.approx([1 / 4.5, 1.0])


def test_remaining_zero_without_a_reset_still_holds_one_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(4.5, clock=clock, sleep=clock.sleep)
    asyncio.run(limiter.acquire())
    clock.now = 5.0  # long after: the next call would go at once
    limiter.observe(0, None)
    asyncio.run(limiter.acquire())
    assert clock.waits == pytest.approx([1 / 4.5])


def test_a_reset_runs_from_the_middle_of_the_calls_round_trip() -> None:
    """DNP counted the call somewhere between its sending and its answer: an answer that took long does not add
    the time DNP took to give it to the hold."""
    clock = Clock()
    limiter = RateLimiter(4.5, clock=clock, sleep=clock.sleep)
    clock.now = 10.0
    limiter.observe(0, 0.3, sent_at=9.6)  # sent 0.4 s ago, counted at 9.8 by the estimate: no call before 10.1
    asyncio.run(limiter.acquire())
    assert clock.waits == pytest.approx([0.1])


def test_an_answer_to_a_call_counted_before_the_last_one_heard_from_changes_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(4.5, clock=clock, sleep=clock.sleep)
    clock.now = 10.0
    limiter.observe(3, 0.5, sent_at=9.9)  # the newer news: three more calls may go
    limiter.observe(0, 0.9, sent_at=9.5)  # an older call's answer, read after it: that window has moved on
    asyncio.run(limiter.acquire())
    assert clock.waits == []


def test_a_reset_that_names_a_moment_holds_until_that_moment_however_long_the_answer_took() -> None:
    clock = Clock()
    limiter = RateLimiter(4.5, clock=clock, sleep=clock.sleep)
    clock.now = 10.0
    moment = f"{time.time() + 100:.3f}"  # an epoch time: 100 s from now, on the wall clock
    answer = httpx.Response(202, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": moment})
    limiter.observe_response(answer, sent_at=-100.0)  # the middle of this round trip would be 55 s ago
    asyncio.run(limiter.acquire())
    assert len(clock.waits) == 1 and 99.0 < clock.waits[0] <= 100.001  # the header has milliseconds


# --- tolerant job reads (respx) -----------------------------------------------------------------------------------


def entry(**changes: Any) -> dict[str, Any]:
    return {"id": "3008", "statusCode": 400, "message": "Ogiltigt format på <schoolYear>.", "severityLevel": "Error",
            "timeOfOccurance": "2026-01-19T10:00:00.000+01:00", "attributeName": "Enrolment.schoolYear",
            "attributeValue": 0, **changes}


async def read_job(responses: list[dict[str, Any]]) -> AsynchronousResponse:
    job_id = uid()
    with respx.mock(base_url=BASE) as mock:
        mock.get(f"/persons/bulk/jobs/{job_id}").mock(return_value=httpx.Response(
            200, json={"jobId": job_id, "responses": responses}))
        async with DnpClient(BASE, TOKEN, http=FAST, budget=RateBudget.of()) as client:
            return await client.job("persons", job_id)


async def test_a_log_entry_s_attribute_value_may_be_any_scalar() -> None:
    values = [0, 6.5, True, None, "åk 6", {"min": 1}]
    answer = await read_job([{"id": uid(), "response": {"status": "Error", "statusCode": 400, "errors": [
        entry(attributeValue=value, parameterValue=7) for value in values]}, "meta": {}}])
    errors = answer.responses[0].response.errors
    assert [e.attribute_value for e in errors] == ["0", "6.5", "true", None, "åk 6", '{"min":1}']
    assert errors[0].parameter_value == "7" and answer.responses[0].response.settled == "Error"


async def test_a_status_the_contract_does_not_list_is_read_and_settled_by_what_the_answer_carries() -> None:
    stored, refused, unsettled, known = uid(), uid(), uid(), uid()
    answer = await read_job([
        {"id": stored, "response": {"status": "Queued", "statusCode": 201}, "meta": {}},
        {"id": refused, "response": {"status": "Rejected", "statusCode": 400, "errors": [entry()]}, "meta": {}},
        {"id": unsettled, "response": {"status": "Processing"}, "meta": {}},
        {"id": known, "response": {"status": "Warning", "statusCode": 200, "warnings": [
            entry(severityLevel="Notice", resourceType="Elev")]}, "meta": {}},
    ])
    by_id = {r.id: r.response for r in answer.responses}
    assert by_id[stored].status == "Queued" and not by_id[stored].known  # its text kept
    assert [by_id[i].settled for i in (stored, refused, unsettled, known)] == ["Warning", "Error", "Pending",
                                                                               "Warning"]
    assert by_id[known].warnings[0].severity_level == "Notice"
    assert not answer.is_completed  # a record with no final answer keeps the job open


async def test_a_202_without_job_id_names_the_job_by_its_location() -> None:
    job_id = uid()
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/persons/bulk").mock(side_effect=[
            httpx.Response(202, json={"message": "Anropet har tagits emot."},
                           headers={"Location": f"{BASE}/persons/bulk/jobs/{job_id}"}),
            httpx.Response(202, headers={"Location": f"/persons/bulk/jobs/{job_id}/"}),
            httpx.Response(202, json={"message": "Anropet har tagits emot."})])
        async with DnpClient(BASE, TOKEN, http=FAST, budget=RateBudget.of()) as client:
            assert await client.submit("persons", [student()]) == job_id
            assert await client.submit("persons", [student()]) == job_id  # no body at all
            with pytest.raises(DnpError, match="neither in the answer's jobId nor in a Location"):
                await client.submit("persons", [student()])
    assert route.call_count == 3


# --- 413: halve and resend ----------------------------------------------------------------------------------------


def refusing_over(limit: int, sent: list[list[str]]) -> Callable[[httpx.Request], httpx.Response]:
    """DNP with a lower cap than the client's: 413 (5020) for a body over ``limit`` bytes."""
    def answer(request: httpx.Request) -> httpx.Response:
        ids = [record["id"] for record in json.loads(request.content)["data"]]
        sent.append(ids)
        if len(request.content) > limit:
            return httpx.Response(413, json=[entry(id=rules.PAYLOAD_TOO_LARGE, statusCode=413,
                                                   message="Provisionerade uppgifter överstiger tillåten datamängd.")])
        return accepted()
    return answer


async def test_a_chunk_dnp_answers_413_is_halved_and_each_half_sent() -> None:
    people = [student() for _ in range(5)]
    one = len(json.dumps({"data": [people[0].to_wire()]}))
    sent: list[list[str]] = []
    with respx.mock(base_url=BASE) as mock:
        mock.post("/persons/bulk").mock(side_effect=refusing_over(2 * one + 10, sent))
        async with DnpClient(BASE, TOKEN, http=FAST, budget=RateBudget.of()) as client:
            jobs = await client.submit_chunked("persons", people)
    ids = [p.id for p in people]
    assert sent == [ids, ids[:2], ids[2:], ids[2:3], ids[3:]]  # 5 → 2 + 3 → 3 = 1 + 2
    assert len(jobs) == 3


async def test_a_record_dnp_refuses_alone_is_named() -> None:
    big, small = student(given_name="x" * 3000), student()
    sent: list[list[str]] = []
    with respx.mock(base_url=BASE) as mock:
        mock.post("/persons/bulk").mock(side_effect=refusing_over(2000, sent))
        async with DnpClient(BASE, TOKEN, http=FAST, budget=RateBudget.of()) as client:
            steps = [(len(records), outcome if isinstance(outcome, str) else outcome.status_code)
                     async for records, outcome in client.submit_halving("persons", [small, big])]
            with pytest.raises(PayloadTooLarge, match=big.id):
                await client.submit_chunked("persons", [small, big])
    assert [(n, code if code == 413 else "job") for n, code in steps] == [(2, 413), (1, "job"), (1, 413)]


# --- the sandbox's looseness, over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def loose_sandbox() -> Iterator[str]:
    with SandboxServer() as server:
        yield server.start("dnp", with_faults(create_app(DATASET, token=TOKEN, job_delay_seconds=0.05), "dnp",
                                              FaultConfig()))


async def test_the_client_reads_the_sandbox_at_its_loosest(loose_sandbox: str) -> None:
    pupil, odd, wrong = student(), student(), student(enrolments=[
        Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="GR", school_year=12)])
    big = student(given_name="x" * 3000)
    two = len(bulk_body([encode_record(pupil), encode_record(wrong)]))  # fits; the three together do not
    async with httpx.AsyncClient(base_url=loose_sandbox) as admin:
        await admin.put("/_sandbox/quirks", json={"numeric_attribute_values": True, "accepted_without_job_id": True,
                                                  "max_payload_bytes": two + 20})
        await admin.put("/_sandbox/outcomes", json={odd.id: "Queued"})
    async with DnpClient(loose_sandbox, TOKEN, http=FAST) as client:
        jobs = await client.submit_chunked("persons", [pupil, odd, wrong], update_if_exists=True)
        answers = [await client.wait("persons", job, timeout=10, interval=0.05) for job in jobs]
        with pytest.raises(PayloadTooLarge, match=big.id):
            await client.submit_chunked("persons", [big])
    by_id = {r.id: r.response for a in answers for r in a.responses}
    assert len(jobs) > 1  # the three did not fit the sandbox's lower cap in one call
    assert by_id[pupil.id].settled == "Success"
    assert by_id[odd.id].status == "Queued" and by_id[odd.id].settled == "Warning"
    assert by_id[wrong.id].settled == "Error" and by_id[wrong.id].errors[0].attribute_value == "12"


# --- whole runs, Prefect for real ---------------------------------------------------------------------------------


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[systems.Sandboxes]:
    with serving(ds.generate(students=60, schools=4, seed=13), monkeypatch, tmp_path) as running:
        yield running


def dnp_state(sandboxes: systems.Sandboxes) -> dict[str, Any]:
    return httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()


async def provision(sandboxes: systems.Sandboxes) -> Any:
    return await dnp_provisioning(huvudman=sandboxes.dataset.huvudman_orgnr, return_state=True)


@pytest.mark.usefixtures("prefect_harness")
async def test_runs_with_deletions_earn_no_429(sandboxes: systems.Sandboxes) -> None:
    """Every call of the flow is made one after another, and each waits for the answer before it: with the budget
    shared by every step's client and DNP's Remaining/Reset honoured, a sandbox judging by arrival times on this
    machine's one clock finds no window over its limit, however the machine bunches the calls."""
    first = await provision(sandboxes)
    data = sandboxes.dataset
    held = dnp_state(sandboxes)["records"]
    data.remove_person(next(p for p in data.students() if p.id in held["persons"]).id)
    data.remove_activity(next(a for a in data.activities if any(
        activity_record_id(a.id, activity_id(name)) in held["activities"] for name, _, _ in DEFAULT_TEST_ACTIVITIES)
    ).id)
    second = await provision(sandboxes)

    assert first.is_completed() and second.is_completed(), (first.message, second.message)
    deleted = [o for o in ledger().outcomes(PIPELINE, limit=5000) if o.outcome == Outcome.DELETED]
    assert {o.unit for o in deleted} >= {"persons", "activities"}
    assert dnp_state(sandboxes)["rate_limited"] == 0


@pytest.mark.usefixtures("prefect_harness")
async def test_a_run_survives_dnp_s_looseness(sandboxes: systems.Sandboxes) -> None:
    """Numeric attributeValue, a status DNP's enum does not list, 202s without jobId: the run completes."""
    dnp = sandboxes.urls["dnp"]
    persons = sorted((await expected(sandboxes))["persons"])
    httpx.put(f"{dnp}/_sandbox/quirks", json={"numeric_attribute_values": True, "accepted_without_job_id": True})
    httpx.put(f"{dnp}/_sandbox/outcomes", json={persons[0]: "Queued", persons[1]: "Warning"})

    state = await provision(sandboxes)

    assert state.is_completed(), state.message
    outcomes = {o.record_key: o for o in ledger().outcomes(PIPELINE, limit=5000) if o.unit == "persons"}
    queued, warned = outcomes[persons[0]], outcomes[persons[1]]
    assert queued.outcome == Outcome.ACCEPTED and queued.errors[-1]["kod"] == UNKNOWN_STATUS
    assert "Queued" in queued.errors[-1]["meddelande"]
    assert warned.outcome == Outcome.ACCEPTED and json.loads(warned.response_body or "{}")["response"]["warnings"][0][
        "attributeValue"] == "0"  # sent as the number 0, kept as text
    assert set(dnp_state(sandboxes)["records"]["persons"]) >= {persons[0], persons[1]}


@pytest.mark.usefixtures("prefect_harness")
async def test_a_run_halves_what_dnp_answers_413_and_refuses_alone_what_never_fits(
        sandboxes: systems.Sandboxes) -> None:
    dnp = sandboxes.urls["dnp"]
    httpx.put(f"{dnp}/_sandbox/quirks", json={"max_payload_bytes": 700})  # far below skolflow's own 200 KB

    state = await provision(sandboxes)

    assert state.is_completed(), state.message
    run = ledger().runs(PIPELINE, limit=1)[0]
    refused_calls = [c for kind in STEPS for c in ledger().calls(run.id, kind) if c.status_code == 413]
    assert refused_calls  # DNP said 413, and the step went on
    outcomes = [o for o in ledger().outcomes(PIPELINE, limit=5000) if o.run_id == run.id]
    too_large = [o for o in outcomes if o.errors and o.errors[0]["kod"] == "SF-STORLEK"]
    assert too_large and all(o.outcome == Outcome.REJECTED and "413" in o.errors[0]["meddelande"] for o in too_large)
    held = dnp_state(sandboxes)["records"]
    accepted = {(o.unit, o.record_key) for o in outcomes if o.outcome == Outcome.ACCEPTED}
    assert accepted and all(record_id in held[kind] for kind, record_id in accepted)
    assert not any(o.record_key in held[o.unit] for o in too_large)
