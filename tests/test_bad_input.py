"""Bad input as a user meets it on a terminal (real processes): a message that says what is wrong, a non-zero exit,
never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

SKOLFLOW = str(Path(sys.executable).with_name("skolflow"))

pytestmark = pytest.mark.usefixtures("prefect_harness")


class _Refusing(BaseHTTPRequestHandler):
    """A remote system that refuses everything (403), as one with a revoked client would."""

    def _refuse(self) -> None:
        body = b'{"detail": "Forbidden"}'
        self.send_response(403)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def refusing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def skolflow(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("SKOLFLOW_")}
    base |= {"SKOLFLOW_DATA_DIR": str(tmp_path / "data"), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
             "COLUMNS": "400"}
    done = subprocess.run([SKOLFLOW, *args], env={**base, **env}, capture_output=True, text=True, timeout=300)
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def files(tmp_path: Path) -> dict[str, Path]:
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("fodselsnummer,fornavn\n01018036736,Åse\n".encode("utf-16"))
    notxml = tmp_path / "export.xml"
    notxml.write_text("fodselsnummer;namn\n")
    return {"utf16": utf16, "notxml": notxml}


CASES = {
    "a month 13": (["run", "betyg-to-beda", "--anslutningspart", "2120000142", "--from", "2026-13-01"], {}, 2,
                   "'2026-13-01' is not a date and time"),
    "a bad organisationsnummer": (["run", "betyg-to-beda", "--anslutningspart", "123"], {}, 1,
                                  "'123' is not a valid organisationsnummer"),
    "a UTF-16 candidates file": (["validate", "udir", "{utf16}"], {}, 1, "utf16.csv: not readable as"),
    "a file that is not XML": (["validate", "betyg", "{notxml}"], {}, 1, "xml"),
    "a bad number of attempts": (["history", "beda"], {"SKOLFLOW_HTTP_ATTEMPTS": "six"}, 1,
                                 "SKOLFLOW_HTTP_ATTEMPTS must be a whole number"),
    "a profile that does not exist": (["history", "beda"], {"SKOLFLOW_PROFILE": "prod"}, 1,
                                      "SKOLFLOW_PROFILE must be one of sandbox, test, production"),
    "a remote 4xx": (["run", "dnp-provisioning", "--huvudman", "2120000142"],
                     {"SKOLFLOW_SS12000_URL": "{refusing}", "SKOLFLOW_SS12000_TOKEN": "t",
                      "SKOLFLOW_DNP_URL": "{refusing}", "SKOLFLOW_DNP_TOKEN": "t",
                      "SKOLFLOW_DNP_OPENDATA_URL": "{refusing}"}, 1, "answered 403"),  # the source is read at once
    "retries exhausted": (["run", "dnp-provisioning", "--huvudman", "2120000142"],
                          {"SKOLFLOW_SS12000_URL": "http://127.0.0.1:9", "SKOLFLOW_SS12000_TOKEN": "t",
                           "SKOLFLOW_DNP_TOKEN": "t", "SKOLFLOW_DNP_URL": "http://127.0.0.1:9",
                           "SKOLFLOW_DNP_OPENDATA_URL": "http://127.0.0.1:9", "SKOLFLOW_HTTP_ATTEMPTS": "2"}, 1,
                          "All connection attempts failed"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_user_error_is_one_message_and_no_traceback(case: str, tmp_path: Path, refusing: str) -> None:
    args, env, code, said = CASES[case]
    paths = {**files(tmp_path), "refusing": refusing}
    exit_code, shown = skolflow(tmp_path, *(a.format(**paths) for a in args),
                                **{k: v.format(**paths) for k, v in env.items()})
    assert exit_code == code, shown
    assert said in shown, shown
    assert "Traceback" not in shown, shown
