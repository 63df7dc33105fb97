"""Client of the Betygsdokument API: ``GET /api/skolplattform/betygsdokument?from=…&tom=…``.

The answer is streamed to a file like the Betyg API's (same platform, same window and auth); read it
with :func:`skolflow.connectors.betygsdokument.codec.iter_documents`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from skolflow.connectors.betyg.client import PlatformExportClient


class BetygsdokumentClient(PlatformExportClient):
    """``async with BetygsdokumentClient(url, token) as client: path = await client.fetch(start, end, dest=...)``."""

    system = "betygsdokument"
    path = "/api/skolplattform/betygsdokument"

    async def fetch(self, start: dt.datetime, end: dt.datetime, *, dest: Path) -> Path:
        """Download the documents of students changed in [start, end) to ``dest``; return ``dest``."""
        return await self._fetch(start, end, dest)
