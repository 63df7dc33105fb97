"""`skolflow validate udir FILE`: the pipeline's own checks of a candidates file, nothing sent.

The same reading and rules as ``udir_registration`` (:mod:`skolflow.tasks.udir_candidates`). With a
period, fagkoder are checked against Udir's eksamensplan for it: a public resource, fetched from the
configured Udir (``SKOLFLOW_UDIR_URL`` or the Udir block), which is only read, never written to. The read
passes the production guard like every request: in profile ``production`` it needs ``--confirm-production``.

A plan that cannot be read (no Udir configured, Udir unreachable or failing) leaves the fagkoder unchecked
and says so. A plan Udir *answers* is a verdict: a period it has no plan for, or a school it refuses to
give one for, is a problem of the run like any other, since a registration would be refused for it too.
"""

from __future__ import annotations

import os
from pathlib import Path

from skolflow.blocks import MissingCredentials, UdirCredentials
from skolflow.connectors.http import RemoteError, TransientError
from skolflow.connectors.udir.client import UdirApiError, UdirClient
from skolflow.connectors.udir.models import EksamensplanResponse, Opplaeringsniva
from skolflow.connectors.udir.rules import LEVEL_NAMES
from skolflow.errors import scrub
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

RULE_PLAN = "eksamensplan"
RULE_LEVEL_OPTION = "opplaeringsniva"


def _udir_url() -> str | None:
    try:
        return UdirCredentials.resolve().base_url
    except MissingCredentials:
        return os.environ.get("SKOLFLOW_UDIR_URL")




async def _plan(periode: str, orgnr: str | None,
                confirm_production: bool) -> tuple[EksamensplanResponse | None, str, list[CandidateProblem]]:
    """Every level's plan for the period (the rows' level is judged from it), a note, or Udir's refusal."""
    url = _udir_url()
    if not url:
        return None, "fagkoder not checked: no Udir configured (SKOLFLOW_UDIR_URL) to read the eksamensplan from", []
    http = Settings.from_env().http(confirm_production)
    http.door.check("udir", url)
    try:
        async with UdirClient(url, "", "", http) as udir:
            return await udir.eksamensplan(periode, None, orgnr), "", []
    except UdirApiError as exc:
        if isinstance(exc, TransientError):
            return None, f"fagkoder not checked: the eksamensplan could not be read ({exc})", []
        refused = CandidateProblem("", "", RULE_PLAN, f"Udir svarte {exc.status_code} på eksamensplanen for "
                                                      f"{periode}: {scrub(exc.message)}")
        return None, "", [refused]
    except RemoteError as exc:
        return None, f"fagkoder not checked: the eksamensplan could not be read ({exc})", []


async def validate_udir_file(path: Path, periode: str | None, skole: str | None, confirm_production: bool = False,
                             opplaeringsniva: str | None = None) -> tuple[list[CandidateProblem], str]:
    """Every problem of the file (and a note on what was not checked).

    ``opplaeringsniva``: the level the registration will name; without it the rows are judged at the
    level most of them are at, as the registration does.
    """
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
    given = (opplaeringsniva or "").strip().upper()
    level: Opplaeringsniva | None = next((n for n in LEVEL_NAMES if n == given), None)
    if given and level is None:
        return [CandidateProblem("", "", RULE_LEVEL_OPTION, f"Opplæringsnivået '{opplaeringsniva}' er ikke gyldig "
                                                             "(GS eller VGS).")], ""
    plan, note, refused = None, "fagkoder not checked: give --periode to check them against Udir's eksamensplan", []
    if periode:
        plan, note, refused = await _plan(periode.strip().upper(), orgnr or None, confirm_production)
    school = School(orgnr, "", "", (periode or "").strip().upper(), level)
    return refused + check(read, school, plan).problems, note
