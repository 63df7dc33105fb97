"""Wire models of Udir's eksamen API (seed 001; schemas/udir/*.xsd, copies of Udir's official XSDs).

One model per XSD complex type, fields in the XSD's sequence order (element order matters in XML).
Python attributes are snake_case; the aliases are the XSD's element names, which are also the JSON
property names Udir's .NET service answers with. Where the XML wraps a list in an element
(``<Kandidater><Kandidat/>…</Kandidater>``) the model holds a plain list, as the JSON does; the item
element's name is the item model's ``xml_item``.

The ``xml_ns`` of a model is the namespace its *child* elements are in: the namespace of the schema
declaring the type when that schema qualifies local elements, ``None`` where it does not
(PameldteKandidater.xsd). ``xml_nillable`` names the elements written as ``xsi:nil`` when empty;
other empty optional elements are left out. :mod:`skolflow.connectors.udir.codec` reads all three.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_pascal

NS_CT = "http://pas.udir.no/CommonTypes"
NS_PA = "http://pas.udir.no/Pamelding"
NS_EP = "http://pas.udir.no/Eksamensplan"
NS_KO = "http://pas.udir.no/Karakteroversikt"

Malform = Literal["Bokmal", "Nynorsk"]
Kandidattype = Literal["Elev", "Privatist"]
Opplaeringsniva = Literal["GS", "VGS"]
PameldingStatus = Literal["IkkeStartet", "Startet", "Ferdig", "Feilet", "DelvisFerdig"]
KandidatStatus = Literal["IkkeStartet", "Pameldt", "IkkePameldt", "DelvisPameldt", "PameldtAnnenSkole"]
# The 2016 XSD lists D, IDF, DF, MB; seed 001 adds EA, answered only with includeEksamenAvlystStatus=true.
Deltakelsesstatus = Literal["D", "IDF", "DF", "MB", "EA"]
Eksamensdeltype = Literal["Eksamen", "EksamenDel1", "EksamenDel2", "Forberedelse"]

FINAL_STATUSES: frozenset[str] = frozenset({"Ferdig", "Feilet", "DelvisFerdig"})


def _blank_is_none(value: Any) -> Any:
    """Udir writes an absent variant as ``<Variant />`` (see its PameldteKandidater example): no variant."""
    return None if value == "" else value


Variant = Annotated[str | None, BeforeValidator(_blank_is_none)]


class UdirModel(BaseModel):
    """Unknown properties in answers are ignored, so a field Udir adds does not break the client."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore")

    xml_ns: ClassVar[str | None] = NS_PA
    xml_item: ClassVar[str] = ""
    xml_nillable: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# --- CommonTypes ---------------------------------------------------------------------------------------------


class Kandidatgruppeansvarlig(UdirModel):
    """A teacher responsible for a candidate group (ct:KandidatgruppeansvarligType)."""

    xml_ns: ClassVar[str | None] = NS_CT
    xml_item: ClassVar[str] = "Kandidatgruppeansvarlig"
    xml_nillable: ClassVar[frozenset[str]] = frozenset({"Epostadresse", "Mobilnr"})

    fodselsnr: str
    fornavn: str
    etternavn: str
    malform: Malform | None = None
    epostadresse: str | None = None
    mobilnr: str | None = None


# --- Pamelding (request) -------------------------------------------------------------------------------------


class Kandidat(UdirModel):
    xml_item: ClassVar[str] = "Kandidat"

    fodselsnr: str
    fornavn: str
    etternavn: str
    malform: Malform
    kandidattype: Kandidattype


class Kandidatgruppe(UdirModel):
    """Candidates registered for one fagkode (and variant) in a named group at the school."""

    xml_item: ClassVar[str] = "Kandidatgruppe"
    xml_nillable: ClassVar[frozenset[str]] = frozenset({"Navn"})

    navn: str | None
    fagkode: str
    variant: Variant = None
    kandidatgruppeansvarlige: list[Kandidatgruppeansvarlig] = Field(default_factory=list)
    kandidater: list[Kandidat] = Field(default_factory=list)


class Pamelding(UdirModel):
    """A registration: the school (``orgnr``) and its candidate groups for one exam period."""

    brukernavn_pas: str = Field(alias="BrukernavnPAS")
    eksamens_periode_kode: str
    orgnr: str
    skolenavn: str
    kandidatgrupper: list[Kandidatgruppe] = Field(default_factory=list)
    opplaeringsniva: Opplaeringsniva | None = None
    epostadresse_ved_feil: str | None = None


class PameldingReference(UdirModel):
    reference: str


class ApiError(UdirModel):
    message: str


# --- PameldingReport -----------------------------------------------------------------------------------------


class KandidatReport(UdirModel):
    xml_item: ClassVar[str] = "Kandidat"

    fodselsnr: str
    kandidatnr: str
    status: KandidatStatus
    status_message: str


class KandidatgruppeansvarligReport(UdirModel):
    xml_item: ClassVar[str] = "Kandidatgruppeansvarlig"

    fodselsnr: str


class KandidatgruppeReport(UdirModel):
    xml_item: ClassVar[str] = "Kandidatgruppe"
    xml_nillable: ClassVar[frozenset[str]] = frozenset({"Navn"})

    navn: str | None
    fagkode: str
    variant: Variant = None
    opplaeringsniva: Opplaeringsniva | None = None
    kandidatgruppeansvarlige: list[KandidatgruppeansvarligReport] = Field(default_factory=list)
    kandidater: list[KandidatReport] = Field(default_factory=list)


class PameldingReport(UdirModel):
    """The status of one registration; per candidate ``Status`` and Udir's own ``StatusMessage``."""

    xml_nillable: ClassVar[frozenset[str]] = frozenset({"StatusMessage", "Eksamensperiode"})

    orgnr: str
    skolenavn: str
    kandidatgrupper: list[KandidatgruppeReport] = Field(default_factory=list)
    status: PameldingStatus
    status_message: str | None = None
    eksamensperiode: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


# --- PameldteKandidater (unqualified local elements) ---------------------------------------------------------


class PameldtKandidat(UdirModel):
    xml_ns: ClassVar[str | None] = None
    xml_item: ClassVar[str] = "Kandidat"
    xml_nillable: ClassVar[frozenset[str]] = frozenset({"Malform"})

    fodselsnr: str
    fornavn: str
    etternavn: str
    malform: Malform | None = None
    kandidattype: Kandidattype
    kandidatnummer: str


class PameldtKandidatgruppe(UdirModel):
    xml_ns: ClassVar[str | None] = None
    xml_item: ClassVar[str] = "Kandidatgruppe"

    navn: str
    kandidatgruppeansvarlige: list[Kandidatgruppeansvarlig] = Field(default_factory=list)
    kandidater: list[PameldtKandidat] = Field(default_factory=list)


class Eksamenspamelding(UdirModel):
    xml_ns: ClassVar[str | None] = None
    xml_item: ClassVar[str] = "Eksamenspamelding"

    fagkode: str
    variant: Variant = None
    kandidatgrupper: list[PameldtKandidatgruppe] = Field(default_factory=list)


class PameldteKandidater(UdirModel):
    """Everyone registered at a school for a period, through the API or by hand in PAS."""

    xml_ns: ClassVar[str | None] = None

    eksamensperiodekode: str
    eksamenspameldinger: list[Eksamenspamelding] = Field(default_factory=list)


# --- Eksamensplan --------------------------------------------------------------------------------------------


class Eksamensdel(UdirModel):
    xml_ns: ClassVar[str | None] = NS_EP
    xml_item: ClassVar[str] = "Eksamensdel"

    type: Eksamensdeltype
    gjennomforing_start: dt.datetime
    gjennomforing_stopp: dt.datetime
    varighet: int


class Eksamen(UdirModel):
    xml_ns: ClassVar[str | None] = NS_EP
    xml_item: ClassVar[str] = "Eksamen"

    fagkode: str
    variant: Variant = None
    eksamensdeler: list[Eksamensdel] = Field(default_factory=list)


class Eksamensperiode(UdirModel):
    xml_ns: ClassVar[str | None] = NS_EP

    kode: str
    pamelding_start: dt.datetime
    pamelding_stopp: dt.datetime
    gjennomforing_start: dt.datetime
    gjennomforing_stopp: dt.datetime


class Eksamensplan(UdirModel):
    xml_ns: ClassVar[str | None] = NS_EP
    xml_item: ClassVar[str] = "Eksamensplan"

    opplaeringsniva: Opplaeringsniva
    eksamensperiode: Eksamensperiode
    eksamener: list[Eksamen] = Field(default_factory=list)


class EksamensplanResponse(UdirModel):
    xml_ns: ClassVar[str | None] = NS_EP

    eksamensplaner: list[Eksamensplan] = Field(default_factory=list)

    def fagkoder(self, opplaeringsniva: Opplaeringsniva | None = None) -> frozenset[str]:
        """The fagkoder of one level's plan, or of every level's: Udir judges a registration at one level."""
        return frozenset(eksamen.fagkode for plan in self.eksamensplaner
                         if opplaeringsniva in (None, plan.opplaeringsniva) for eksamen in plan.eksamener)

    def levels(self, fagkode: str) -> frozenset[Opplaeringsniva]:
        return frozenset(plan.opplaeringsniva for plan in self.eksamensplaner
                         if any(eksamen.fagkode == fagkode for eksamen in plan.eksamener))

    def perioder(self) -> frozenset[str]:
        """The periods the answer holds plans for: asked for a period Udir does not know, it holds none of it."""
        return frozenset(plan.eksamensperiode.kode for plan in self.eksamensplaner)


# --- Karakteroversikt ----------------------------------------------------------------------------------------


class KandidatMedKarakter(UdirModel):
    """A candidate's participation and grade; ``karakter`` is 0 where there is none (the XSD requires an int)."""

    xml_ns: ClassVar[str | None] = NS_KO
    xml_item: ClassVar[str] = "Kandidat"
    xml_nillable: ClassVar[frozenset[str]] = frozenset({"Klagekarakter", "Klagebegrunnelse"})

    fodselsnr: str
    kandidatnr: str
    deltakelsesstatus: Deltakelsesstatus
    karakter: int
    klagekarakter: int | None = None
    klagebegrunnelse: str | None = None


class KandidatgruppeMedKarakter(UdirModel):
    xml_ns: ClassVar[str | None] = NS_KO
    xml_item: ClassVar[str] = "Kandidatgruppe"
    xml_nillable: ClassVar[frozenset[str]] = frozenset({"Navn"})

    navn: str | None
    kandidater: list[KandidatMedKarakter] = Field(default_factory=list)


class EksamenMedKarakter(UdirModel):
    xml_ns: ClassVar[str | None] = NS_KO
    xml_item: ClassVar[str] = "Eksamen"

    fagkode: str
    variant: Variant = None
    kandidatgrupper: list[KandidatgruppeMedKarakter] = Field(default_factory=list)


class Karakteroversikt(UdirModel):
    xml_ns: ClassVar[str | None] = NS_KO

    skoleorgnr: str
    eksamener: list[EksamenMedKarakter] = Field(default_factory=list)


# --- JSON-only resources (no XSD: skolflow's model of what seed 001 describes) --------------------------------


class KandidatFagkode(UdirModel):
    """One item of the JSON list that ``POST kandidat/slett`` takes."""

    kandidatnummer: str
    fagkode: str


class Fagperson(UdirModel):
    """A person appointed at the school, with the fagkoder they are sensor in and klagenemnd member in.

    Seed 001 names the content but its data model is not public; these names are skolflow's.
    """

    fodselsnr: str
    fornavn: str
    etternavn: str
    sensor_fagkoder: list[str] = Field(default_factory=list)
    klagenemnd_fagkoder: list[str] = Field(default_factory=list)
