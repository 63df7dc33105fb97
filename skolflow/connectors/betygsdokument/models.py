"""The Betygsdokument API's wire data (PING PONG betygsdokument v2.0) as frozen values.

Field names are the XML element names folded to ASCII (``utfärdat`` → ``utfardat``). Ids stay exactly
as the document writes them (platform GUIDs in braces); ``skolenhetskod`` is kept as text so that its
eight digits survive as written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

# The XSD's DokumentTyp enumeration (r20); Beda validates diploma types against the same list.
DOCUMENT_TYPES = (
    "GY_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE",
    "GY_EXAMENSBEVIS_INGENJOR",
    "GY_EXAMENSBEVIS_YRKESFORBEREDANDE",
    "GY_GYMNASIEINTYG",
    "GY_SLUTBETYG",
    "GY_STUDIEBEVIS",
    "GYSAR02_SLUTBETYG",
    "GYSAR_STUDIEBEVIS_FOR_INDIVIDUELLT",
    "GYSAR_STUDIEBEVIS_FOR_NATIONELLT",
    "VUX_EXAMENSBEVIS_HOGSKOLEFORBEREDANDE",
    "VUX_EXAMENSBEVIS_YRKESFORBEREDANDE",
    "VUX_KUNSKAPSINTYG",
    "VUX_SLUTBETYG",
    "VUX_SLUTBETYG_GY",
)


class Amne(NamedTuple):
    """A subject on the document: its förkortning and, for languages, the språk read."""

    forkortning: str
    sprak: str | None = None


@dataclass(frozen=True)
class GradeDocument:
    """One ``<dokument>``: the latest issued document of its type for a student."""

    elev: str
    studievagskod: str | None
    utfardat: dt.date
    skola: str
    skolenhetskod: str
    typ: str
    grundlaggandebehorighet: bool | None = None  # only for yrkesexamen documents
    amnen: tuple[Amne, ...] = ()
    kurser: tuple[str, ...] = ()
