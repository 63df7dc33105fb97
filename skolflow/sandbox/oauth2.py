"""The client-credentials token request every OAuth2 sandbox answers (Beda, Haldor, Udir).

One place reads the form and compares secrets in constant time; each sandbox decides its own status
codes (IdentityServer answers ``invalid_client`` with 400, the others with 401) and what a token opens.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs

from fastapi import Request


class TokenRefusal(Exception):
    """The request is refused with an RFC 6749 error code: ``unsupported_grant_type`` or ``invalid_client``."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


async def client_credentials(request: Request, known: Mapping[str, str], *, basic: bool = False) -> str:
    """The client id of a valid ``grant_type=client_credentials`` request, else :class:`TokenRefusal`.

    Credentials come from the form (``client_id``, ``client_secret``) or, with ``basic``, from HTTP Basic.
    """
    form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    if (form.get("grant_type") or [""])[0] != "client_credentials":
        raise TokenRefusal("unsupported_grant_type")
    if basic:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise TokenRefusal("invalid_client") from None
        if scheme.lower() != "basic":
            raise TokenRefusal("invalid_client")
    else:
        client_id, secret = ((form.get(name) or [""])[0] for name in ("client_id", "client_secret"))
    expected = known.get(client_id)
    if expected is None or not secrets.compare_digest(expected.encode(), secret.encode()):
        raise TokenRefusal("invalid_client")
    return client_id


def new_token() -> str:
    return secrets.token_urlsafe(32)
