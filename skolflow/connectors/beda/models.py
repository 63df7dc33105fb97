"""Wire models of Beda's API as skolflow defines it (DESIGN §4; schemas/beda/beda-api.json).

Beda's API is not public. These models are skolflow's contract until UHR publishes one, kept in
step with ``schemas/beda/beda-api.json``. Field names are Beda's (Swedish, camelCase on the wire);
Python attributes are snake_case.

Fields whose *content* Beda judges (skolform, dokumenttyp, dates, codes) are plain strings here, so
that a wrong value reaches :func:`skolflow.connectors.beda.validation.validate_merits` and is
reported with Beda's own ``kod`` instead of failing the whole request at parse time.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from skolflow.connectors.betygsdokument.models import DOCUMENT_TYPES

MAX_BATCH = 200

# Beda takes the diploma types of the Betygsdokument API (v2.0): one list, kept with that contract.
DOKUMENTTYPER: tuple[str, ...] = DOCUMENT_TYPES


def _iso_date(value: Any) -> Any:
    """Let callers pass a ``datetime.date``; the wire carries ``YYYY-MM-DD``."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


IsoDate = Annotated[str, BeforeValidator(_iso_date)]


class _Request(BaseModel):
    """What skolflow sends: unknown keys are refused, so a misspelt key is never silently 'absent'."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Answer(BaseModel):
    """What Beda answers: unknown keys are ignored, so an added field does not break the client."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Kursbetyg(_Request):
    """One decided course grade (``typ="kurs"``) or subject grade (``typ="amne"``)."""

    skolenhetskod: str
    skolform: str
    typ: Literal["kurs", "amne"]
    kod: str  # kurskod or ämnesförkortning, language included ("M2FRA")
    betyg: str
    beslutsdatum: IsoDate
    provning: bool = False
    betygsliknande_omdome: bool = False


class Examen(_Request):
    """One diploma or certificate; ``dokumenttyp`` is a DokumentTyp value of the Betygsdokument API."""

    skolenhetskod: str
    dokumenttyp: str
    utfardat: IsoDate
    studievagskod: str | None = None
    grundlaggande_behorighet: bool | None = None
    kurser: list[str] = Field(default_factory=list)


class Merits(_Request):
    """A student's merits. ``None`` = key absent = Beda keeps what it holds; ``[]`` = remove them all."""

    personnummer: str
    kursbetyg: list[Kursbetyg] | None = None
    examen: list[Examen] | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON body: absent collections stay absent, empty ones stay empty."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class BatchRequest(_Request):
    elever: list[Merits]


class Fel(_Answer):
    """One problem Beda found: a stable ``kod``, the field path (``kursbetyg[2].betyg``), a Swedish message."""

    model_config = ConfigDict(frozen=True)

    kod: str
    falt: str
    meddelande: str


class StudentResult(_Answer):
    personnummer: str
    status: Literal["GODKAND", "AVVISAD"]
    fel: list[Fel] = Field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status == "GODKAND"


class BatchResponse(_Answer):
    resultat: list[StudentResult]


class ErrorResponse(_Answer):
    """A refusal of the whole request (400, 401, 403, 413)."""

    fel: list[Fel]
