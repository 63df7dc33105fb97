"""Async client for Udir's eksamen API (seed 001): registrations, status, candidates, results, sensors.

Authentication is OAuth2 client credentials against Udir's IdentityServer (``/connect/token``, HTTP
Basic, a scope; contracts/udir NOTES). ``skjema`` and ``eksamensplan`` need none. Registrations go
as XML (validated against the XSD before sending); answers are read as JSON, Udir's default, or as
XML with ``xml=True`` where a resource offers it.

Udir refuses with an ``ApiError`` (400 for a broken rule, 500 with a reference guid for its own
faults): both are raised as :class:`UdirApiError` carrying Udir's ``Message``, masked, since
fødselsnummer travel in registrations and may be echoed back. A 500 is retried, and every attempt
Udir logs under a guid of its own: the client keeps each one (:attr:`UdirApiError.references`,
:attr:`UdirClient.references`), since PAS's administrators can only look up the ones they are given.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from skolflow.connectors import xmlsafe
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError, build_client, request
from skolflow.connectors.oauth2 import BearerSession
from skolflow.connectors.udir import codec
from skolflow.connectors.udir.models import (
    ApiError,
    EksamensplanResponse,
    Fagperson,
    KandidatFagkode,
    Karakteroversikt,
    Opplaeringsniva,
    Pamelding,
    PameldingReference,
    PameldingReport,
    PameldteKandidater,
    UdirModel,
)
from skolflow.errors import sanitise
from skolflow.identity import mask_text

SYSTEM = "udir"
TEST_URL = "https://eksamenapi-sas.udir.no"
PRODUCTION_HOST = "eksamenapi.udir.no"
PRODUCTION_URL = f"https://{PRODUCTION_HOST}"
TOKEN_PATH = "/connect/token"
DEFAULT_SCOPE = "pas_api"
MAX_SCHEMA_ZIP_BYTES = 5_000_000

SERVER_ERROR_MESSAGE = ("Failed to process request. Exception logged on server with reference {guid}. "
                        "Contact PAS system administrators.")
REFERENCE = re.compile(r"logged on server with reference ([0-9A-Za-z-]+)")

# The references of the server errors met by the call in progress; each call sets its own list, and an
# asyncio task has its own context, so calls made at the same time do not mix them up.
_MET: ContextVar[list[str]] = ContextVar("udir_server_error_references")


@dataclass(frozen=True)
class Paths:
    """Every resource path, in one place (seed 001 names them relative to ``…/sas/``; NOTES.md)."""

    skjema: str = "/sas/api/ekstern/skjema"
    eksamensplan: str = "/sas/api/ekstern/eksamensplan"
    kandidatpamelding: str = "/sas/api/ekstern/kandidatpamelding"  # POST; GET …/{guid}
    kandidat: str = "/sas/api/ekstern/kandidat"  # GET list; DELETE one
    kandidat_slett: str = "/sas/api/ekstern/kandidat/slett"  # POST a JSON list
    karakteroversikt: str = "/sas/api/ekstern/karakteroversikt"
    sensoroppdrag: str = "/sas/api/ekstern/sensoroppdrag"  # …/{orgnr}/{periodekode}


PATHS = Paths()

Doc = TypeVar("Doc", bound=UdirModel)
_FAGPERSONER = TypeAdapter(list[Fagperson])


class UdirApiError(RemoteError):
    """Udir refused a request with an ``ApiError``; ``message`` is its ``Message`` (masked).

    ``references``: the guid of every server error Udir answered the call with, retries included, in order.
    """

    def __init__(self, status_code: int, message: str, *, method: str = "", url: str = "", body: str = "",
                 references: Sequence[str] = ()):
        self.message = mask_text(message)
        self.references = tuple(references)
        super().__init__(SYSTEM, status_code, mask_text(body or message), method=method, url=url)
        if len(self.references) > 1:  # the message quotes the last one
            self.args = (f"{self.args[0]} (Udir's references, attempt by attempt: {', '.join(self.references)})",)


class UdirServerError(UdirApiError, TransientError):
    """Udir's 500 ApiError, after every retry was spent: transient, so a later run may succeed."""


def api_error_message(body: str) -> str | None:
    """The ``Message`` of an ApiError in JSON or XML, or None when the body is not one."""
    text = body.strip()
    try:
        if text.startswith("<"):
            return codec.decode(ApiError, text.encode()).message
        return ApiError.model_validate_json(text).message
    except (ValidationError, xmlsafe.XmlDocumentError, ValueError):
        return None


def reference_of(body: str) -> str | None:
    """The guid Udir logged a server error under, from its ApiError; None for any other answer."""
    message = api_error_message(body)
    found = REFERENCE.search(message) if message else None
    return found.group(1) if found else None


class UdirClient:
    """``async with UdirClient(url, client_id, secret) as udir: guid = await udir.register(pamelding)``."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        http: HttpSettings | None = None,
        *,
        scope: str = DEFAULT_SCOPE,
        token_path: str = TOKEN_PATH,
    ):
        self._settings = http or HttpSettings()
        self._http = build_client(base_url, self._settings, system=SYSTEM)
        self._http.event_hooks["response"].append(self._note_server_error)
        # Every server error's reference met by this client's calls, those that succeeded on a retry too.
        self.references: list[str] = []
        self._auth = BearerSession(SYSTEM, self._http, self._settings.retry, client_id, client_secret,
                                   token_path=token_path, basic_auth=True, scope=scope)

    async def __aenter__(self) -> UdirClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- open resources ------------------------------------------------------------------------------------------

    async def schemas(self) -> dict[str, bytes]:
        """The XSDs Udir validates registrations with, by file name (from the ``skjema`` ZIP)."""
        response = await self._call("GET", PATHS.skjema, auth=False)
        if len(response.content) > MAX_SCHEMA_ZIP_BYTES:
            raise RemoteError(SYSTEM, response.status_code, "skjema ZIP is larger than expected", method="GET",
                              url=PATHS.skjema)
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            if sum(i.file_size for i in infos) > MAX_SCHEMA_ZIP_BYTES:
                raise RemoteError(SYSTEM, response.status_code, "skjema ZIP unpacks larger than expected",
                                  method="GET", url=PATHS.skjema)
            return {i.filename: archive.read(i) for i in infos}

    async def eksamensplan(self, eksamensperiode: str | None = None, opplaeringsniva: Opplaeringsniva | None = None,
                           skoleorgno: str | None = None, *, xml: bool = False) -> EksamensplanResponse:
        """The exam plan of a period (default: the current one); ``skoleorgno`` adds that school's variants."""
        params = {k: v for k, v in (("eksamensperiode", eksamensperiode), ("opplaeringsniva", opplaeringsniva),
                                    ("skoleorgno", skoleorgno)) if v}
        return await self._get(EksamensplanResponse, PATHS.eksamensplan, params, xml=xml, auth=False)

    # --- registration ---------------------------------------------------------------------------------------------

    async def register(self, pamelding: Pamelding) -> str:
        """Send a registration (XML, XSD-checked first); Udir's guid for :meth:`status`."""
        body = codec.encode(pamelding)
        problems = codec.validate(Pamelding, body)
        if problems:
            raise ValueError("the registration does not validate against Pamelding.xsd: " + "; ".join(problems))
        response = await self._call("POST", PATHS.kandidatpamelding, content=body,
                                    headers={"Content-Type": "application/xml"})
        return self._parse(PameldingReference, response, "POST", PATHS.kandidatpamelding).reference

    async def status(self, guid: str, *, xml: bool = False) -> PameldingReport:
        return await self._get(PameldingReport, f"{PATHS.kandidatpamelding}/{guid}", {}, xml=xml)

    async def registered(self, orgnr: str, periodekode: str, *, xml: bool = False) -> PameldteKandidater:
        """Everyone registered at the school for the period, through the API or by hand."""
        return await self._get(PameldteKandidater, PATHS.kandidat, {"orgno": orgnr, "periodekode": periodekode},
                               xml=xml)

    async def delete(self, orgnr: str, periodekode: str, kandidatnummer: str, fagkode: str) -> None:
        params = {"kandidatnummer": kandidatnummer, "fagkode": fagkode, "orgno": orgnr, "periodekode": periodekode}
        await self._call("DELETE", PATHS.kandidat, params=params)

    async def delete_many(self, orgnr: str, periodekode: str, items: list[KandidatFagkode]) -> None:
        if not items:
            return
        await self._call("POST", PATHS.kandidat_slett, params={"orgno": orgnr, "periodekode": periodekode},
                         json=[item.to_json() for item in items])

    # --- results ----------------------------------------------------------------------------------------------------

    async def karakteroversikt(self, orgnr: str, periodekode: str, sas_bruker_referanse: str, *,
                               include_eksamen_avlyst: bool = False, xml: bool = False) -> Karakteroversikt:
        """Participation and grades (complaint grades included); ``include_eksamen_avlyst`` shows EA, not DF."""
        params = {"orgno": orgnr, "periodekode": periodekode, "sasBrukerReferanse": sas_bruker_referanse}
        if include_eksamen_avlyst:
            params["includeEksamenAvlystStatus"] = "true"
        return await self._get(Karakteroversikt, PATHS.karakteroversikt, params, xml=xml)

    async def sensoroppdrag(self, orgnr: str, periodekode: str) -> list[Fagperson]:
        """The school's appointed sensors and klagenemnd members (JSON only)."""
        path = f"{PATHS.sensoroppdrag}/{orgnr}/{periodekode}"
        response = await self._call("GET", path)
        try:
            return _FAGPERSONER.validate_json(response.text)
        except ValidationError as exc:
            raise RemoteError(SYSTEM, response.status_code, f"not a list of Fagperson: {sanitise(exc)}",
                              method="GET", url=path) from None

    # --- plumbing ---------------------------------------------------------------------------------------------------

    async def _get(self, model: type[Doc], path: str, params: dict[str, str], *, xml: bool,
                   auth: bool = True) -> Doc:
        accept = "application/xml" if xml else "application/json"
        response = await self._call("GET", path, auth=auth, params=params, headers={"Accept": accept})
        return self._parse(model, response, "GET", path)

    @staticmethod
    def _parse(model: type[Doc], response: httpx.Response, method: str, path: str) -> Doc:
        """Read JSON or XML by the answer's content type; a body of another shape is a RemoteError.

        The error says where the body broke the model and how, not what it holds: candidate lists and
        reports hold names as well as fødselsnummer.
        """
        try:
            if "xml" in response.headers.get("content-type", ""):
                return codec.decode(model, response.content)
            return model.model_validate_json(response.text)
        except (ValidationError, xmlsafe.XmlDocumentError) as exc:
            raise RemoteError(SYSTEM, response.status_code, f"not a {model.__name__}: {sanitise(exc)}",
                              method=method, url=path) from None

    async def _note_server_error(self, response: httpx.Response) -> None:
        """Response hook: the reference of each server error, before the retry loop drops the answer."""
        if response.status_code >= 500:
            await response.aread()
            if (reference := reference_of(response.text)) is not None:
                _MET.get().append(reference)

    async def _call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        met: list[str] = []
        context = _MET.set(met)
        try:
            if auth:
                return await self._auth.call(method, path, path, **kwargs)
            return await request(self._http, SYSTEM, method, path, retry=self._settings.retry, **kwargs)
        except RemoteError as exc:
            message = api_error_message(exc.body)
            if message is None:
                raise
            error = UdirServerError if isinstance(exc, TransientError) else UdirApiError
            raise error(exc.status_code, message, method=method, url=path, body=exc.body, references=met) from None
        finally:
            _MET.reset(context)
            self.references += met

