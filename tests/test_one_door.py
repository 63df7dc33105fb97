"""One door out: every request skolflow sends is built by connectors/http.build_client and passes the guard there."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest
import respx

from skolflow.connectors.http import HttpSettings, RetryPolicy, build_client, request
from skolflow.connectors.ss12000.client import SS12000Client
from skolflow.guard import Door, ProductionGuardError, Profile

PACKAGE = Path(__file__).resolve().parents[1] / "skolflow"
DOOR = PACKAGE / "connectors" / "http.py"
# Ways to send a request without build_client; none may appear in skolflow outside the door itself.
SIDE_DOORS = {("httpx", name) for name in ("AsyncClient", "Client", "get", "post", "put", "patch", "delete", "head",
                                           "options", "request", "stream", "AsyncHTTPTransport", "HTTPTransport")}
SIDE_MODULES = {"requests", "urllib.request", "http.client", "aiohttp", "urllib3"}


def _side_doors(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        called = node.func if isinstance(node, ast.Call) else None
        if isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name) and \
                (called.value.id, called.attr) in SIDE_DOORS:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} httpx.{called.attr}(…)")
        if isinstance(node, ast.ImportFrom) and node.module == "httpx":
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} from httpx import {a.name}"
                      for a in node.names if ("httpx", a.name) in SIDE_DOORS]
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {m}" for m in modules
                  if m in SIDE_MODULES]
    return found


def test_no_module_sends_a_request_except_through_build_client() -> None:
    found = [hit for path in PACKAGE.rglob("*.py") if path != DOOR for hit in _side_doors(path)]
    assert found == []


@pytest.mark.parametrize("url", ["https://gw.api.beda.uhr.se", "http://10.0.0.8", "https://ss12000.kommun.invalid"])
async def test_a_client_built_without_a_door_reaches_this_machine_only(url: str) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route().mock(return_value=httpx.Response(200))
        async with build_client(url, system="ss12000") as client:
            with pytest.raises(ProductionGuardError, match="only talks to sandboxes on this machine"):
                await client.get("/persons")
        assert route.call_count == 0


async def test_the_guard_is_applied_to_every_request_and_never_retried() -> None:
    """Absolute URLs (webhooks, token endpoints) pass the door too, and a refusal is not a transient fault."""
    settings = HttpSettings(retry=RetryPolicy(attempts=6, backoff_base=0.0),
                            door=Door(Profile.PRODUCTION, confirm_production=False))
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route().mock(return_value=httpx.Response(200))
        async with build_client("", settings, system="webhook") as client:
            with pytest.raises(ProductionGuardError, match="confirm_production"):
                await request(client, "webhook", "POST", "https://hooks.example.se/x", retry=settings.retry)
        assert route.call_count == 0


async def test_test_profile_keeps_beda_out_even_through_a_connector_built_by_hand() -> None:
    settings = HttpSettings(door=Door(Profile.TEST))
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route().mock(return_value=httpx.Response(200, json={"data": []}))
        async with SS12000Client("https://ss12000.kommun.se/v2.0", "t", settings) as ss:
            assert [p async for p in ss.persons()] == []  # a test SS 12000 is fine in profile test
        assert route.call_count == 1
        async with build_client("https://beda.kommun.se", settings, system="beda") as beda:
            with pytest.raises(ProductionGuardError, match="Beda has no test environment"):
                await beda.post("/oauth2/token")
        assert route.call_count == 1
