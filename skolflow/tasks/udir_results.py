"""Karakteroversikt and sensoroppdrag as tables an administrator opens in Excel, statuses explained.

The files are for the school's own administration, written under the data directory; they name
candidates by kandidatnummer and masked fødselsnummer unless the run asks for the full number (for an
import into the school's administrative system). Nothing here goes to the Prefect UI but counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from skolflow.connectors.udir.models import Fagperson, Karakteroversikt
from skolflow.identity import mask

# Udir's participation statuses (CommonTypes.xsd DeltakelsesstatusType; EA from seed 001).
DELTAKELSE = {
    "D": "Deltatt",
    "IDF": "Ikke dokumentert fravær",
    "DF": "Dokumentert fravær",
    "MB": "Manglende besvarelse",
    "EA": "Eksamen avlyst (Udir svarer DF for disse uten includeEksamenAvlystStatus)",
}
RESULT_COLUMNS = ("fagkode", "variant", "kandidatgruppe", "kandidatnummer", "fodselsnummer", "deltakelsesstatus",
                  "deltakelse", "karakter", "klagekarakter", "klagebegrunnelse")
SENSOR_COLUMNS = ("fodselsnummer", "fornavn", "etternavn", "sensor_i", "klagenemnd_i")


def results_frame(overview: Karakteroversikt, *, full_identity: bool = False) -> pd.DataFrame:
    """One row per candidate and exam; ``karakter`` empty where Udir's 0 means 'no grade'."""
    rows = []
    for exam in overview.eksamener:
        for group in exam.kandidatgrupper:
            for k in group.kandidater:
                shown = k.fodselsnr if full_identity else mask(k.fodselsnr)
                rows.append({
                    "fagkode": exam.fagkode, "variant": exam.variant or "", "kandidatgruppe": group.navn or "",
                    "kandidatnummer": k.kandidatnr, "fodselsnummer": shown,
                    "deltakelsesstatus": k.deltakelsesstatus,
                    "deltakelse": DELTAKELSE.get(k.deltakelsesstatus, k.deltakelsesstatus),
                    "karakter": k.karakter if k.karakter else None, "klagekarakter": k.klagekarakter,
                    "klagebegrunnelse": k.klagebegrunnelse or ""})
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    return frame.astype({"karakter": "Int64", "klagekarakter": "Int64"})


def sensors_frame(people: list[Fagperson], *, full_identity: bool = False) -> pd.DataFrame:
    return pd.DataFrame([{"fodselsnummer": p.fodselsnr if full_identity else mask(p.fodselsnr),
                          "fornavn": p.fornavn, "etternavn": p.etternavn, "sensor_i": ", ".join(p.sensor_fagkoder),
                          "klagenemnd_i": ", ".join(p.klagenemnd_fagkoder)} for p in people],
                        columns=list(SENSOR_COLUMNS))


def status_counts(results: pd.DataFrame) -> list[dict[str, object]]:
    """Per fagkode and status, explained: what the Prefect UI shows (no candidate in it)."""
    if results.empty:
        return []
    counts = results.groupby(["fagkode", "deltakelsesstatus"]).size().reset_index(name="kandidater")
    counts["deltakelse"] = counts["deltakelsesstatus"].map(lambda s: DELTAKELSE.get(s, s))
    graded = results.dropna(subset=["karakter"]).groupby("fagkode")["karakter"].mean().round(2)
    counts["snittkarakter"] = counts["fagkode"].map(lambda f: float(graded[f]) if f in graded else None)
    return counts.to_dict(orient="records")


@dataclass(frozen=True)
class Written:
    csv: Path
    sensors_csv: Path
    excel: Path


def write_files(results: pd.DataFrame, sensors: pd.DataFrame, directory: Path, stem: str) -> Written:
    """CSV with ';' and a BOM (how Excel in Norway opens it right) and one workbook with both sheets."""
    directory.mkdir(parents=True, exist_ok=True)
    written = Written(directory / f"{stem}-karakterer.csv", directory / f"{stem}-sensorer.csv",
                      directory / f"{stem}.xlsx")
    results.to_csv(written.csv, sep=";", index=False, encoding="utf-8-sig")
    sensors.to_csv(written.sensors_csv, sep=";", index=False, encoding="utf-8-sig")
    with pd.ExcelWriter(written.excel, engine="openpyxl") as book:
        results.to_excel(book, sheet_name="Karakteroversikt", index=False)
        sensors.to_excel(book, sheet_name="Sensoroppdrag", index=False)
        pd.DataFrame([{"status": k, "betydning": v} for k, v in DELTAKELSE.items()]).to_excel(
            book, sheet_name="Deltakelsesstatus", index=False)
    return written
