import httpx
import pytest
import respx

from skolflow.connectors.http import (
    AnswerLost,
    HttpSettings,
    RateLimiter,
    RemoteError,
    RetryPolicy,
    TransientError,
    build_client,
    is_transient_status,
    request,
    retry_after_seconds,
)
from tests.remote import MOCKED_REMOTE

FAST = RetryPolicy(attempts=4, backoff_base=0.001, backoff_max=0.01)
BASE = "https://api.example.se"
REMOTE = HttpSettings(door=MOCKED_REMOTE)


@respx.mock
async def test_transient_status_and_network_errors_are_retried() -> None:
    route = respx.get(f"{BASE}/x").mock(side_effect=[
        httpx.Response(503), httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200, json={})])
    retries: list[str] = []
    async with build_client(BASE, REMOTE, system="api") as client:
        response = await request(client, "demo", "GET", "/x", retry=FAST, on_retry=lambda n, why: retries.append(why))
    assert response.status_code == 200 and route.call_count == 4
    assert retries == ["HTTP 503", "ConnectError: refused", "ReadTimeout: slow"]


@respx.mock
async def test_validation_errors_are_never_retried_and_keep_the_remote_body() -> None:
    route = respx.post(f"{BASE}/x").mock(return_value=httpx.Response(422, json={"fel": [{"kod": "K"}]}))
    async with build_client(BASE, REMOTE, system="api") as client:
        with pytest.raises(RemoteError) as info:
            await request(client, "beda", "POST", "/x", retry=FAST)
    assert route.call_count == 1
    assert info.value.status_code == 422 and '"kod":"K"' in info.value.body.replace(" ", "")


@respx.mock
async def test_exhausted_retries_raise_transient_error() -> None:
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(502, text="bad gateway"))
    async with build_client(BASE, REMOTE, system="api") as client:
        with pytest.raises(TransientError, match="502"):
            await request(client, "demo", "GET", "/x", retry=FAST)


@respx.mock
async def test_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("skolflow.connectors.http.asyncio.sleep", fake_sleep)
    respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                             httpx.Response(200)])
    async with build_client(BASE, REMOTE, system="api") as client:
        await request(client, "demo", "GET", "/x", retry=FAST)
    assert waits == [7.0]


def test_retry_after_forms() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(httpx.Response(429, headers={"X-RateLimit-Reset": "2"})) == 2.0
    assert retry_after_seconds(httpx.Response(429, headers={"X-RateLimit-Reset": "2000000010"}),
                               now=2000000000) == 10.0
    date = "Wed, 21 Oct 2015 07:28:05 GMT"
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": date}), now=1445412480) == 5.0
    assert retry_after_seconds(httpx.Response(429)) is None


@respx.mock
async def test_prepare_sets_fresh_headers_on_each_attempt() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(503 if len(seen) == 1 else 200)

    respx.get(f"{BASE}/x").mock(side_effect=record)
    tokens = iter(["Bearer one", "Bearer two"])

    async def prepare() -> dict[str, str]:
        return {"Authorization": next(tokens)}

    async with build_client(BASE, REMOTE, system="api") as client:
        await request(client, "demo", "GET", "/x", retry=FAST, prepare=prepare)
    assert seen == ["Bearer one", "Bearer two"]


async def test_rate_limiter_spaces_calls() -> None:
    clock = [100.0]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))

    limiter = RateLimiter(5, clock=lambda: clock[0], sleep=fake_sleep)
    for _ in range(3):
        await limiter.acquire()
    assert waits == [0.2, 0.4]
    clock[0] += 10  # a quiet spell: the next call goes at once
    await limiter.acquire()
    assert waits == [0.2, 0.4]


@pytest.mark.parametrize(("status", "transient"), [(429, True), (500, True), (502, True), (503, True), (504, True),
                                                    (501, False), (505, False), (400, False), (404, False)])
def test_only_what_a_retry_can_change_is_transient(status: int, transient: bool) -> None:
    assert is_transient_status(status) is transient


@respx.mock
async def test_a_write_that_must_arrive_once_is_not_resent_after_its_answer_was_lost() -> None:
    lost = respx.post(f"{BASE}/once").mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json={})])
    async with build_client(BASE, REMOTE, system="api") as client:
        with pytest.raises(AnswerLost, match="ReadTimeout"):
            await request(client, "demo", "POST", "/once", retry=FAST, replay=False)
    assert lost.call_count == 1  # it may have been carried out: the caller asks before sending again

    unsent = respx.post(f"{BASE}/unsent").mock(side_effect=[
        httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200, json={})])
    async with build_client(BASE, REMOTE, system="api") as client:
        response = await request(client, "demo", "POST", "/unsent", retry=FAST, replay=False)
    assert response.status_code == 200 and unsent.call_count == 3  # nothing was carried out: sent again
