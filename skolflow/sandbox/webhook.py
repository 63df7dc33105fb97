"""A webhook receiver sandbox: where failure notices land when no chat or on-call system is at hand.

``POST /notices`` keeps the JSON notice it is sent (see :mod:`skolflow.notify`); ``GET /_sandbox/state`` shows
every notice received, oldest first, and ``DELETE /_sandbox/state`` forgets them. Served with fault injection
like every sandbox, so a test or a user can see what a failing webhook does to a run (nothing: the run's own
state stands, and its log says the notice was not sent).

Standalone: ``uv run python -m skolflow.sandbox.webhook --port 8190``, then
``export SKOLFLOW_WEBHOOK_URL=http://127.0.0.1:8190/notices``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from skolflow.sandbox.faults import ADMIN_PREFIX
from skolflow.sandbox.runner import with_faults

NOTICES_PATH = "/notices"


def create_app() -> FastAPI:
    app = FastAPI(title="Webhook receiver sandbox (skolflow failure notices)")
    notices: list[dict[str, Any]] = []

    @app.post(NOTICES_PATH)
    async def receive(request: Request) -> Response:
        try:
            notice = json.loads(await request.body())
        except ValueError:
            notice = None
        if not isinstance(notice, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        notices.append(notice)
        return JSONResponse({"received": len(notices)}, status_code=202)

    @app.get(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    def state() -> dict[str, list[dict[str, Any]]]:
        return {"notices": notices}

    @app.delete(f"{ADMIN_PREFIX}/state", status_code=204, include_in_schema=False)
    def forget() -> None:
        notices.clear()

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m skolflow.sandbox.webhook", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8190)
    args = parser.parse_args(argv)
    url = f"http://{args.host}:{args.port}"
    print(f"webhook receiver {url}{NOTICES_PATH} (notices received: {url}{ADMIN_PREFIX}/state)", flush=True)
    print(f"export SKOLFLOW_WEBHOOK_URL={url}{NOTICES_PATH}", flush=True)
    uvicorn.run(with_faults(create_app(), "webhook"), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
