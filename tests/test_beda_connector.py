"""Beda connector: client (respx), validation (pure), and client against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx
from stdnum import luhn

from skolflow.connectors.beda import (
    DOKUMENTTYPER,
    PRODUCTION_HOST,
    PRODUCTION_URL,
    BedaClient,
    Examen,
    Kursbetyg,
    Merits,
    validate_merits,
)
from skolflow.connectors.beda.grade_scales import SCHOOL_FORMS
from skolflow.connectors.beda.sandbox import BedaParty, create_app, create_app_for
from skolflow.connectors.beda.validation import field_path, format_errors
from skolflow.connectors.http import AnswerLost, HttpSettings, RemoteError, RetryPolicy
from skolflow.connectors.oauth2 import BearerSession
from skolflow.sandbox.dataset import Dataset, Person, generate
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from tests.remote import MOCKED_REMOTE

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "beda" / "beda-api.json").read_text())
FAST = HttpSettings(retry=RetryPolicy(attempts=6, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)
BASE = "https://beda.example.se"
ORGNR = "212000-0142"
UNIT = "12345678"
TODAY = dt.date.today()
DECIDED = TODAY - dt.timedelta(days=14)
TOMORROW = (TODAY + dt.timedelta(days=1)).isoformat()


def pnr(birth: str, serial: str = "123") -> str:
    """A valid 12-digit number for a birth date YYYYMMDD (day + 60 gives a samordningsnummer)."""
    return birth + serial + luhn.calc_check_digit(birth[2:] + serial)


STUDENT = pnr("20080412")
OTHER = pnr("20080501", "456")


def check_schema(definition: str, body: Any) -> None:
    jsonschema.validate(body, {**SCHEMA, "$ref": f"#/$defs/{definition}"})


def grade(**changes: Any) -> Kursbetyg:
    values = {"skolenhetskod": UNIT, "skolform": "GY", "typ": "kurs", "kod": "MATMAT01a", "betyg": "C",
              "beslutsdatum": DECIDED}
    return Kursbetyg(**{**values, **changes})


def diploma(**changes: Any) -> Examen:
    values = {"skolenhetskod": UNIT, "dokumenttyp": "GY_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE",
              "utfardat": (TODAY - dt.timedelta(days=3)).isoformat(), "studievagskod": "NATNAT",
              "kurser": ["MATMAT01a", "GYARNA"]}
    return Examen(**{**values, **changes})


def token_answer(value: str = "t1", expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "token_type": "Bearer", "expires_in": expires_in})


def beda(base_url: str = BASE, orgnr: str = ORGNR, secret: str = "secret", client_id: str = "client") -> BedaClient:
    return BedaClient(base_url, client_id, secret, orgnr, http=FAST)


STUDENT_PATH = f"/api/v1/anslutningsparter/{ORGNR}/elever/{STUDENT}/meriter"
BATCH_PATH = f"/api/v1/anslutningsparter/{ORGNR}/meriter"


# --- client (respx) -------------------------------------------------------------------------------------------


def test_production_address_is_a_named_constant() -> None:
    assert PRODUCTION_HOST == "gw.api.beda.uhr.se"
    assert httpx.URL(PRODUCTION_URL).host == PRODUCTION_HOST and PRODUCTION_URL.startswith("https://")


async def test_token_is_fetched_once_and_reused() -> None:
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(return_value=token_answer("abc"))
        put = mock.put(STUDENT_PATH).mock(return_value=httpx.Response(200, json={"personnummer": STUDENT,
                                                                                 "status": "GODKAND"}))
        async with beda() as client:
            for _ in range(3):
                assert (await client.put_student(Merits(personnummer=STUDENT, kursbetyg=[grade()]))).accepted
    assert token.call_count == 1 and put.call_count == 3
    assert all(call.request.headers["Authorization"] == "Bearer abc" for call in put.calls)
    form = dict(httpx.QueryParams(token.calls[0].request.content.decode()))
    assert form == {"grant_type": "client_credentials", "client_id": "client", "client_secret": "secret"}


async def test_a_token_fetched_ahead_serves_the_first_call_and_a_refusal_is_left_for_it() -> None:
    asked = asyncio.Event()

    def answers(*responses: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
        remaining = list(responses)

        def answer(request: httpx.Request) -> httpx.Response:
            asked.set()
            return remaining.pop(0)
        return answer

    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(side_effect=answers(token_answer("ahead")))
        put = mock.put(STUDENT_PATH).mock(return_value=httpx.Response(200, json={"personnummer": STUDENT,
                                                                                 "status": "GODKAND"}))
        async with beda() as client, client.token_ahead():
            await asked.wait()  # the block's other work; the token is asked for meanwhile
            assert put.call_count == 0
            await client.put_student(Merits(personnummer=STUDENT, kursbetyg=[grade()]))
    assert token.call_count == 1 and put.calls[0].request.headers["Authorization"] == "Bearer ahead"


async def test_a_token_fetched_ahead_is_one_attempt_and_a_refusal_is_left_for_the_call() -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        # Beda down for the attempt ahead, then refusing the credentials: the call meets the refusal itself.
        token = mock.post("/oauth2/token").mock(side_effect=[
            httpx.Response(503), httpx.Response(401, json={"error": "invalid_client"})])
        api = mock.post(BATCH_PATH)
        async with httpx.AsyncClient(base_url=BASE) as http:
            session = BearerSession("beda", http, FAST.retry, "client", "secret")
            await session.fetch_ahead()  # nothing raised: nothing has asked Beda for anything yet
            assert token.call_count == 1  # and not retried
            with pytest.raises(RemoteError, match="invalid_client"):
                await session.call("POST", BATCH_PATH, BATCH_PATH, json={"elever": []})
    assert token.call_count == 2 and api.call_count == 0


async def test_token_is_refreshed_before_it_expires() -> None:
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(side_effect=[token_answer("one", 0), token_answer("two", 0)])
        get = mock.get(STUDENT_PATH).mock(return_value=httpx.Response(404, json={"fel": []}))
        async with beda() as client:
            await client.get_student(STUDENT)
            await client.get_student(STUDENT)
    assert token.call_count == 2
    assert [call.request.headers["Authorization"] for call in get.calls] == ["Bearer one", "Bearer two"]


async def test_a_401_fetches_a_new_token_and_retries_once() -> None:
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(side_effect=[token_answer("old"), token_answer("new")])
        put = mock.put(STUDENT_PATH).mock(side_effect=[
            httpx.Response(401, json={"fel": [{"kod": "EJ_AUTENTISERAD", "falt": "", "meddelande": "utgången"}]}),
            httpx.Response(200, json={"personnummer": STUDENT, "status": "GODKAND"})])
        async with beda() as client:
            result = await client.put_student(Merits(personnummer=STUDENT, kursbetyg=[]))
    assert result.accepted and token.call_count == 2
    assert [call.request.headers["Authorization"] for call in put.calls] == ["Bearer old", "Bearer new"]


async def test_a_second_401_is_raised_without_the_personnummer() -> None:
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/oauth2/token").mock(return_value=token_answer())
        mock.put(STUDENT_PATH).mock(return_value=httpx.Response(
            401, json={"fel": [{"kod": "EJ_AUTENTISERAD", "falt": "", "meddelande": f"nej för {STUDENT}"}]}))
        async with beda() as client:
            with pytest.raises(RemoteError) as info:
                await client.put_student(Merits(personnummer=STUDENT))
    assert info.value.status_code == 401 and token.call_count == 2
    assert STUDENT not in str(info.value) and STUDENT not in info.value.body and STUDENT not in info.value.url
    assert "20080412-****" in info.value.url and info.value.__suppress_context__


async def test_bad_credentials_are_raised_at_once() -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        token = mock.post("/oauth2/token").mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
        api = mock.post(BATCH_PATH)
        async with beda() as client:
            with pytest.raises(RemoteError, match="invalid_client") as info:
                await client.send_batch([Merits(personnummer=STUDENT)])
    assert info.value.status_code == 401 and token.call_count == 1 and api.call_count == 0
    assert "secret" not in str(info.value)


async def test_batch_results_are_parsed_per_student_in_order() -> None:
    answer = {"resultat": [
        {"personnummer": STUDENT, "status": "GODKAND"},
        {"personnummer": OTHER, "status": "AVVISAD",
         "fel": [{"kod": "BETYG_OGILTIGT", "falt": "kursbetyg[0].betyg", "meddelande": "betyget 'X' …"}]}]}
    check_schema("BatchResponse", answer)
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        route = mock.post(BATCH_PATH).mock(return_value=httpx.Response(200, json=answer))
        async with beda() as client:
            results = await client.send_batch([Merits(personnummer=STUDENT, kursbetyg=[grade()], examen=[diploma()]),
                                               Merits(personnummer=OTHER, kursbetyg=[])])
    assert [r.accepted for r in results] == [True, False]
    assert results[1].fel[0].kod == "BETYG_OGILTIGT" and results[1].fel[0].falt == "kursbetyg[0].betyg"
    sent = json.loads(route.calls[0].request.content)
    check_schema("BatchRequest", sent)
    # Present-and-empty stays present (removes all); absent stays absent (leaves Beda's untouched).
    assert sent["elever"][1] == {"personnummer": OTHER, "kursbetyg": []}
    assert sent["elever"][0]["kursbetyg"][0]["beslutsdatum"] == DECIDED.isoformat()
    assert sent["elever"][0]["kursbetyg"][0]["betygsliknandeOmdome"] is False


async def test_server_errors_are_retried() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(side_effect=[httpx.Response(503), token_answer()])
        route = mock.post(BATCH_PATH).mock(side_effect=[
            httpx.Response(502), httpx.Response(200, json={"resultat": [{"personnummer": STUDENT,
                                                                         "status": "GODKAND"}]})])
        async with beda() as client:
            results = await client.send_batch([Merits(personnummer=STUDENT)])
    assert results[0].accepted and route.call_count == 2


async def test_client_errors_are_raised_with_beda_s_body() -> None:
    body = {"fel": [{"kod": "EJ_BEHORIG", "falt": "orgnr", "meddelande": "klienten rapporterar för en annan part"}]}
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        route = mock.put(STUDENT_PATH).mock(return_value=httpx.Response(403, json=body))
        async with beda() as client:
            with pytest.raises(RemoteError) as info:
                await client.put_student(Merits(personnummer=STUDENT))
    assert route.call_count == 1 and info.value.status_code == 403
    assert json.loads(info.value.body) == body and STUDENT not in str(info.value)


async def test_a_rejected_student_is_a_result_not_an_exception() -> None:
    rejection = {"personnummer": STUDENT, "status": "AVVISAD",
                 "fel": [{"kod": "SKOLENHET_EJ_BEHORIG", "falt": "kursbetyg[0].skolenhetskod", "meddelande": "…"}]}
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        mock.put(STUDENT_PATH).mock(return_value=httpx.Response(422, json=rejection))
        async with beda() as client:
            result = await client.put_student(Merits(personnummer=STUDENT, kursbetyg=[grade()]))
    assert not result.accepted and result.fel[0].kod == "SKOLENHET_EJ_BEHORIG"
    assert result.personnummer == STUDENT  # the key the pipeline records the outcome under, not a masked one


async def test_an_answer_of_the_wrong_shape_is_raised_masked() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        mock.post(BATCH_PATH).mock(return_value=httpx.Response(200, json={"resultat": [{"personnummer": STUDENT}]}))
        async with beda() as client:
            with pytest.raises(RemoteError, match="not a BatchResponse") as info:
                await client.send_batch([Merits(personnummer=STUDENT)])
    assert STUDENT not in str(info.value) and info.value.__suppress_context__


async def test_get_student_reads_merits_or_none() -> None:
    held = {"personnummer": STUDENT, "kursbetyg": [grade().model_dump(mode="json", by_alias=True)], "examen": []}
    with respx.mock(base_url=BASE) as mock:
        mock.post("/oauth2/token").mock(return_value=token_answer())
        mock.get(STUDENT_PATH).mock(return_value=httpx.Response(200, json=held))
        mock.get(f"/api/v1/anslutningsparter/{ORGNR}/elever/{OTHER}/meriter").mock(
            return_value=httpx.Response(404, json={"fel": [{"kod": "ELEV_SAKNAS", "falt": "", "meddelande": ""}]}))
        async with beda() as client:
            merits = await client.get_student(STUDENT)
            missing = await client.get_student(OTHER)
    assert merits is not None and merits.kursbetyg == [grade()] and merits.examen == []
    assert missing is None


async def test_batch_size_is_checked_before_sending() -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        token = mock.post("/oauth2/token").mock(return_value=token_answer())
        async with beda() as client:
            with pytest.raises(ValueError, match="200"):
                await client.send_batch([Merits(personnummer=STUDENT)] * 201)
            assert await client.send_batch([]) == []
    assert token.call_count == 0


def test_party_must_be_a_valid_organisationsnummer() -> None:
    with pytest.raises(ValueError, match="organisationsnummer"):
        BedaClient(BASE, "client", "secret", "212000-0143")


# --- validation (pure) ----------------------------------------------------------------------------------------


def kods(merits: Merits, units: set[str] | None = None) -> list[tuple[str, str]]:
    return [(fel.kod, fel.falt) for fel in validate_merits(merits, units if units is not None else {UNIT},
                                                          today=TODAY)]


def test_valid_merits_have_no_problems() -> None:
    merits = Merits(personnummer=STUDENT, kursbetyg=[grade(), grade(kod="GYARNA", betyg="E")], examen=[diploma()])
    assert kods(merits) == []
    assert kods(Merits(personnummer=pnr("20080472"))) == []  # samordningsnummer (day 12 + 60)


@pytest.mark.parametrize("value", [STUDENT[:-1] + str((int(STUDENT[-1]) + 1) % 10), STUDENT[2:], "2008041212",
                                   "20080412-1234", "20081312" + STUDENT[8:]])
def test_personnummer_ogiltigt(value: str) -> None:
    problems = validate_merits(Merits(personnummer=value), None, today=TODAY)
    assert [(p.kod, p.falt) for p in problems] == [("PERSONNUMMER_OGILTIGT", "personnummer")]
    assert value not in problems[0].meddelande and value.replace("-", "") not in problems[0].meddelande


def test_skolenhetskod_ogiltig_and_ej_behorig() -> None:
    merits = Merits(personnummer=STUDENT, kursbetyg=[grade(skolenhetskod="1234567"), grade(skolenhetskod="87654321")],
                    examen=[diploma(skolenhetskod="1234567a")])
    assert kods(merits) == [("SKOLENHETSKOD_OGILTIG", "kursbetyg[0].skolenhetskod"),
                            ("SKOLENHET_EJ_BEHORIG", "kursbetyg[1].skolenhetskod"),
                            ("SKOLENHETSKOD_OGILTIG", "examen[0].skolenhetskod")]
    # Unknown authorisation (None) checks the format only.
    assert [f.kod for f in validate_merits(merits, None, today=TODAY)] == ["SKOLENHETSKOD_OGILTIG"] * 2


@pytest.mark.parametrize(("changes", "expected"), [
    ({"skolform": "GYMN"}, [("SKOLFORM_OGILTIG", "kursbetyg[0].skolform")]),
    ({"kod": "mat01"}, [("KURSKOD_OGILTIG", "kursbetyg[0].kod")]),
    ({"skolform": "GR", "kod": "GYARBF", "betyg": "E"}, [("KURSKOD_OGILTIG", "kursbetyg[0].kod")]),
    ({"betyg": "G"}, [("BETYG_OGILTIGT", "kursbetyg[0].betyg")]),
    ({"kod": "GYARNA", "betyg": "A"}, [("BETYG_OGILTIGT", "kursbetyg[0].betyg")]),
    ({"skolform": "GRSAR", "betyg": "F"}, [("BETYG_OGILTIGT", "kursbetyg[0].betyg")]),
    ({"betyg": "G", "betygsliknande_omdome": True}, [("OMDOME_EJ_TILLATET", "kursbetyg[0].betygsliknandeOmdome")]),
    ({"beslutsdatum": TOMORROW}, [("DATUM_OGILTIGT", "kursbetyg[0].beslutsdatum")]),
    ({"beslutsdatum": "20260601"}, [("DATUM_OGILTIGT", "kursbetyg[0].beslutsdatum")]),
    ({"beslutsdatum": "2026-02-30"}, [("DATUM_OGILTIGT", "kursbetyg[0].beslutsdatum")]),
])
def test_grade_rules_map_to_beda_kods(changes: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert kods(Merits(personnummer=STUDENT, kursbetyg=[grade(**changes)])) == expected


def test_assessment_is_allowed_in_komvux() -> None:
    assert kods(Merits(personnummer=STUDENT, kursbetyg=[grade(skolform="VUX", kod="ORIENT1", betyg="IG",
                                                              betygsliknande_omdome=True)])) == []


def test_examen_rules() -> None:
    merits = Merits(personnummer=STUDENT, examen=[
        diploma(dokumenttyp="GY_EXAMEN"), diploma(utfardat=TOMORROW, kurser=["MATMAT01a", "ma 1"])])
    assert kods(merits) == [("DOKUMENTTYP_OGILTIG", "examen[0].dokumenttyp"),
                            ("DATUM_OGILTIGT", "examen[1].utfardat"),
                            ("KURSKOD_OGILTIG", "examen[1].kurser[1]")]


def test_every_problem_is_reported_not_only_the_first() -> None:
    merits = Merits(personnummer="19990101-0000", kursbetyg=[grade(), grade(skolenhetskod="x", betyg="Q")],
                    examen=[diploma(dokumenttyp="X", utfardat="igår")])
    assert kods(merits) == [("PERSONNUMMER_OGILTIGT", "personnummer"),
                            ("SKOLENHETSKOD_OGILTIG", "kursbetyg[1].skolenhetskod"),
                            ("BETYG_OGILTIGT", "kursbetyg[1].betyg"),
                            ("DOKUMENTTYP_OGILTIG", "examen[0].dokumenttyp"),
                            ("DATUM_OGILTIGT", "examen[0].utfardat")]


def test_format_errors_name_the_field_path() -> None:
    with pytest.raises(ValueError) as info:
        Merits.model_validate({"personnummer": STUDENT, "kursbetyg": [
            grade().model_dump(by_alias=True), {**grade().model_dump(by_alias=True), "typ": "kurs2", "extra": 1}]})
    assert [(f.kod, f.falt) for f in format_errors(info.value)] == [
        ("FORMAT_OGILTIGT", "kursbetyg[1].typ"), ("FORMAT_OGILTIGT", "kursbetyg[1].extra")]
    assert field_path(("examen", 0, "kurser", 3)) == "examen[0].kurser[3]"


def merits_of(ds: Dataset, person: Person) -> Merits:
    """A data set student's merits as the pipeline sends them."""
    units = {unit.id: unit.code for unit in ds.school_units}
    record = ds.records[person.id]
    return Merits(
        personnummer=person.civic_no,
        kursbetyg=[Kursbetyg(skolenhetskod=units[g.school_unit_id], skolform=g.school_form,
                             typ="kurs" if g.kind == "kursbetyg" else "amne", kod=g.code, betyg=g.value,
                             beslutsdatum=g.decided, provning=g.exam, betygsliknande_omdome=g.assessment)
                   for g in record.grades],
        examen=[Examen(skolenhetskod=d.school_unit_code, dokumenttyp=d.typ, utfardat=d.issued,
                       studievagskod=d.programme_code, grundlaggande_behorighet=d.basic_eligibility,
                       kurser=list(d.courses)) for d in record.diplomas],
    )


def test_every_synthetic_student_passes_beda_s_validation_and_schema() -> None:
    ds = generate(students=120, seed=11)
    units = {unit.code for unit in ds.school_units}
    for student in ds.students():
        merits = merits_of(ds, student)
        assert validate_merits(merits, units) == [], student.id
        check_schema("Merits", merits.to_wire())


def test_schema_enums_are_the_code_s_constants() -> None:
    definitions = SCHEMA["$defs"]
    assert tuple(definitions["Kursbetyg"]["properties"]["skolform"]["enum"]) == SCHOOL_FORMS
    assert tuple(definitions["Examen"]["properties"]["dokumenttyp"]["enum"]) == DOKUMENTTYPER
    assert set(definitions["Kursbetyg"]["properties"]) == set(Kursbetyg.model_json_schema(by_alias=True)["properties"])
    assert set(definitions["Examen"]["properties"]) == set(Examen.model_json_schema(by_alias=True)["properties"])


# --- client against the sandbox over real HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(students=40, seed=5)


@pytest.fixture(scope="module")
def sandbox(dataset: Dataset) -> Iterator[tuple[str, Any]]:
    with SandboxServer() as server:
        injector = with_faults(create_app_for(dataset), "beda", FaultConfig())
        yield server.start("beda", injector), injector


@pytest.fixture
def url(sandbox: tuple[str, Any]) -> str:
    base, injector = sandbox
    injector.configure(FaultConfig())
    httpx.delete(f"{base}/_sandbox/state").raise_for_status()
    return base


def sandbox_client(url: str, dataset: Dataset, **changes: Any) -> BedaClient:
    values = {"client_id": "sandbox-client", "client_secret": "sandbox-secret", "party_orgnr": dataset.huvudman_orgnr}
    return BedaClient(url, http=FAST, **{**values, **changes})


def state(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/_sandbox/state").json()


async def test_batch_with_good_and_bad_students(url: str, dataset: Dataset) -> None:
    good = [merits_of(dataset, s) for s in dataset.students()[:5]]
    bad = good[1].model_copy(update={"kursbetyg": [grade(skolenhetskod=dataset.school_units[0].code, betyg="Q")]})
    invalid_id = Merits(personnummer=STUDENT[:-1] + str((int(STUDENT[-1]) + 1) % 10), kursbetyg=[])
    async with sandbox_client(url, dataset) as client:
        results = await client.send_batch([good[0], bad, invalid_id, *good[2:]])
        assert [r.status for r in results] == ["GODKAND", "AVVISAD", "AVVISAD", "GODKAND", "GODKAND", "GODKAND"]
        assert [r.personnummer for r in results] == [m.personnummer for m in [good[0], bad, invalid_id, *good[2:]]]
        assert [(f.kod, f.falt) for f in results[1].fel] == [("BETYG_OGILTIGT", "kursbetyg[0].betyg")]
        assert [f.kod for f in results[2].fel] == ["PERSONNUMMER_OGILTIGT"]
        assert invalid_id.personnummer not in results[2].fel[0].meddelande
        held = await client.get_student(good[0].personnummer)
        assert held == good[0]
        assert await client.get_student(bad.personnummer) is None  # rejected: Beda holds nothing
    snapshot = state(url)
    assert snapshot["rejected"] == 2 and snapshot["tokens_issued"] == 1
    assert {pnr for pnr, s in snapshot["students"].items() if s["meriter"]} == {
        m.personnummer for m in [good[0], *good[2:]]}


async def test_identical_resend_adds_no_revision(url: str, dataset: Dataset) -> None:
    merits = [merits_of(dataset, s) for s in dataset.students()[:3]]
    async with sandbox_client(url, dataset) as client:
        await client.send_batch(merits)
        await client.send_batch(merits)
        reordered = merits[0].model_copy(update={"kursbetyg": list(reversed(merits[0].kursbetyg or []))})
        assert (await client.put_student(reordered)).accepted
        first = (merits[1].kursbetyg or [])[0]
        changed = merits[1].model_copy(update={"kursbetyg": [first.model_copy(update={"provning": not first.provning}),
                                                             *(merits[1].kursbetyg or [])[1:]]})
        assert (await client.put_student(changed)).accepted
    students = state(url)["students"]
    assert [(students[m.personnummer]["received"], students[m.personnummer]["revisions"]) for m in merits] == [
        (3, 1), (3, 2), (2, 1)]


async def test_empty_collection_removes_and_absent_keeps(url: str, dataset: Dataset) -> None:
    unit = dataset.school_units[1].code  # Östra gymnasiet
    merits = Merits(personnummer=STUDENT, kursbetyg=[grade(skolenhetskod=unit)], examen=[diploma(skolenhetskod=unit)])
    async with sandbox_client(url, dataset) as client:
        assert (await client.put_student(merits)).accepted
        assert (await client.put_student(Merits(personnummer=STUDENT, kursbetyg=[]))).accepted
        held = await client.get_student(STUDENT)
        assert held is not None and held.kursbetyg == [] and held.examen == merits.examen
        check_schema("Merits", held.to_wire())
        rejected = await client.put_student(Merits(personnummer=STUDENT, examen=[diploma(skolenhetskod="99999999")]))
        assert [f.kod for f in rejected.fel] == ["SKOLENHET_EJ_BEHORIG"]
        assert await client.get_student(STUDENT) == held  # a rejection changes nothing
    assert state(url)["students"][STUDENT] | {"meriter": None} == {"meriter": None, "received": 3, "revisions": 2}


async def test_another_party_is_forbidden(url: str, dataset: Dataset) -> None:
    other_party = "212000-0" + "13" + luhn.calc_check_digit("212000013")
    async with sandbox_client(url, dataset, party_orgnr=other_party) as client:
        with pytest.raises(RemoteError) as info:
            await client.send_batch([merits_of(dataset, dataset.students()[0])])
    assert info.value.status_code == 403 and json.loads(info.value.body)["fel"][0]["kod"] == "EJ_BEHORIG"
    assert state(url)["students"] == {}


async def test_authentication_is_required(url: str, dataset: Dataset) -> None:
    path = f"{url}/api/v1/anslutningsparter/{dataset.huvudman_orgnr}/meriter"
    bare = httpx.post(path, json={"elever": [{"personnummer": STUDENT}]})
    assert bare.status_code == 401 and bare.json()["fel"][0]["kod"] == "EJ_AUTENTISERAD"
    check_schema("ErrorResponse", bare.json())
    async with sandbox_client(url, dataset, client_secret="wrong") as client:
        with pytest.raises(RemoteError) as info:
            await client.get_student(STUDENT)
    assert info.value.status_code == 401 and json.loads(info.value.body) == {"error": "invalid_client"}
    async with sandbox_client(url, dataset) as client:
        assert await client.get_student(STUDENT) is None
        httpx.delete(f"{url}/_sandbox/tokens").raise_for_status()  # every token expires
        assert (await client.put_student(Merits(personnummer=STUDENT, kursbetyg=[]))).accepted
    assert state(url)["tokens_issued"] == 2


async def test_whole_request_refusals(url: str, dataset: Dataset) -> None:
    token = httpx.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                    "client_secret": "sandbox-secret"}).json()
    check_schema("TokenResponse", token)
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    api = f"{url}/api/v1/anslutningsparter"
    wrong_orgnr = httpx.post(f"{api}/212000-0143/meriter", json={"elever": []}, headers=auth)
    assert wrong_orgnr.status_code == 400 and wrong_orgnr.json()["fel"][0]["kod"] == "ORGANISATIONSNUMMER_OGILTIGT"
    for count in (0, 201):
        too_many = httpx.post(f"{api}/{dataset.huvudman_orgnr}/meriter", headers=auth,
                              json={"elever": [{"personnummer": STUDENT}] * count})
        assert too_many.status_code == 413 and too_many.json()["fel"][0]["kod"] == "ANTAL_ELEVER_OGILTIGT"
    mismatch = httpx.put(f"{api}/{dataset.huvudman_orgnr}/elever/{OTHER}/meriter", headers=auth,
                         json={"personnummer": STUDENT, "kursbetyg": []})
    assert mismatch.status_code == 422 and [f["kod"] for f in mismatch.json()["fel"]] == ["PERSONNUMMER_OGILTIGT"]
    check_schema("StudentResult", mismatch.json())
    assert state(url)["students"][OTHER]["meriter"] is None


async def test_units_are_authorised_per_client() -> None:
    app = create_app({"a": BedaParty(ORGNR, "s", frozenset({UNIT}))}, today=lambda: TODAY)
    with SandboxServer() as server:
        url = server.start("beda", with_faults(app, "beda", FaultConfig()))
        async with BedaClient(url, "a", "s", ORGNR, http=FAST) as client:
            results = await client.send_batch([
                Merits(personnummer=STUDENT, kursbetyg=[grade()]),
                Merits(personnummer=OTHER, kursbetyg=[grade(skolenhetskod="87654321")]),
            ])
    assert [r.status for r in results] == ["GODKAND", "AVVISAD"]
    assert [(f.kod, f.falt) for f in results[1].fel] == [("SKOLENHET_EJ_BEHORIG", "kursbetyg[0].skolenhetskod")]


async def test_every_student_reaches_beda_exactly_once_through_faults(
        sandbox: tuple[str, Any], url: str, dataset: Dataset) -> None:
    """503s are retried; a batch whose answer was lost is never resent by the client (AnswerLost): the caller asks
    Beda, and here Beda holds what it carried out before the connection dropped."""
    _, injector = sandbox
    injector.configure(FaultConfig(server_error=0.25, drop=0.25, seed=3))
    students = dataset.students()
    lost: list[str] = []
    async with sandbox_client(url, dataset) as client:
        results = []
        for start in range(0, len(students), 8):
            batch = [merits_of(dataset, s) for s in students[start:start + 8]]
            try:
                results += await client.send_batch(batch)
            except AnswerLost:
                lost += [m.personnummer for m in batch]
        injector.configure(FaultConfig())
        asked = {civic: await client.get_student(civic) for civic in lost}
    assert all(r.accepted for r in results)
    assert lost and all(merits is not None for merits in asked.values())
    held = state(url)["students"]
    assert sorted(held) == sorted(s.civic_no for s in students)
    assert {s["revisions"] for s in held.values()} == {1}
    assert {s["received"] for s in held.values()} == {1}  # nothing was sent twice
    assert injector.injected["drop"] > 0
