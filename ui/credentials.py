"""Backend secrets in QGIS's authentication database (QgsAuthManager) — and nowhere else.

Basic authentication and OIDC client credentials use a QGIS authentication
configuration the user picks (method "Basic": user name + password, or client id +
client secret). For the OIDC device flow the plugin keeps the refresh token in a
configuration of its own, created on the first sign-in. QgsSettings only holds the
configuration's id.

Secrets are read only when needed: when the user presses Start, Sign in (or an action that
talks to a backend needing sign-in), and only for a backend that has something stored. A
backend without sign-in, or one never signed in, never touches QgsAuthManager, so the plugin
never makes QGIS ask for (or create) the master password by itself. Whether a sign-in is
stored is read from QgsSettings (the configuration's id), not from the encrypted database.

The engine asks for credentials from worker threads, where QgsAuthManager may need a
master-password prompt: so :class:`CredentialSnapshot` reads them on the main thread first,
and refresh tokens the engine receives come back to the main thread through a queued
signal before they are stored.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

from qgis.core import QgsApplication, QgsAuthMethodConfig
from qgis.PyQt.QtCore import QObject, Qt, pyqtSignal

from ..core.backends import (
    AUTH_BASIC,
    AUTH_OIDC_CLIENT_CREDENTIALS,
    AUTH_OIDC_DEVICE,
    AUTH_OIDC_REFRESH_TOKEN,
    BackendProfile,
    Credentials,
)
from . import settings

log = logging.getLogger(__name__)

#: Authentication kinds whose secrets sit in a configuration the user picks.
USER_CONFIG_KINDS = frozenset({AUTH_BASIC, AUTH_OIDC_CLIENT_CREDENTIALS})
#: Kinds whose refresh token the plugin stores in a configuration of its own.
TOKEN_KINDS = frozenset({AUTH_OIDC_DEVICE, AUTH_OIDC_REFRESH_TOKEN})
CONFIG_NAME = "openEO Tile Jobs: {name}"
REFRESH_TOKEN_KEY = "refresh_token"


def _manager():
    return QgsApplication.authManager()


def _key(profile_name: str, what: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in profile_name)
    return f"credentials/{safe}/{what}"


def authcfg_of(profile_name: str) -> str:
    """Id of the authentication configuration the user chose for a backend ('' if none)."""
    return settings.value(_key(profile_name, "authcfg"), "", str)


def set_authcfg(profile_name: str, authcfg: str) -> None:
    settings.set_value(_key(profile_name, "authcfg"), authcfg or "")


def token_config_of(profile_name: str) -> str:
    """Id of the plugin's own configuration holding this backend's refresh token ('' if none)."""
    return settings.value(_key(profile_name, "token_authcfg"), "", str)


def unlock() -> bool:
    """Make sure the authentication database can be read (QGIS asks for the master password once)."""
    manager = _manager()
    if manager.isDisabled():
        log.warning("The QGIS authentication system is disabled: %s", manager.disabledMessage())
        return False
    return bool(manager.setMasterPassword(True))


def _load(authcfg: str) -> Optional[QgsAuthMethodConfig]:
    if not authcfg:
        return None
    config = QgsAuthMethodConfig()
    ok, config = _manager().loadAuthenticationConfig(authcfg, config, True)
    return config if ok and config.id() else None


def stored_config_of(profile: BackendProfile) -> str:
    """Id of the configuration holding ``profile``'s secrets ('' when nothing is stored: no need to read)."""
    if profile.auth in USER_CONFIG_KINDS:
        return authcfg_of(profile.name)
    if profile.auth in TOKEN_KINDS:
        return token_config_of(profile.name)
    return ""


def load_credentials(profile: BackendProfile) -> Optional[Credentials]:
    """The secrets of ``profile`` (main thread only; None when there are none)."""
    if profile.auth in USER_CONFIG_KINDS:
        config = _load(authcfg_of(profile.name))
        if config is None:
            return None
        user, secret = config.config("username") or None, config.config("password") or None
        if profile.auth == AUTH_BASIC:
            return Credentials(username=user, password=secret)
        return Credentials(client_id=user, client_secret=secret)
    if profile.auth in TOKEN_KINDS:
        config = _load(token_config_of(profile.name))
        if config is None:
            return None
        return Credentials(
            refresh_token=config.config(REFRESH_TOKEN_KEY) or None,
            client_id=config.config("client_id") or None,
        )
    return None


def store_refresh_token(profile: BackendProfile, refresh_token: str) -> bool:
    """Create or update the plugin's configuration for ``profile`` with a new refresh token (main thread)."""
    if not unlock():
        return False
    manager = _manager()
    config = _load(token_config_of(profile.name))
    if config is None:
        config = QgsAuthMethodConfig()
        config.setMethod("Basic")
        config.setName(CONFIG_NAME.format(name=profile.name))
        config.setUri(profile.url)
        config.setConfig(REFRESH_TOKEN_KEY, refresh_token)
        if profile.oidc_client_id:
            config.setConfig("client_id", profile.oidc_client_id)
        ok, config = manager.storeAuthenticationConfig(config)
        if not ok:
            return False
        settings.set_value(_key(profile.name, "token_authcfg"), config.id())
        return True
    config.setConfig(REFRESH_TOKEN_KEY, refresh_token)
    config.setUri(profile.url)
    return bool(manager.updateAuthenticationConfig(config))


def forget(profile_name: str) -> None:
    """Remove what the plugin stored for a backend (its own token configuration, the chosen id)."""
    token_cfg = token_config_of(profile_name)
    if token_cfg and unlock():
        _manager().removeAuthenticationConfig(token_cfg)
    settings.remove(_key(profile_name, "token_authcfg"))
    settings.remove(_key(profile_name, "authcfg"))


def has_stored_sign_in(profile: BackendProfile) -> bool:
    """Whether the plugin keeps a sign-in for ``profile`` (QgsSettings only: no master password needed)."""
    return profile.auth in TOKEN_KINDS and bool(token_config_of(profile.name))


class CredentialSnapshot(QObject):
    """Credentials read on the main thread, handed to the engine's worker threads.

    ``provider`` and ``sink`` are the engine's ``CredentialsProvider`` and
    ``RefreshTokenSink``; a refresh token given to ``sink`` is stored in
    QgsAuthManager by the main thread.
    """

    _tokenReceived = pyqtSignal(object, str)

    def __init__(self, profiles: list[BackendProfile], parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._credentials: dict[str, Optional[Credentials]] = {}
        stored = [p for p in profiles if stored_config_of(p)]
        if stored and not unlock():  # the user declined the master password: ask once, not per backend
            stored = []
        for profile in stored:
            try:
                self._credentials[profile.name] = load_credentials(profile)
            except Exception as exc:  # noqa: BLE001 (a broken configuration means: sign in again)
                log.warning("Cannot read the credentials of %s: %s", profile.name, type(exc).__name__)
                self._credentials[profile.name] = None
        self._tokenReceived.connect(self._store, Qt.ConnectionType.QueuedConnection)

    def provider(self, profile: BackendProfile) -> Optional[Credentials]:
        with self._lock:
            return self._credentials.get(profile.name)

    def sink(self, profile: BackendProfile, refresh_token: str) -> None:
        with self._lock:
            old = self._credentials.get(profile.name) or Credentials()
            self._credentials[profile.name] = Credentials(
                username=old.username,
                password=old.password,
                client_id=old.client_id,
                client_secret=old.client_secret,
                refresh_token=refresh_token,
                provider_id=old.provider_id,
            )
        self._tokenReceived.emit(profile, refresh_token)

    def _store(self, profile: BackendProfile, refresh_token: str) -> None:
        if not store_refresh_token(profile, refresh_token):
            log.warning("Could not store the refresh token of %s in the QGIS authentication database", profile.name)
