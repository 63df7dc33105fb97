"""The first command a newcomer types works the first time: `skolflow demo` with a brand-new Prefect home.

A real process on Prefect's embedded server (no PREFECT_API_URL): Prefect creates its database first, which takes
longer than Prefect's own start-up timeout on a small, busy machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SKOLFLOW = str(Path(sys.executable).with_name("skolflow"))


def test_the_demo_works_on_a_fresh_prefect_home_and_says_where_its_runs_are(tmp_path: Path) -> None:
    home = tmp_path / "a new prefect home"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SKOLFLOW_", "PREFECT_"))}
    env |= {"PREFECT_HOME": str(home), "SKOLFLOW_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "400"}
    done = subprocess.run([SKOLFLOW, "demo", "--students", "20"], env=env, capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
    shown = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, shown[-3000:]
    assert f"creating its database at {home / 'prefect.db'}" in shown
    assert f"kept in Prefect's database ({home / 'prefect.db'})" in shown
    assert "~/.prefect" not in shown
    assert (home / "prefect.db").exists()
