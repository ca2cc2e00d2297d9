"""Signing the demo in to a backend: no secret on the command line, none in a log or a file of ours.

* ``none``: nothing.
* ``basic``: user name and password from ``OPENEO_USERNAME`` / ``OPENEO_PASSWORD``, else from
  the openeo client's own auth config (``openeo-auth add-basic URL``), else asked on the
  terminal (the password without echo).
* ``oidc``: the OpenID Connect device flow of :meth:`core.backends.Backend.sign_in` (it prints
  the URL and the code to enter in a browser). The refresh token is kept in the openeo
  client's refresh-token store (``~/.local/share/openeo-python-client/refresh-tokens.json``,
  private file), the same one ``connection.authenticate_oidc()`` uses, so the next run (or a
  notebook) signs in without the browser; ``--no-token-store`` keeps it in memory only.
"""

from __future__ import annotations

import getpass
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import openeo
from openeo.rest.auth.oidc import DefaultOidcClientGrant, OidcProviderInfo

from ..core.backends import (
    AUTH_BASIC,
    AUTH_NONE,
    AUTH_OIDC_DEVICE,
    BackendProfile,
    Credentials,
    CredentialsProvider,
    RefreshTokenSink,
    SignInRequiredError,
    make_session,
)

__all__ = ["AUTH_OIDC_DEVICE", "PROFILE_AUTH", "SignInError", "credentials_for", "discover_oidc", "sign_in_backends"]

PROFILE_AUTH = {"none": AUTH_NONE, "basic": AUTH_BASIC, "oidc": AUTH_OIDC_DEVICE}


class SignInError(RuntimeError):
    """The demo cannot sign in (message is for the user)."""


@dataclass
class OidcClient:
    provider_id: str
    issuer: str
    client_id: str


def discover_oidc(
    url: str, provider_id: Optional[str], client_id: Optional[str], proxies: Optional[dict[str, str]] = None
) -> OidcClient:
    """Provider and client the engine will use (same choice as ``core.backends``), for the token store key."""
    session = make_session(proxies)
    connection = openeo.Connection(url, session=session, auto_validate=False)
    listing = connection.get("/credentials/oidc", expected_status=200).json()
    providers = {p["id"]: p for p in listing.get("providers", [])}
    if not providers:
        raise SignInError(f"{url} offers no OpenID Connect sign-in.")
    if provider_id and provider_id not in providers:
        raise SignInError(f"{url} has no OpenID Connect provider {provider_id!r} (it has {', '.join(providers)}).")
    p = providers[provider_id] if provider_id else next(iter(providers.values()))
    if not client_id:
        info = OidcProviderInfo(
            provider_id=p["id"],
            issuer=p["issuer"],
            scopes=p.get("scopes"),
            default_clients=p.get("default_clients"),
            requests_session=session,
        )
        g = DefaultOidcClientGrant
        wanted = (g.DEVICE_CODE, g.DEVICE_CODE_PKCE, g.REFRESH_TOKEN)
        client_id = info.get_default_client_id(grant_check=lambda grants: any(w in grants for w in wanted))
    if not client_id:
        raise SignInError(f"{url} offers no default OpenID Connect client: give --oidc-client-id.")
    return OidcClient(provider_id=p["id"], issuer=p["issuer"], client_id=client_id)


def _basic_credentials(url: str, local_default: Optional[tuple[str, str]]) -> Credentials:
    user, password = os.environ.get("OPENEO_USERNAME"), os.environ.get("OPENEO_PASSWORD")
    if not (user and password is not None):
        try:
            from openeo.rest.auth.config import AuthConfig

            stored_user, stored_password = AuthConfig().get_basic_auth(backend=url)
        except Exception:  # noqa: BLE001 (no or unreadable config: ask)
            stored_user = stored_password = None
        user, password = user or stored_user, password if password is not None else stored_password
    if not (user and password is not None) and local_default is not None:
        user, password = local_default
    if not (user and password is not None):
        if not sys.stdin.isatty():
            raise SignInError(
                "Basic sign-in needs OPENEO_USERNAME and OPENEO_PASSWORD in the environment "
                "(or `openeo-auth add-basic URL`, or a terminal to type them in)."
            )
        user = user or input(f"User name for {url}: ").strip()
        password = getpass.getpass(f"Password for {user}: ")
    return Credentials(username=user, password=password)


def credentials_for(
    profile: BackendProfile,
    *,
    token_store: bool = True,
    oidc: Optional[OidcClient] = None,
    local_basic: Optional[tuple[str, str]] = None,
) -> tuple[Optional[CredentialsProvider], Optional[RefreshTokenSink]]:
    """The engine's credentials provider and refresh-token sink for a profile (secrets stay in memory)."""
    if profile.auth == AUTH_NONE:
        return None, None
    if profile.auth == AUTH_BASIC:
        creds = _basic_credentials(profile.url, local_basic)
        return (lambda _profile: creds), None
    store = None
    if token_store and oidc is not None:
        from openeo.rest.auth.config import RefreshTokenStore

        store = RefreshTokenStore()
    memory: dict[str, str] = {}

    def provider(_profile: BackendProfile) -> Credentials:
        token = memory.get("refresh_token")
        if token is None and store is not None and oidc is not None:
            token = store.get_refresh_token(oidc.issuer, oidc.client_id)
        return Credentials(
            refresh_token=token,
            provider_id=oidc.provider_id if oidc else profile.oidc_provider_id,
            client_id=oidc.client_id if oidc else profile.oidc_client_id,
        )

    def sink(_profile: BackendProfile, refresh_token: str) -> None:
        memory["refresh_token"] = refresh_token
        if store is not None and oidc is not None:
            store.set_refresh_token(oidc.issuer, oidc.client_id, refresh_token)

    return provider, sink


def sign_in_backends(
    backends: Any,
    display: Callable[[str], None],
    keep_waiting: Callable[[], None] = lambda: time.sleep(0.05),
    max_poll_time: float = 600.0,
) -> None:
    """Connect every backend of a scheduler; the device flow where a sign-in is needed.

    Runs in a helper thread (network); ``keep_waiting`` is called meanwhile in the calling
    thread (the demo processes Qt events there). Raises :class:`SignInError`.
    """
    errors: list[str] = []

    def work() -> None:
        for backend in backends:
            try:
                backend.connect()
                continue
            except SignInRequiredError as exc:
                if backend.profile.auth != AUTH_OIDC_DEVICE:
                    errors.append(f"{backend.name}: {exc}")
                    continue
            except Exception as exc:  # noqa: BLE001 (network, TLS, HTTP errors: shown to the user)
                errors.append(f"{backend.name}: cannot connect to {backend.profile.url}: {exc}")
                continue
            try:
                display(f"{backend.name} needs you to sign in (OpenID Connect device flow):")
                backend.sign_in(display=display, max_poll_time=max_poll_time)
                display(f"{backend.name}: signed in.")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{backend.name}: sign-in failed: {exc}")

    thread = threading.Thread(target=work, name="openeo-tile-jobs-demo-sign-in", daemon=True)
    thread.start()
    while thread.is_alive():
        keep_waiting()
    if errors:
        raise SignInError("; ".join(errors))
