"""Credentials from a QGIS authentication configuration (QgsAuthManager), for scripted runs.

The panel has its own store (``ui/credentials.py``: per-backend configurations, refresh
tokens); Processing and scripts name one configuration id. Read here once, on the calling
thread, so the engine's worker threads never touch QgsAuthManager. Nothing is logged.
"""

from __future__ import annotations

from typing import Optional

from qgis.core import QgsApplication, QgsAuthMethodConfig

from ..core.backends import AUTH_BASIC, AUTH_OIDC_CLIENT_CREDENTIALS, BackendProfile, Credentials, CredentialsProvider


class AuthConfigError(ValueError):
    pass


def credentials_from_authcfg(authcfg: str, kind: str = AUTH_BASIC) -> Credentials:
    """The user name + password (``basic``) or client id + secret (``oidc_client_credentials``) of a
    "Basic" QGIS authentication configuration."""
    config = QgsAuthMethodConfig()
    manager = QgsApplication.authManager()
    if not authcfg or not manager.loadAuthenticationConfig(authcfg, config, True) or not config.isValid(True):
        raise AuthConfigError(f"QGIS has no usable authentication configuration {authcfg!r}.")
    username, password = config.config("username"), config.config("password")
    if not username:
        raise AuthConfigError(f"The authentication configuration {authcfg!r} has no user name.")
    if kind == AUTH_OIDC_CLIENT_CREDENTIALS:
        return Credentials(client_id=username, client_secret=password)
    return Credentials(username=username, password=password)


def fixed_credentials(credentials: Optional[Credentials]) -> CredentialsProvider:
    """A provider that hands the same credentials to every backend that asks."""

    def provider(_profile: BackendProfile) -> Optional[Credentials]:
        return credentials

    return provider
