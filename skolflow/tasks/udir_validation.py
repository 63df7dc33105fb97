"""`skolflow validate udir FILE`: the pipeline's own checks of a candidates file, nothing sent.

The same reading and rules as ``udir_registration`` (:mod:`skolflow.tasks.udir_candidates`). With a
period, fagkoder are checked against Udir's eksamensplan for it: a public resource, fetched from the
configured Udir (``SKOLFLOW_UDIR_URL`` or the Udir block), which is only read, never written to.
"""

from __future__ import annotations

import os
from pathlib import Path

from skolflow.blocks import MissingCredentials, UdirCredentials
from skolflow.connectors.http import RemoteError
from skolflow.connectors.udir.client import UdirClient
from skolflow.guard import check_target
from skolflow.identity import InvalidIdentity, validate_norwegian_orgnr
from skolflow.settings import Settings
from skolflow.tasks.udir_candidates import (
    RULE_FILE,
    CandidateFileError,
    CandidateProblem,
    School,
    check,
    read_candidates,
)


def _udir_url() -> str | None:
    try:
        return UdirCredentials.resolve().base_url
    except MissingCredentials:
        return os.environ.get("SKOLFLOW_UDIR_URL")


async def _fagkoder(periode: str, orgnr: str | None) -> tuple[frozenset[str] | None, str]:
    url = _udir_url()
    if not url:
        return None, "fagkoder not checked: no Udir configured (SKOLFLOW_UDIR_URL) to read the eksamensplan from"
    settings = Settings.from_env()
    # Reading the public plan sends nothing: production needs no confirmation, a sandbox profile stays local.
    check_target("udir", url, settings.profile, confirm_production=True)
    try:
        async with UdirClient(url, "", "", settings.http()) as udir:
            plan = await udir.eksamensplan(periode, None, orgnr)
    except RemoteError as exc:
        return None, f"fagkoder not checked: the eksamensplan could not be read ({exc})"
    return plan.fagkoder(), ""


async def validate_udir_file(path: Path, periode: str | None, skole: str | None) -> tuple[list[CandidateProblem], str]:
    """Every problem of the file (and a note on what was not checked)."""
    try:
        read = read_candidates(path)
    except CandidateFileError as exc:
        return [CandidateProblem("", "", RULE_FILE, str(exc))], ""
    orgnr = ""
    if skole:
        try:
            orgnr = validate_norwegian_orgnr(skole)
        except InvalidIdentity as exc:
            return [CandidateProblem("", "", "organisasjonsnummer", str(exc))], ""
    fagkoder, note = (None, "fagkoder not checked: give --periode to check them against Udir's eksamensplan")
    if periode:
        fagkoder, note = await _fagkoder(periode.strip().upper(), orgnr or None)
    school = School(orgnr, "", "", (periode or "").strip().upper())
    return check(read, school, fagkoder).problems, note
