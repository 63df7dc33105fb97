"""What an admin sees, seen as a person would: headless Chromium (Debian's) on the server's UI, driven by Playwright.

Screenshots go to ``SKOLFLOW_SCREENSHOTS`` (``docs/screenshots`` to refresh the README's), else to the test's
temporary directory, so that running the suite does not rewrite tracked files.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .conftest import RunsOnServer, unavailable
from .test_production_setup import flow_names, flow_runs

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if executable is None:
        unavailable("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
    page.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    yield page
    page.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("SKOLFLOW_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def artifacts_of(api_url: str, flow_run_id: str) -> list[dict[str, Any]]:
    answer = httpx.post(f"{api_url}/artifacts/filter",
                        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}, timeout=30)
    answer.raise_for_status()
    return answer.json()


def test_the_runs_page_lists_every_flows_runs(page: Page, runs_on_server: RunsOnServer, screenshots: Path) -> None:
    api = runs_on_server.server.api_url
    names = flow_names(api)
    runs = flow_runs(api)
    page.goto(f"{runs_on_server.server.url}/runs")
    expect(page.get_by_text(f"{len(runs)} runs", exact=True)).to_be_visible()
    for flow in sorted({names[run["flow_id"]] for run in runs}):
        expect(page.get_by_text(flow, exact=True).first).to_be_visible()
    for name in sorted({run["name"] for run in runs}):
        expect(page.get_by_text(name, exact=True).first).to_be_attached()
    # The list of runs, not the chart above it, is what the screenshot is for.
    page.get_by_text(f"{len(runs)} runs", exact=True).evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=screenshots / "prefect-ui-runs.png")


def test_a_run_shows_its_table_and_markdown_artifacts(page: Page, runs_on_server: RunsOnServer,
                                                      screenshots: Path) -> None:
    api = runs_on_server.server.api_url
    names = flow_names(api)
    first_report = next(run for run in flow_runs(api) if names[run["flow_id"]] == "betyg-to-beda")
    artifacts = artifacts_of(api, first_report["id"])
    assert {a["type"] for a in artifacts} >= {"table", "markdown", "progress"}

    page.goto(f"{runs_on_server.server.url}/runs/flow-run/{first_report['id']}")
    expect(page.get_by_text(first_report["name"], exact=True).first).to_be_visible()
    page.get_by_role("tablist").get_by_text("Artifacts", exact=True).click()
    for artifact in artifacts:  # each a card named by its type and key (a progress artifact has no key)
        label = f"{artifact['type']} {artifact['key']}" if artifact["key"] else f"{artifact['type']} Created"
        expect(page.get_by_role("link", name=re.compile(f"^{re.escape(label)}"))).to_be_visible()
    page.screenshot(path=screenshots / "prefect-ui-artifacts.png")

    # The run writes its tables at once, so their order is not fixed: the rejected students' table by its key.
    rejected = next(a for a in artifacts if a["type"] == "table" and a["key"].endswith("-avvisade"))
    page.get_by_text(rejected["key"], exact=True).click()
    expect(page.get_by_text(re.compile(r"^\d{8}-\*{4}$")).first).to_be_visible()  # the student, masked
