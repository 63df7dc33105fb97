"""Credentials as Prefect blocks (or environment variables), never in code, logs or flow parameters.

Register the block types once (``prefect block register -m skolflow.blocks``), save one block per
system in the UI or with ``skolflow credentials``-style scripts, and name it in the run
(``--beda-block``) or in ``SKOLFLOW_<SYSTEM>_BLOCK``. Without a block, ``SKOLFLOW_<SYSTEM>_URL`` and the
system's secret variables are read; the demo sets those to its sandboxes.
"""

from __future__ import annotations

import os
from typing import ClassVar, Self

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class MissingCredentials(RuntimeError):
    """Neither a block nor the environment says how to reach a system."""


class _ServiceBlock(Block):
    env_prefix: ClassVar[str]
    env_fields: ClassVar[dict[str, str]]

    @classmethod
    def from_env(cls) -> Self:
        values = {name: os.environ.get(f"{cls.env_prefix}_{suffix}") for name, suffix in cls.env_fields.items()}
        missing = [f"{cls.env_prefix}_{suffix}" for name, suffix in cls.env_fields.items()
                   if values[name] is None and cls.model_fields[name].is_required()]
        if missing:
            raise MissingCredentials(
                f"no {cls.__name__} block given and {', '.join(missing)} not set in the environment")
        return cls(**{k: v for k, v in values.items() if v is not None})

    @classmethod
    def resolve(cls, block_name: str | None = None) -> Self:
        name = block_name or os.environ.get(f"{cls.env_prefix}_BLOCK")
        if name:
            return cls.load(name)
        return cls.from_env()


class BedaCredentials(_ServiceBlock):
    """OAuth2 client credentials for Beda; they reach Beda's production database (no test environment)."""

    _block_type_name = "skolflow Beda"
    env_prefix: ClassVar[str] = "SKOLFLOW_BEDA"
    env_fields: ClassVar[dict[str, str]] = {"base_url": "URL", "client_id": "CLIENT_ID",
                                            "client_secret": "CLIENT_SECRET"}

    base_url: str = Field(default="https://gw.api.beda.uhr.se", description="Beda API base URL")
    client_id: str
    client_secret: SecretStr


class BetygApiCredentials(_ServiceBlock):
    """The school platform's Betyg and Betygsdokument APIs (same base URL, optional bearer token)."""

    _block_type_name = "skolflow Betyg API"
    env_prefix: ClassVar[str] = "SKOLFLOW_BETYG"
    env_fields: ClassVar[dict[str, str]] = {"base_url": "URL", "token": "TOKEN"}

    base_url: str
    token: SecretStr | None = None


class SS12000Credentials(_ServiceBlock):
    """The municipality's SS 12000 API: resolves platform GUIDs to personnummer and skolenhetskod."""

    _block_type_name = "skolflow SS 12000"
    env_prefix: ClassVar[str] = "SKOLFLOW_SS12000"
    env_fields: ClassVar[dict[str, str]] = {"base_url": "URL", "token": "TOKEN"}

    base_url: str
    token: SecretStr


class Skola24Credentials(_ServiceBlock):
    """Skola24's export services (Export Organisation, Export Lektion V3); the key opens the schools it names."""

    _block_type_name = "skolflow Skola24"
    env_prefix: ClassVar[str] = "SKOLFLOW_SKOLA24"
    env_fields: ClassVar[dict[str, str]] = {"base_url": "URL", "api_key": "API_KEY"}

    base_url: str
    api_key: SecretStr


class HaldorCredentials(_ServiceBlock):
    """OAuth2 client credentials for Haldor's schedule import."""

    _block_type_name = "skolflow Haldor"
    env_prefix: ClassVar[str] = "SKOLFLOW_HALDOR"
    env_fields: ClassVar[dict[str, str]] = {"base_url": "URL", "client_id": "CLIENT_ID",
                                            "client_secret": "CLIENT_SECRET"}

    base_url: str
    client_id: str
    client_secret: SecretStr


class UdirCredentials(_ServiceBlock):
    """OAuth2 client credentials for Udir's eksamen API (the school's SAS client in Udir's IdentityServer)."""

    _block_type_name = "skolflow Udir"
    env_prefix: ClassVar[str] = "SKOLFLOW_UDIR"
    env_fields: ClassVar[dict[str, str]] = {"base_url": "URL", "client_id": "CLIENT_ID",
                                            "client_secret": "CLIENT_SECRET", "scope": "SCOPE"}

    base_url: str = Field(default="https://eksamenapi-sas.udir.no", description="Udir's SAS test environment")
    client_id: str
    client_secret: SecretStr
    scope: str = "pas_api"


class DnpCredentials(_ServiceBlock):
    """Skolverket's DNP: the provisioning API, its authorisation server, and open data.

    DNP takes a bearer JWT from Skolverket's authorisation server, which issues it over mTLS to the huvudman's
    client certificate. Give the certificate and its key (PEM text or a file's path) and skolflow fetches and
    renews the token itself; or give a ``token`` fetched by hand, used as it is until it expires. With both, the
    certificate is used. ``auth_ca`` (PEM or path) is only for a server whose certificate the system's CA bundle
    does not vouch for, such as the sandbox's.
    """

    _block_type_name = "skolflow DNP"
    env_prefix: ClassVar[str] = "SKOLFLOW_DNP"
    env_fields: ClassVar[dict[str, str]] = {"base_url": "URL", "token": "TOKEN", "opendata_url": "OPENDATA_URL",
                                            "auth_url": "AUTH_URL", "certificate": "CERTIFICATE",
                                            "private_key": "PRIVATE_KEY", "auth_ca": "AUTH_CA"}

    base_url: str = Field(default="https://apigw-pre.skolverket.se/provtjanst/verifieringstest/provisioning/v1",
                          description="Skolverket's verification environment")
    token: SecretStr | None = Field(default=None, description="a JWT fetched by hand (without a certificate)")
    opendata_url: str = Field(default="https://apigw-pre.skolverket.se/provtjanst/verifieringstest/open-data/v1",
                              description="DNP's open data (test activities, school units)")
    # Skolverket issues tokens for both its verification and production environments here (environments.md).
    auth_url: str = Field(default="https://nutid-auth.sunet.se/transaction",
                          description="Skolverket's authorisation server (test: https://nutid-auth-test.sunet.se/"
                                      "transaction)")
    certificate: str | None = Field(default=None, description="the huvudman's client certificate: PEM or a path")
    private_key: SecretStr | None = Field(default=None, description="the certificate's private key: PEM or a path")
    auth_ca: str | None = Field(default=None, description="trust anchor for the authorisation server: PEM or a "
                                                          "path (default: the system's CA bundle)")

    def uses_certificate(self) -> bool:
        """True when tokens are fetched with the client certificate; MissingCredentials when there is no way in."""
        if self.certificate and self.private_key:
            return True
        if self.certificate or self.private_key:
            raise MissingCredentials("the DNP certificate and its private key go together: set both "
                                     "(SKOLFLOW_DNP_CERTIFICATE, SKOLFLOW_DNP_PRIVATE_KEY) or neither")
        if self.token is None:
            raise MissingCredentials("DNP needs the huvudman's client certificate and key (SKOLFLOW_DNP_CERTIFICATE, "
                                     "SKOLFLOW_DNP_PRIVATE_KEY) or a token (SKOLFLOW_DNP_TOKEN)")
        return False
