"""Named openEO backends: profiles, connections through the caller's proxies, authentication, health.

A :class:`BackendProfile` is what the user configures (and what the run table stores):
name, URL, kind of authentication, ``parallel_jobs``, ``queueing_limit`` -- never a secret.
Secrets come from a caller-provided :data:`CredentialsProvider` each time they are needed
(the QGIS side reads QgsAuthManager); this module keeps them only inside the openeo
client's authenticator objects, in memory, and registers them with :mod:`.redact` so
they never reach a log, an error message or the job database.

A :class:`Backend` is one profile at run time: its ``openeo.Connection`` (created lazily,
without the client's own blocking retries -- the scheduler decides when to retry),
its token lifetime (refreshed before expiry with the openeo client's OIDC authenticators),
and its health: ok, backing off, needs sign-in, offline.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlparse

import openeo
import requests
from openeo.rest.auth.auth import OidcBearerAuth
from openeo.rest.auth.oidc import (
    DefaultOidcClientGrant,
    OidcClientCredentialsAuthenticator,
    OidcClientInfo,
    OidcDeviceAuthenticator,
    OidcProviderInfo,
    OidcRefreshTokenAuthenticator,
)

from . import retry
from .events import BACKEND_BACKOFF, BACKEND_NEEDS_SIGN_IN, BACKEND_OFFLINE, BACKEND_OK
from .redact import redact, register_secret

_log = logging.getLogger(__name__)

AUTH_NONE = "none"
AUTH_BASIC = "basic"
AUTH_OIDC_DEVICE = "oidc_device"
AUTH_OIDC_REFRESH_TOKEN = "oidc_refresh_token"
AUTH_OIDC_CLIENT_CREDENTIALS = "oidc_client_credentials"
AUTH_KINDS = (AUTH_NONE, AUTH_BASIC, AUTH_OIDC_DEVICE, AUTH_OIDC_REFRESH_TOKEN, AUTH_OIDC_CLIENT_CREDENTIALS)


class BackendConfigError(ValueError):
    """A profile that cannot be used as given (message is for the user)."""


class InsecureUrlError(BackendConfigError):
    pass


class SignInRequiredError(Exception):
    """The backend needs the user to sign in (again); its tiles wait, they do not fail."""


@dataclass
class BackendProfile:
    """A backend as the user configures it. Holds no secret."""

    name: str
    url: str
    auth: str = AUTH_NONE
    parallel_jobs: int = 2
    #: At most this many jobs waiting (queued / queued_for_start) on the backend at once.
    queueing_limit: int = 10
    oidc_provider_id: Optional[str] = None
    oidc_client_id: Optional[str] = None
    #: Plain http:// to a non-loopback host is refused unless this is set.
    allow_insecure_http: bool = False
    request_timeout: float = 30.0
    #: How the user made it (e.g. ``"local"``: the Local demo backend, started again on demand
    #: and at whatever URL it then has); None for a custom backend.
    preset: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.name:
            raise BackendConfigError("A backend needs a name.")
        if self.auth not in AUTH_KINDS:
            raise BackendConfigError(f"Unknown authentication {self.auth!r} (one of {', '.join(AUTH_KINDS)}).")
        if int(self.parallel_jobs) < 1:
            raise BackendConfigError("parallel_jobs must be at least 1.")
        if int(self.queueing_limit) < 1:
            raise BackendConfigError("queueing_limit must be at least 1.")
        check_url(self.url, self.allow_insecure_http)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendProfile:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True, repr=False)
class Credentials:
    """Secrets for one sign-in, handed over by the caller's provider and never persisted here."""

    username: Optional[str] = None
    password: Optional[str] = None
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    refresh_token: Optional[str] = None
    provider_id: Optional[str] = None

    def __post_init__(self) -> None:
        register_secret(self.password, self.client_secret, self.refresh_token)

    def __repr__(self) -> str:
        shown = {k: ("***" if k in ("password", "client_secret", "refresh_token") else v) for k, v in self._items()}
        return f"Credentials({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def _items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.__dataclass_fields__ if getattr(self, k) is not None]


#: ``provider(profile) -> Credentials | None``; called whenever the engine must (re)authenticate.
CredentialsProvider = Callable[[BackendProfile], Optional[Credentials]]
#: ``sink(profile, refresh_token)``: lets the caller keep a refresh token (e.g. in QgsAuthManager).
RefreshTokenSink = Callable[[BackendProfile, str], None]


def is_loopback(host: Optional[str]) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_insecure_http: bool = False) -> None:
    """Refuse URLs we must not send credentials to: not http(s), or plain http to a non-loopback host."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BackendConfigError(f"Not a backend URL: {url!r} (expected https://host/...).")
    if parsed.scheme == "http" and not is_loopback(parsed.hostname) and not allow_insecure_http:
        raise InsecureUrlError(
            f"Refusing plain http:// to {parsed.hostname}: tokens and passwords would travel unencrypted. "
            "Use https://, or allow insecure HTTP for this backend explicitly."
        )


def make_session(proxies: Optional[dict[str, str]] = None) -> requests.Session:
    """A requests session using exactly the caller's proxies (``{}``: none, ``None``: environment)."""
    session = requests.Session()
    if proxies is not None:
        session.trust_env = False
        session.proxies.update({k: v for k, v in proxies.items() if v})
    return session


class Backend:
    """One backend at run time: connection, authentication and health (ok/backoff/needs sign-in/offline).

    Used from one thread (the scheduler's); download workers only read :attr:`auth` and
    :attr:`root_url` and use their own sessions from :meth:`new_session`.
    """

    #: Refresh the access token when less than this fraction of its lifetime (or 60 s) is left.
    REFRESH_MARGIN_FRACTION = 0.2
    REFRESH_MARGIN_MAX = 60.0

    def __init__(
        self,
        profile: BackendProfile,
        credentials: Optional[CredentialsProvider] = None,
        proxies: Optional[dict[str, str]] = None,
        *,
        refresh_token_sink: Optional[RefreshTokenSink] = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        connection_factory: Optional[Callable[..., openeo.Connection]] = None,
    ) -> None:
        self.profile = profile
        self._credentials = credentials
        self._proxies = proxies
        self._refresh_token_sink = refresh_token_sink
        self._clock = clock
        self._connection_factory = connection_factory or openeo.Connection
        self.session = make_session(proxies)
        self.session.hooks["response"].append(self._on_response)
        self.connection: Optional[openeo.Connection] = None
        self.backoff = retry.Backoff(base=backoff_base, cap=backoff_cap)
        self.state = BACKEND_OFFLINE
        self.detail = "not connected yet"
        self.needs_sign_in = False
        self._renewer: Any = None
        self._provider_id: Optional[str] = None
        self._expires_at: Optional[float] = None
        self._lifetime: Optional[float] = None
        self._last_refresh_try = -1e9
        self._retry_after: Optional[float] = None
        self._lock = threading.RLock()
        #: Called with (backend, state, detail) whenever the state changes.
        self.on_state: Optional[Callable[[Backend, str, str], None]] = None
        self._reauth_requested = threading.Event()
        #: Requests sent through this backend's session (for benchmarks and tests).
        self.request_count = 0
        #: Seconds spent waiting for response headers (engine time = round time minus this).
        self.http_seconds = 0.0
        #: The last re-authentication failed because the sign-in service could not be reached (not refused).
        self.reauth_unreachable = False
        #: Bytes of the responses received through this session (the API's, not downloads).
        self.bytes_received = 0
        #: Kinds of request (their context) whose last try failed, and when: the backoff keeps growing until
        #: each of them succeeds again (a listing that works does not excuse a create that keeps failing);
        #: a kind not tried again for two backoff caps is forgotten.
        self._failing: dict[str, float] = {}

    # -- small accessors -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def root_url(self) -> str:
        return self.connection.root_url if self.connection is not None else self.profile.url

    @property
    def auth(self) -> Any:
        return self.connection.auth if self.connection is not None else None

    def new_session(self) -> requests.Session:
        """A fresh session with the same proxies (for download workers)."""
        return make_session(self._proxies)

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.request_count += 1
        self.http_seconds += response.elapsed.total_seconds()
        length = response.headers.get("Content-Length")
        # The API session never streams, so its body is already read; downloads use other sessions.
        self.bytes_received += int(length) if length and length.isdigit() else len(response.content or b"")
        if response.status_code in (429, 503):
            self._retry_after = retry.parse_retry_after(response.headers.get("Retry-After"))

    def _set_state(self, state: str, detail: str) -> None:
        detail = redact(detail)
        changed = (state, detail) != (self.state, self.detail)
        self.state, self.detail = state, detail
        if changed and self.on_state is not None:
            self.on_state(self, state, detail)

    # -- availability ------------------------------------------------------------------------------

    def ready(self) -> bool:
        """May the scheduler send requests to this backend now?"""
        return not self.needs_sign_in and self.backoff.ready(self._clock())

    def seconds_until_ready(self) -> float:
        return max(0.0, self.backoff.until - self._clock())

    def record_success(self, context: str = "") -> None:
        """A request of kind ``context`` worked; the backoff ends once no kind of request is failing."""
        self._failing.pop(context, None)
        forget_before = self._clock() - 2 * self.backoff.cap
        self._failing = {k: t for k, t in self._failing.items() if t >= forget_before}
        if self._failing:
            return
        if self.backoff.failures or self.state != BACKEND_OK:
            self.backoff.succeed()
            if not self.needs_sign_in and self.connection is not None:
                self._set_state(BACKEND_OK, "connected")

    def record_failure(self, exc: BaseException, context: str = "") -> str:
        """Classify ``exc`` and update the backoff/sign-in state; returns the kind (see :mod:`.retry`)."""
        kind = retry.classify(exc)
        now = self._clock()
        message = f"{context}: {exc}" if context else str(exc)
        if kind == retry.RATE_LIMITED:
            self._failing[context] = now
            wait = self._retry_after
            self._retry_after = None
            d = self.backoff.fail(now, wait)
            self._set_state(BACKEND_BACKOFF, f"rate limited, waiting {d:.1f} s ({message})")
        elif kind in (retry.TRANSIENT, retry.OTHER):
            self._failing[context] = now
            wait = self._retry_after if retry.status_and_code(exc)[0] == 503 else None
            self._retry_after = None
            d = self.backoff.fail(now, wait)
            state = BACKEND_OFFLINE if self.connection is None else BACKEND_BACKOFF
            failures = self.backoff.failures
            again = f", failure {failures} in a row" if failures > 1 else ""
            self._set_state(state, f"retrying in {d:.1f} s{again} after {message}")
        elif kind == retry.AUTH:
            if not self.reauthenticate(reason=message):
                self._reauth_failed(message)
        return kind

    def mark_needs_sign_in(self, reason: str) -> None:
        self.needs_sign_in = True
        self._set_state(BACKEND_NEEDS_SIGN_IN, reason)

    # -- connecting and authenticating ------------------------------------------------------------

    def connect(self) -> openeo.Connection:
        """Connect (API version discovery) and authenticate without user interaction.

        Raises on network errors (callers record them as failures) and :class:`SignInRequiredError`
        when credentials are missing or refused.
        """
        with self._lock:
            if self.connection is not None:
                return self.connection
            check_url(self.profile.url, self.profile.allow_insecure_http)
            conn = self._connection_factory(
                self.profile.url,
                session=self.session,
                default_timeout=self.profile.request_timeout,
                auto_validate=False,
            )
            check_url(conn.root_url, self.profile.allow_insecure_http)
            conn.capabilities()  # fails early when the backend is unreachable
            self.connection = conn
            try:
                self._authenticate(interactive=False)
            except SignInRequiredError as e:
                self.mark_needs_sign_in(str(e))
                raise
            except Exception:
                self.connection = None
                raise
            self._failing.clear()
            self.backoff.succeed()
            self._set_state(BACKEND_OK, "connected")
            return conn

    def sign_in(self, display: Callable[[str], None] = print, max_poll_time: float = 300.0) -> None:
        """Interactive sign-in (OIDC device flow shows its URL and code through ``display``).

        Blocks until the user approves (up to ``max_poll_time``): call it from a worker
        thread, never from the GUI thread. For other kinds it re-reads the credentials.
        """
        with self._lock:
            if self.connection is None:
                check_url(self.profile.url, self.profile.allow_insecure_http)
                self.connection = self._connection_factory(
                    self.profile.url,
                    session=self.session,
                    default_timeout=self.profile.request_timeout,
                    auto_validate=False,
                )
                check_url(self.connection.root_url, self.profile.allow_insecure_http)
            self._authenticate(interactive=True, display=display, max_poll_time=max_poll_time)
            self.needs_sign_in = False
            self._failing.clear()
            self.backoff.succeed()
            self._set_state(BACKEND_OK, "signed in")

    def reauthenticate(self, reason: str = "") -> bool:
        """Refresh or redo authentication without user interaction; False if the user must sign in."""
        if self.connection is None or self.profile.auth == AUTH_NONE:
            return False
        self.reauth_unreachable = False
        try:
            if self._renewer is not None:
                self._apply_oidc_tokens(self._renewer.get_tokens(), self._renewer)
                return True
            self._authenticate(interactive=False)
            return True
        except SignInRequiredError:
            return False
        except Exception as e:  # noqa: BLE001 - the user is asked, unless the sign-in service was only unreachable
            _log.warning("Re-authentication of %s failed: %s", self.name, redact(e))
            self.reauth_unreachable = retry.classify(e) in (retry.TRANSIENT, retry.RATE_LIMITED, retry.OTHER)
            return False

    def _reauth_failed(self, message: str) -> None:
        """Re-authentication did not work: back off when the service was unreachable, else ask the user."""
        if self.reauth_unreachable:
            d = self.backoff.fail(self._clock())
            self._set_state(BACKEND_BACKOFF, f"retrying in {d:.1f} s: signing in again failed ({message})")
        else:
            self.mark_needs_sign_in(message)

    def request_reauth(self) -> None:
        """Ask for re-authentication at the next :meth:`ensure_token_fresh` (thread-safe; download workers)."""
        self._reauth_requested.set()

    def ensure_token_fresh(self) -> None:
        """Refresh the access token shortly before it expires (no-op without a known expiry), or when a
        download worker found it refused."""
        if self._reauth_requested.is_set() and self.connection is not None:
            self._reauth_requested.clear()
            if not self.reauthenticate(reason="a download was refused the token"):
                self._reauth_failed("the backend refused the token and it could not be renewed")
            return
        if self._expires_at is None or self._renewer is None or self.connection is None:
            return
        now = self._clock()
        margin = min(self.REFRESH_MARGIN_MAX, (self._lifetime or 0) * self.REFRESH_MARGIN_FRACTION)
        if now < self._expires_at - margin or now - self._last_refresh_try < 2.0:
            return
        try:
            self._apply_oidc_tokens(self._renewer.get_tokens(), self._renewer)
            _log.info("Refreshed the access token of %s before expiry", self.name)
        except Exception as e:  # noqa: BLE001
            self._last_refresh_try = now  # do not hammer a failing token endpoint
            if now >= self._expires_at:
                self.mark_needs_sign_in(f"access token expired and could not be refreshed: {e}")
            else:
                _log.warning("Token refresh for %s failed (will retry): %s", self.name, redact(e))

    def _get_credentials(self) -> Credentials:
        creds = self._credentials(self.profile) if self._credentials else None
        return creds or Credentials()

    def _authenticate(
        self, interactive: bool, display: Callable[[str], None] = print, max_poll_time: float = 300.0
    ) -> None:
        kind = self.profile.auth
        conn = self.connection
        assert conn is not None
        if kind == AUTH_NONE:
            return
        creds = self._get_credentials()
        if kind == AUTH_BASIC:
            if not creds.username or creds.password is None:
                raise SignInRequiredError("user name and password needed")
            try:
                conn.authenticate_basic(username=creds.username, password=creds.password)
            except Exception as e:
                if retry.classify(e) in (retry.AUTH, retry.CLIENT):
                    raise SignInRequiredError(f"basic sign-in refused: {e}") from e
                raise
            register_secret(getattr(conn.auth, "bearer", None))
            return
        provider_id, client_info = self._oidc_client(creds)
        if kind == AUTH_OIDC_CLIENT_CREDENTIALS:
            if not client_info.client_secret:
                raise SignInRequiredError("client id and secret needed")
            authenticator = OidcClientCredentialsAuthenticator(client_info=client_info, requests_session=self.session)
            self._obtain(authenticator, authenticator, provider_id)
            return
        refresh_token = creds.refresh_token
        if refresh_token and kind in (AUTH_OIDC_REFRESH_TOKEN, AUTH_OIDC_DEVICE):
            renewer = OidcRefreshTokenAuthenticator(
                client_info=client_info, refresh_token=refresh_token, requests_session=self.session
            )
            try:
                self._obtain(renewer, renewer, provider_id)
                return
            except Exception as e:
                if kind == AUTH_OIDC_REFRESH_TOKEN or not interactive:
                    raise SignInRequiredError(f"refresh token refused: {e}") from e
        if kind == AUTH_OIDC_REFRESH_TOKEN and not refresh_token:
            raise SignInRequiredError("refresh token needed")
        if kind == AUTH_OIDC_DEVICE:
            if not interactive:
                raise SignInRequiredError("sign in with your browser (device code)")
            device = OidcDeviceAuthenticator(
                client_info=client_info,
                display=display,
                max_poll_time=max_poll_time,
                requests_session=self.session,
            )
            tokens = device.get_tokens(request_refresh_token=True)
            renewer = None
            if tokens.refresh_token:
                register_secret(tokens.refresh_token)
                renewer = OidcRefreshTokenAuthenticator(
                    client_info=client_info, refresh_token=tokens.refresh_token, requests_session=self.session
                )
                if self._refresh_token_sink is not None:
                    self._refresh_token_sink(self.profile, tokens.refresh_token)
            self._provider_id = provider_id
            self._apply_oidc_tokens(tokens, renewer)

    def _oidc_client(self, creds: Credentials) -> tuple[str, OidcClientInfo]:
        """Provider and client of the backend's ``/credentials/oidc``, discovered through our session."""
        conn = self.connection
        assert conn is not None
        data = conn.get("/credentials/oidc", expected_status=200).json()
        providers = {p["id"]: p for p in data.get("providers", [])}
        if not providers:
            raise SignInRequiredError("the backend lists no OpenID Connect provider")
        wanted = creds.provider_id or self.profile.oidc_provider_id
        if wanted and wanted not in providers:
            raise SignInRequiredError(f"OpenID Connect provider {wanted!r} not offered by the backend")
        p = providers[wanted] if wanted else next(iter(providers.values()))
        provider = OidcProviderInfo(
            provider_id=p["id"],
            title=p.get("title"),
            issuer=p["issuer"],
            scopes=p.get("scopes"),
            default_clients=p.get("default_clients"),
            requests_session=self.session,
            authorization_parameters=p.get("authorization_parameters"),
        )
        client_id = creds.client_id or self.profile.oidc_client_id
        if not client_id:
            g = DefaultOidcClientGrant
            wanted = (g.DEVICE_CODE, g.DEVICE_CODE_PKCE, g.REFRESH_TOKEN)
            client_id = provider.get_default_client_id(grant_check=lambda grants: any(w in grants for w in wanted))
        if not client_id:
            raise SignInRequiredError("no OpenID Connect client id configured or offered by the backend")
        return p["id"], OidcClientInfo(client_id=client_id, provider=provider, client_secret=creds.client_secret)

    def _obtain(self, authenticator: Any, renewer: Any, provider_id: str) -> None:
        self._provider_id = provider_id
        self._apply_oidc_tokens(authenticator.get_tokens(), renewer)

    def _apply_oidc_tokens(self, tokens: Any, renewer: Any) -> None:
        register_secret(tokens.access_token, tokens.refresh_token, tokens.id_token)
        assert self.connection is not None
        auth = OidcBearerAuth(provider_id=self._provider_id or "", access_token=tokens.access_token)
        register_secret(auth.bearer)
        self.connection.auth = auth
        self._renewer = renewer
        if tokens.refresh_token and renewer is not None and isinstance(renewer, OidcRefreshTokenAuthenticator):
            # A rotated refresh token replaces the old one for the next refresh.
            renewer._refresh_token = tokens.refresh_token
            if self._refresh_token_sink is not None:
                self._refresh_token_sink(self.profile, tokens.refresh_token)
        now = self._clock()
        if tokens.expires_in:
            self._lifetime = float(tokens.expires_in)
            self._expires_at = now + self._lifetime
        else:
            self._lifetime = self._expires_at = None
        self.needs_sign_in = False


@dataclass
class BackendPool:
    """The named backends of a run, in priority order (the first fills up first)."""

    backends: list[Backend] = field(default_factory=list)

    @classmethod
    def from_profiles(
        cls,
        profiles: list[BackendProfile],
        credentials: Optional[CredentialsProvider] = None,
        proxies: Optional[dict[str, str]] = None,
        **kwargs: Any,
    ) -> BackendPool:
        names = [p.name for p in profiles]
        if len(set(names)) != len(names):
            raise BackendConfigError("Backend names must be unique.")
        return cls([Backend(p, credentials, proxies, **kwargs) for p in profiles])

    def __iter__(self):
        return iter(self.backends)

    def __len__(self) -> int:
        return len(self.backends)

    def get(self, name: str) -> Optional[Backend]:
        for b in self.backends:
            if b.name == name:
                return b
        return None
