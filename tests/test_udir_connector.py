"""Udir eksamen connector: rules (pure), XML codec, client (respx), and client against the sandbox over HTTP."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from skolflow.connectors.http import HttpSettings, RetryPolicy, TransientError
from skolflow.connectors.udir import (
    PATHS,
    Kandidat,
    KandidatFagkode,
    Kandidatgruppe,
    Kandidatgruppeansvarlig,
    Pamelding,
    PameldingReport,
    Registration,
    UdirApiError,
    UdirClient,
    UdirServerError,
    codec,
    request_problems,
    rules,
    subject_rule_breaks,
)
from skolflow.connectors.udir.client import SERVER_ERROR_MESSAGE
from skolflow.connectors.udir.models import (
    ApiError,
    Eksamen,
    Eksamensperiode,
    Eksamensplan,
    EksamensplanResponse,
    Karakteroversikt,
    PameldingReference,
    PameldteKandidater,
)
from skolflow.connectors.udir.sandbox import DEFAULT_CLIENTS, create_app
from skolflow.identity import mask
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.sandbox.udir_data import CURRENT_PERIOD, PREVIOUS_PERIOD, UdirData, candidates_at, fodselsnr, generate
from tests.remote import MOCKED_REMOTE

FAST = HttpSettings(retry=RetryPolicy(attempts=3, backoff_base=0.001, backoff_max=0.01), door=MOCKED_REMOTE)
BASE = "https://eksamenapi-sas.example.no"
ORGNR = "875561162"
OTHER_VGS = "974589664"
GS_SCHOOL = "874546852"
STUDENT = fodselsnr(dt.date(2008, 4, 12), 500)
D_NUMBER = fodselsnr(dt.date(1995, 3, 7), 100, d_number=True)
TEACHER = fodselsnr(dt.date(1980, 1, 1), 100)
CLIENT_ID, CLIENT_SECRET = next(iter(DEFAULT_CLIENTS.items()))


def kandidat(number: str = STUDENT, **changes: Any) -> Kandidat:
    return Kandidat(**{"fodselsnr": number, "fornavn": "Nora", "etternavn": "Hansen", "malform": "Bokmal",
                       "kandidattype": "Elev", **changes})


def gruppe(fagkode: str, *members: Kandidat, navn: str | None = None, variant: str | None = None) -> Kandidatgruppe:
    return Kandidatgruppe(navn=navn or f"Gruppe {fagkode}", fagkode=fagkode, variant=variant,
                          kandidatgruppeansvarlige=[Kandidatgruppeansvarlig(fodselsnr=TEACHER, fornavn="Kari",
                                                                            etternavn="Lie", malform="Bokmal")],
                          kandidater=list(members))


def plan(vgs: tuple[str, ...] = (), gs: tuple[str, ...] = (), period: str = CURRENT_PERIOD) -> EksamensplanResponse:
    """A period's eksamensplan, a plan per level."""
    day = dt.datetime(2026, 5, 15, 9)
    periode = Eksamensperiode(kode=period, pamelding_start=day, pamelding_stopp=day, gjennomforing_start=day,
                              gjennomforing_stopp=day)
    return EksamensplanResponse(eksamensplaner=[
        Eksamensplan(opplaeringsniva=level, eksamensperiode=periode, eksamener=[Eksamen(fagkode=c) for c in codes])
        for level, codes in (("GS", gs), ("VGS", vgs))])


def pamelding(*groups: Kandidatgruppe, orgnr: str = ORGNR, **changes: Any) -> Pamelding:
    values = {"brukernavn_pas": "sas-bruker", "eksamens_periode_kode": CURRENT_PERIOD, "orgnr": orgnr,
              "skolenavn": "Sandvik videregående skole", "kandidatgrupper": list(groups),
              "epostadresse_ved_feil": "eksamen@sandvik.example.no"}
    return Pamelding(**{**values, **changes})


# --- rules (pure) -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "valid"), [("H-2025", True), ("V-2026", True), ("X-2026", False),
                                             ("V2026", False), ("V-26", False), ("", False)])
def test_period_code(code: str, valid: bool) -> None:
    assert (rules.period_code_problem(code) is None) is valid


@pytest.mark.parametrize(("address", "valid"), [(None, True), ("a.b@skole.no", True), ("thjoha @oppad.no", False),
                                                ("ingen-alfa", False), ("a@b", False)])
def test_email_for_errors(address: str | None, valid: bool) -> None:
    assert (rules.email_problem(address) is None) is valid


def test_fodselsnummer_and_d_number_are_valid_and_a_bad_one_is_masked() -> None:
    assert rules.fodselsnummer_problem(STUDENT) is None and rules.fodselsnummer_problem(D_NUMBER) is None
    assert int(D_NUMBER[:2]) > 40
    broken = STUDENT[:-1] + str((int(STUDENT[-1]) + 1) % 10)
    problem = rules.fodselsnummer_problem(broken, "NOR1211")
    assert problem is not None and problem.rule == rules.RULE_FODSELSNUMMER and problem.fodselsnr == broken
    assert broken not in problem.message and mask(broken) in problem.message


def test_request_problems_are_all_reported() -> None:
    broken = STUDENT[:-1] + str((int(STUDENT[-1]) + 1) % 10)
    doc = pamelding(gruppe("NOR1211", kandidat(), navn="3A"), gruppe("NOR1211", kandidat(broken), navn="3a "),
                    gruppe("FYS9999", kandidat()), eksamens_periode_kode="V26", epostadresse_ved_feil="nei")
    found = [p.rule for p in request_problems(doc, plan(("NOR1211",), period="V26"))]
    assert sorted(found) == sorted([rules.RULE_PERIOD, rules.RULE_EMAIL, rules.RULE_GROUP_NAME,
                                    rules.RULE_FODSELSNUMMER, rules.RULE_FAGKODE])
    assert request_problems(pamelding(gruppe("NOR1211", kandidat())), plan(("NOR1211",))) == []
    assert request_problems(pamelding(gruppe("FYS9999", kandidat())), None) == []


def test_a_fagkode_is_judged_in_the_plan_of_the_registrations_level() -> None:
    both = plan(vgs=("NOR1211",), gs=("MAT0010",))
    doc = pamelding(gruppe("NOR1211", kandidat()), gruppe("MAT0010", kandidat()), gruppe("FYS9999", kandidat()))

    def found(document: Pamelding, school_level: Any = None) -> list[tuple[str, str | None]]:
        return [(p.rule, p.fagkode) for p in request_problems(document, both, school_level)]

    # Without a level of its own, the registration is judged at the school's.
    assert found(doc, "VGS") == [(rules.RULE_LEVEL, "MAT0010"), (rules.RULE_FAGKODE, "FYS9999")]
    assert found(doc.model_copy(update={"opplaeringsniva": "GS"}), "VGS") == [(rules.RULE_LEVEL, "NOR1211"),
                                                                               (rules.RULE_FAGKODE, "FYS9999")]
    assert found(doc) == [(rules.RULE_FAGKODE, "FYS9999")]  # a caller that cannot tell the level: any plan
    (level,) = [p for p in request_problems(doc, both, "VGS") if p.rule == rules.RULE_LEVEL]
    assert level.message == ("Fagkoden MAT0010 finnes ikke i eksamensplanen for videregående (VGS) i V-2026: den er "
                             "en eksamen for grunnskolen (GS).")


def test_a_well_formed_period_udir_has_no_plan_for_is_refused() -> None:
    doc = pamelding(gruppe("NOR1211", kandidat()), eksamens_periode_kode="V-2031")
    assert [(p.rule, p.message) for p in request_problems(doc, plan(("NOR1211",)))] == [
        (rules.RULE_PERIOD, "Eksamensperioden V-2031 finnes ikke i Udirs eksamensplaner.")]
    assert [p.rule for p in request_problems(doc.model_copy(update={"eksamens_periode_kode": "V2031"}),
                                             EksamensplanResponse())] == [rules.RULE_PERIOD]


def breaks(*entries: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    return [(p.rule, p.fagkode) for p in subject_rule_breaks(Registration(STUDENT, code, variant)
                                                            for code, variant in entries)]


def test_nor0214_and_nor0215_only_together() -> None:
    assert breaks(("NOR0214", None)) == [(rules.RULE_NOR0214_NOR0215, "NOR0214")]
    assert breaks(("NOR0215", None)) == [(rules.RULE_NOR0214_NOR0215, "NOR0215")]
    assert breaks(("NOR0214", None), ("NOR0215", None)) == []


def test_nor1415_never_with_nor0214_or_nor0215() -> None:
    assert breaks(("NOR1415", None)) == []
    assert breaks(("NOR1415", None), ("NOR0214", None), ("NOR0215", None)) == [(rules.RULE_NOR1415, "NOR1415")]
    assert (rules.RULE_NOR1415, "NOR1415") in breaks(("NOR1415", None), ("NOR0215", None))


@pytest.mark.parametrize("variant", sorted(rules.REA3015_VARIANTS))
def test_rea3015_with_exactly_one_known_variant(variant: str) -> None:
    assert breaks(("REA3015", variant)) == []


@pytest.mark.parametrize("entries", [[("REA3015", None)], [("REA3015", "PY")],
                                     [("REA3015", "JAV"), ("REA3015", "CS")]])
def test_rea3015_without_or_with_several_variants_breaks(entries: list[tuple[str, str | None]]) -> None:
    assert breaks(*entries) == [(rules.RULE_REA3015, "REA3015")]


def test_subject_rules_are_per_candidate_and_masked() -> None:
    other = fodselsnr(dt.date(2008, 6, 1), 500)
    found = subject_rule_breaks([Registration(STUDENT, "NOR0214"), Registration(other, "NOR0215"),
                                 Registration(other, "NOR0214")])
    assert [(p.fodselsnr, p.fagkode) for p in found] == [(STUDENT, "NOR0214")]
    assert STUDENT not in found[0].message and mask(STUDENT) in found[0].message


# --- codec --------------------------------------------------------------------------------------------------------

UDIR_EXAMPLE = b"""<?xml version="1.0" encoding="utf-8"?>
<pa:PameldteKandidater xmlns:ct="http://pas.udir.no/CommonTypes" xmlns:pa="http://pas.udir.no/Pamelding">
  <Eksamensperiodekode>V-2016</Eksamensperiodekode>
  <Eksamenspameldinger><Eksamenspamelding><Fagkode>MAT0010</Fagkode><Variant />
    <Kandidatgrupper><Kandidatgruppe><Navn>Klasse 6A</Navn>
      <Kandidatgruppeansvarlige><ct:Kandidatgruppeansvarlig><ct:Fodselsnr>12116833563</ct:Fodselsnr>
        <ct:Fornavn>Thor Arne</ct:Fornavn><ct:Etternavn>Johansen</ct:Etternavn><ct:Malform>Bokmal</ct:Malform>
        <ct:Epostadresse>thjoha@oppad.no</ct:Epostadresse><ct:Mobilnr>90915134</ct:Mobilnr>
      </ct:Kandidatgruppeansvarlig></Kandidatgruppeansvarlige>
      <Kandidater><Kandidat><Fodselsnr>17011099955</Fodselsnr><Fornavn>Kristoffer Berg</Fornavn>
        <Etternavn>Johansen</Etternavn><Malform>Bokmal</Malform><Kandidattype>Elev</Kandidattype>
        <Kandidatnummer>564HBS-V</Kandidatnummer></Kandidat></Kandidater>
    </Kandidatgruppe></Kandidatgrupper></Eksamenspamelding></Eksamenspameldinger>
</pa:PameldteKandidater>"""


def test_udir_example_decodes_and_reencodes_valid() -> None:
    assert codec.validate(PameldteKandidater, UDIR_EXAMPLE) == []
    doc = codec.decode(PameldteKandidater, UDIR_EXAMPLE)
    subject = doc.eksamenspameldinger[0]
    assert subject.fagkode == "MAT0010" and subject.variant is None
    assert subject.kandidatgrupper[0].kandidater[0].kandidatnummer == "564HBS-V"
    assert subject.kandidatgrupper[0].kandidatgruppeansvarlige[0].fornavn == "Thor Arne"
    again = codec.encode(doc)
    assert codec.validate(PameldteKandidater, again) == [] and codec.decode(PameldteKandidater, again) == doc


def test_pamelding_encodes_valid_and_round_trips() -> None:
    doc = pamelding(gruppe("REA3015", kandidat(), kandidat(D_NUMBER), variant="JAV"))
    xml = codec.encode(doc)
    assert codec.validate(Pamelding, xml) == []
    assert codec.decode(Pamelding, xml) == doc


def test_a_document_out_of_order_fails_the_xsd() -> None:
    xml = codec.encode(pamelding()).replace(b"<pa:BrukernavnPAS>sas-bruker</pa:BrukernavnPAS>", b"")
    assert codec.validate(Pamelding, xml)


# --- client (respx) -------------------------------------------------------------------------------------------


def token_answer(value: str = "t1") -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "token_type": "Bearer", "expires_in": 3600})


def udir(base_url: str = BASE, **options: Any) -> UdirClient:
    return UdirClient(base_url, options.pop("client_id", CLIENT_ID), options.pop("secret", CLIENT_SECRET),
                      http=FAST, **options)


async def test_register_sends_xml_with_a_basic_auth_token_and_returns_the_guid() -> None:
    with respx.mock(base_url=BASE) as mock:
        token = mock.post("/connect/token").mock(return_value=token_answer("abc"))
        post = mock.post(PATHS.kandidatpamelding).mock(return_value=httpx.Response(
            202, json={"Reference": "6f1c0a1e-0000-4000-8000-000000000001"}))
        async with udir(scope="pas_api") as client:
            guid = await client.register(pamelding(gruppe("NOR1211", kandidat())))
    assert guid == "6f1c0a1e-0000-4000-8000-000000000001"
    auth = token.calls[0].request.headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert dict(httpx.QueryParams(token.calls[0].request.content.decode())) == {
        "grant_type": "client_credentials", "scope": "pas_api"}
    sent = post.calls[0].request
    assert sent.headers["Authorization"] == "Bearer abc" and sent.headers["Content-Type"] == "application/xml"
    assert codec.validate(Pamelding, sent.content) == []


async def test_eksamensplan_needs_no_token_and_reads_xml() -> None:
    plan = EksamensplanResponse.model_validate({"Eksamensplaner": [{
        "Opplaeringsniva": "VGS", "Eksamensperiode": {"Kode": "V-2026", "PameldingStart": "2025-12-01T00:00:00",
                                                      "PameldingStopp": "2026-01-30T00:00:00",
                                                      "GjennomforingStart": "2026-05-15T09:00:00",
                                                      "GjennomforingStopp": "2026-06-14T09:00:00"},
        "Eksamener": [{"Fagkode": "NOR1211", "Eksamensdeler": []}]}]})
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        token = mock.post("/connect/token").mock(return_value=token_answer())
        get = mock.get(PATHS.eksamensplan).mock(return_value=httpx.Response(
            200, content=codec.encode(plan), headers={"Content-Type": "application/xml"}))
        async with udir() as client:
            answer = await client.eksamensplan("V-2026", "VGS", xml=True)
    assert answer == plan and answer.fagkoder() == {"NOR1211"} and token.call_count == 0
    assert get.calls[0].request.headers["Accept"] == "application/xml"
    assert get.calls[0].request.url.params["eksamensperiode"] == "V-2026"


async def test_a_400_api_error_is_raised_with_udirs_message_masked() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/connect/token").mock(return_value=token_answer())
        post = mock.post(PATHS.kandidatpamelding).mock(return_value=httpx.Response(
            400, json={"Message": f"Fødselsnummeret {STUDENT} er ikke gyldig."}))
        async with udir() as client:
            with pytest.raises(UdirApiError) as info:
                await client.register(pamelding(gruppe("NOR1211", kandidat())))
    assert post.call_count == 1 and info.value.status_code == 400 and not isinstance(info.value, TransientError)
    assert info.value.message == f"Fødselsnummeret {mask(STUDENT)} er ikke gyldig."
    assert STUDENT not in str(info.value) and STUDENT not in info.value.body


async def test_a_500_api_error_is_retried_then_raised_as_transient() -> None:
    message = SERVER_ERROR_MESSAGE.format(guid="0f7a")
    with respx.mock(base_url=BASE) as mock:
        mock.post("/connect/token").mock(return_value=token_answer())
        get = mock.get(f"{PATHS.kandidatpamelding}/g1").mock(return_value=httpx.Response(
            500, content=codec.encode(ApiError(message=message)), headers={"Content-Type": "application/xml"}))
        async with udir() as client:
            with pytest.raises(UdirServerError) as info:
                await client.status("g1")
    assert get.call_count == FAST.retry.attempts and isinstance(info.value, TransientError)
    assert info.value.message == message and info.value.status_code == 500


async def test_delete_many_posts_udirs_json_list() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/connect/token").mock(return_value=token_answer())
        post = mock.post(PATHS.kandidat_slett).mock(return_value=httpx.Response(200))
        async with udir() as client:
            await client.delete_many(ORGNR, CURRENT_PERIOD, [KandidatFagkode(kandidatnummer="123ABC-V",
                                                                              fagkode="NOR1211")])
    request = post.calls[0].request
    assert request.url.params["orgno"] == ORGNR and request.url.params["periodekode"] == CURRENT_PERIOD
    assert request.content == b'[{"Kandidatnummer":"123ABC-V","Fagkode":"NOR1211"}]'


# --- against the sandbox over real HTTP -----------------------------------------------------------------------

STEP = 0.05


@pytest.fixture(scope="module")
def data() -> UdirData:
    return generate()


@pytest.fixture
def sandbox_url(data: UdirData) -> Iterator[str]:
    with SandboxServer() as server:
        yield server.start("udir", with_faults(create_app(data, step_seconds=STEP), "udir"))


async def finished(client: UdirClient, guid: str) -> PameldingReport:
    for _ in range(100):
        report = await client.status(guid)
        if report.final:
            return report
        await asyncio.sleep(STEP / 2)
    raise AssertionError("the registration never finished")


def outcomes(report: PameldingReport) -> dict[tuple[str, str], str]:
    return {(k.fodselsnr, g.fagkode): k.status for g in report.kandidatgrupper for k in g.kandidater}


def own(data: UdirData, orgnr: str = ORGNR) -> list[str]:
    """Candidates of the school registered nowhere else."""
    return [c.fodselsnr for c in candidates_at(data.candidates, orgnr) if c.fodselsnr not in data.elsewhere]


async def test_skjema_and_eksamensplan_need_no_auth(sandbox_url: str) -> None:
    async with udir(sandbox_url, secret="wrong") as client:
        schemas = await client.schemas()
        plain = await client.eksamensplan(CURRENT_PERIOD, "VGS")
        school = await client.eksamensplan(CURRENT_PERIOD, "VGS", OTHER_VGS)
    assert {"Pamelding.xsd", "CommonTypes.xsd", "PameldingReport.xsd"} <= set(schemas)
    assert "SAM3073" not in plain.fagkoder() and "SAM3073" in school.fagkoder()
    assert {"NOR0214", "REA3015"} <= plain.fagkoder() and "MAT0010" not in plain.fagkoder()


@pytest.mark.parametrize(("changes", "expected"), [
    ({"eksamens_periode_kode": "V2026"}, "Eksamensperiodekoden"),
    ({"eksamens_periode_kode": "V-2031"}, "finnes ikke"),
    ({"epostadresse_ved_feil": "ikke en adresse"}, "Epostadressen"),
])
async def test_the_400_rules_of_the_registration(sandbox_url: str, data: UdirData, changes: dict[str, str],
                                                 expected: str) -> None:
    async with udir(sandbox_url) as client:
        with pytest.raises(UdirApiError) as info:
            await client.register(pamelding(gruppe("NOR1211", kandidat(own(data)[0])), **changes))
    assert info.value.status_code == 400 and expected in info.value.message


async def test_400_for_an_invalid_fodselsnummer_unknown_fagkode_and_a_repeated_group_name(
        sandbox_url: str, data: UdirData) -> None:
    student = own(data)[0]
    broken = student[:-1] + str((int(student[-1]) + 1) % 10)
    cases = [
        (pamelding(gruppe("NOR1211", kandidat(broken))), "Fødselsnummeret"),
        (pamelding(gruppe("MAT0010", kandidat(student))),  # a GS exam at a VGS school
         "MAT0010 finnes ikke i eksamensplanen for videregående (VGS) i V-2026: den er en eksamen for grunnskolen"),
        (pamelding(gruppe("SAM3073", kandidat(student), variant="LOKAL")), "SAM3073 finnes ikke"),  # other school's
        (pamelding(gruppe("NOR1211", kandidat(student), navn="3A"), gruppe("NOR1211", kandidat(own(data)[1]),
                                                                           navn="3A")), "ikke unikt"),
    ]
    async with udir(sandbox_url) as client:
        for doc, expected in cases:
            with pytest.raises(UdirApiError) as info:
                await client.register(doc)
            assert info.value.status_code == 400 and expected in info.value.message
            assert broken not in str(info.value)
        registered = await client.registered(ORGNR, CURRENT_PERIOD)
    assert not any(g for e in registered.eksamenspameldinger if e.fagkode == "MAT0010" for g in e.kandidatgrupper)


async def test_a_registration_is_judged_at_the_schools_level_when_it_names_none(sandbox_url: str,
                                                                               data: UdirData) -> None:
    student = candidates_at(data.candidates, GS_SCHOOL)[0].fodselsnr
    at_gs_school = {"orgnr": GS_SCHOOL, "skolenavn": "Fjellheim skole"}
    async with udir(sandbox_url) as client:
        report = await finished(client, await client.register(pamelding(gruppe("MAT0010", kandidat(student)),
                                                                        **at_gs_school)))
        with pytest.raises(UdirApiError) as info:
            await client.register(pamelding(gruppe("NOR1211", kandidat(student)), **at_gs_school))
    assert outcomes(report) == {(student, "MAT0010"): "Pameldt"}
    assert info.value.status_code == 400
    assert info.value.message == rules.fagkode_problem("NOR1211", plan(("NOR1211",)), "GS", CURRENT_PERIOD).message


async def test_registration_is_processed_asynchronously_to_ferdig(sandbox_url: str, data: UdirData) -> None:
    first, d_number = own(data)[0], next(n for n in own(data) if int(n[:2]) > 40)
    async with udir(sandbox_url) as client:
        guid = await client.register(pamelding(gruppe("NOR1211", kandidat(first), kandidat(d_number))))
        early = await client.status(guid)
        report = await finished(client, guid)
    assert early.status in ("IkkeStartet", "Startet") and not early.final
    assert {k.status for g in early.kandidatgrupper for k in g.kandidater} == {"IkkeStartet"}
    assert report.status == "Ferdig" and report.eksamensperiode == CURRENT_PERIOD
    numbers = [k.kandidatnr for k in report.kandidatgrupper[0].kandidater]
    assert all(numbers) and len(set(numbers)) == 2


async def test_delvis_ferdig_with_subject_rules_and_another_school(sandbox_url: str, data: UdirData) -> None:
    a, b, c = own(data)[:3]
    elsewhere = next(n for n, org in data.elsewhere.items() if org != ORGNR)
    doc = pamelding(gruppe("NOR0214", kandidat(a), kandidat(b)), gruppe("NOR0215", kandidat(b)),
                    gruppe("NOR1415", kandidat(b), kandidat(c)),
                    gruppe("REA3015", kandidat(c), variant="PY"), gruppe("NOR1212", kandidat(elsewhere)))
    async with udir(sandbox_url) as client:
        report = await finished(client, await client.register(doc))
    got = outcomes(report)
    assert report.status == "DelvisFerdig"
    assert got == {(a, "NOR0214"): "IkkePameldt", (b, "NOR0214"): "Pameldt", (b, "NOR0215"): "Pameldt",
                   (b, "NOR1415"): "IkkePameldt", (c, "NOR1415"): "Pameldt", (c, "REA3015"): "IkkePameldt",
                   (elsewhere, "NOR1212"): "PameldtAnnenSkole"}
    messages = {(k.fodselsnr, g.fagkode): k.status_message for g in report.kandidatgrupper for k in g.kandidater}
    assert "NOR0215" in messages[(a, "NOR0214")] and "REA3015" in messages[(c, "REA3015")]
    assert a not in messages[(a, "NOR0214")]


async def test_feilet_when_no_candidate_is_registered(sandbox_url: str, data: UdirData) -> None:
    async with udir(sandbox_url) as client:
        report = await finished(client, await client.register(pamelding(gruppe("NOR0215", kandidat(own(data)[0])))))
    assert report.status == "Feilet" and outcomes(report) == {(own(data)[0], "NOR0215"): "IkkePameldt"}


async def test_reregistration_never_duplicates(sandbox_url: str, data: UdirData) -> None:
    student = own(data)[0]
    doc = pamelding(gruppe("NOR1211", kandidat(student)))
    async with udir(sandbox_url) as client:
        first = await finished(client, await client.register(doc))
        again = await finished(client, await client.register(doc))
        registered = await client.registered(ORGNR, CURRENT_PERIOD)
    held = [(k.fodselsnr, e.fagkode) for e in registered.eksamenspameldinger for g in e.kandidatgrupper
            for k in g.kandidater]
    assert held.count((student, "NOR1211")) == 1
    assert first.kandidatgrupper[0].kandidater[0].kandidatnr == again.kandidatgrupper[0].kandidater[0].kandidatnr
    assert again.status == "Ferdig"


async def test_registered_candidates_include_manual_ones_in_json_and_valid_xml(sandbox_url: str,
                                                                                data: UdirData) -> None:
    manual = {(r.fodselsnr, r.fagkode) for r in data.registrations if r.orgnr == ORGNR}
    async with udir(sandbox_url) as client:
        as_json = await client.registered(ORGNR, CURRENT_PERIOD)
        as_xml = await client.registered(ORGNR, CURRENT_PERIOD, xml=True)
    held = {(k.fodselsnr, e.fagkode) for e in as_json.eksamenspameldinger for g in e.kandidatgrupper
            for k in g.kandidater}
    assert manual and manual <= held and as_xml == as_json


async def xml_of(url: str, path: str, params: dict[str, str], auth: bool = True) -> bytes:
    """The raw XML answer, for checking it against Udir's XSD."""
    async with httpx.AsyncClient(base_url=url) as http:
        headers = {"Accept": "application/xml"}
        if auth:
            token = (await http.post("/connect/token", data={"grant_type": "client_credentials"},
                                     auth=(CLIENT_ID, CLIENT_SECRET))).json()["access_token"]
            headers["Authorization"] = f"Bearer {token}"
        response = await http.get(path, params=params, headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    return response.content


async def test_xml_answers_validate_against_udirs_xsds(sandbox_url: str, data: UdirData) -> None:
    async with udir(sandbox_url) as client:
        guid = await client.register(pamelding(gruppe("NOR1211", kandidat(own(data)[0]))))
        await finished(client, guid)
    documents = [
        (EksamensplanResponse, await xml_of(sandbox_url, PATHS.eksamensplan, {"eksamensperiode": CURRENT_PERIOD},
                                            auth=False)),
        (PameldingReport, await xml_of(sandbox_url, f"{PATHS.kandidatpamelding}/{guid}", {})),
        (PameldteKandidater, await xml_of(sandbox_url, PATHS.kandidat, {"orgno": ORGNR,
                                                                        "periodekode": CURRENT_PERIOD})),
        (Karakteroversikt, await xml_of(sandbox_url, PATHS.karakteroversikt, {
            "orgno": ORGNR, "periodekode": PREVIOUS_PERIOD, "sasBrukerReferanse": "sas-bruker"})),
    ]
    for model, xml in documents:
        assert codec.validate(model, xml) == [], model.__name__


async def test_register_answers_a_pameldingreference_in_xml(sandbox_url: str, data: UdirData) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        token = (await http.post("/connect/token", data={"grant_type": "client_credentials"},
                                 auth=(CLIENT_ID, CLIENT_SECRET))).json()["access_token"]
        response = await http.post(PATHS.kandidatpamelding,
                                   content=codec.encode(pamelding(gruppe("NOR1211", kandidat(own(data)[0])))),
                                   headers={"Authorization": f"Bearer {token}", "Accept": "application/xml",
                                            "Content-Type": "application/xml"})
    assert response.status_code == 202 and codec.validate(PameldingReference, response.content) == []
    assert codec.decode(PameldingReference, response.content).reference


async def test_requests_without_a_token_are_refused(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        response = await http.get(PATHS.kandidat, params={"orgno": ORGNR, "periodekode": CURRENT_PERIOD})
    assert response.status_code == 401 and "Message" in response.json()


async def test_delete_one_and_many(sandbox_url: str, data: UdirData) -> None:
    a, b, c = own(data)[:3]
    async with udir(sandbox_url) as client:
        await finished(client, await client.register(pamelding(gruppe("ENG1002", kandidat(a), kandidat(b),
                                                                      kandidat(c)))))

        async def held() -> dict[str, str]:
            registered = await client.registered(ORGNR, CURRENT_PERIOD)
            return {k.fodselsnr: k.kandidatnummer for e in registered.eksamenspameldinger if e.fagkode == "ENG1002"
                    for g in e.kandidatgrupper for k in g.kandidater}

        numbers = await held()
        await client.delete(ORGNR, CURRENT_PERIOD, numbers[a], "ENG1002")
        assert a not in await held() and b in await held()
        await client.delete_many(ORGNR, CURRENT_PERIOD, [KandidatFagkode(kandidatnummer=numbers[n], fagkode="ENG1002")
                                                         for n in (b, c)])
        assert not {a, b, c} & set(await held())
        with pytest.raises(UdirApiError) as info:
            await client.delete(ORGNR, CURRENT_PERIOD, numbers[a], "ENG1002")
    assert info.value.status_code == 400


async def test_karakteroversikt_shows_ea_only_when_asked(sandbox_url: str, data: UdirData) -> None:
    cancelled = next(r.fodselsnr for r in data.results if r.orgnr == ORGNR and r.deltakelsesstatus == "EA")
    async with udir(sandbox_url) as client:
        plain = await client.karakteroversikt(ORGNR, PREVIOUS_PERIOD, "sas-bruker")
        with_ea = await client.karakteroversikt(ORGNR, PREVIOUS_PERIOD, "sas-bruker", include_eksamen_avlyst=True)
        as_xml = await client.karakteroversikt(ORGNR, PREVIOUS_PERIOD, "sas-bruker", xml=True)

    def statuses(doc: Karakteroversikt) -> dict[str, str]:
        return {k.fodselsnr: k.deltakelsesstatus for e in doc.eksamener for g in e.kandidatgrupper
                for k in g.kandidater}

    assert statuses(plain)[cancelled] == "DF" and statuses(with_ea)[cancelled] == "EA"
    assert {"D", "IDF", "DF", "MB"} <= set(statuses(plain).values()) and "EA" not in statuses(plain).values()
    assert any(k.klagekarakter is not None and k.klagebegrunnelse for e in plain.eksamener
               for g in e.kandidatgrupper for k in g.kandidater)
    assert as_xml == plain


async def test_sensoroppdrag_lists_appointed_people(sandbox_url: str) -> None:
    async with udir(sandbox_url) as client:
        people = await client.sensoroppdrag(ORGNR, CURRENT_PERIOD)
    assert people and any("NOR1211" in p.sensor_fagkoder for p in people)
    assert any(p.klagenemnd_fagkoder for p in people)


async def test_an_injected_500_is_retried_and_many_are_raised(sandbox_url: str, data: UdirData) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http, udir(sandbox_url) as client:
        await http.put("/_sandbox/server-errors", params={"count": 1})
        assert (await client.eksamensplan(CURRENT_PERIOD)).eksamensplaner
        await http.put("/_sandbox/server-errors", params={"count": FAST.retry.attempts})
        with pytest.raises(UdirServerError) as info:
            await client.registered(ORGNR, CURRENT_PERIOD)
    assert info.value.status_code == 500
    assert info.value.message.startswith("Failed to process request. Exception logged on server with reference ")
    assert info.value.message.endswith("Contact PAS system administrators.")


async def test_wrong_credentials_are_refused(sandbox_url: str) -> None:
    async with udir(sandbox_url, secret="wrong") as client:
        with pytest.raises(Exception) as info:
            await client.registered(ORGNR, CURRENT_PERIOD)
    assert getattr(info.value, "status_code", None) == 400 and "invalid_client" in str(info.value)


def test_seeded_identity_numbers_are_valid(data: UdirData) -> None:
    numbers = [c.fodselsnr for c in data.candidates]
    assert all(rules.fodselsnummer_problem(n) is None for n in numbers) and len(set(numbers)) == len(numbers)
    assert any(int(n[:2]) > 40 for n in numbers) and data.elsewhere
    assert GS_SCHOOL in {s.orgnr for s in data.schools if s.niva == "GS"}
