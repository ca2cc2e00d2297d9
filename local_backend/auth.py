"""Authentication: none, HTTP basic (configured users) and a small OpenID provider.

The OpenID provider implements what ``openeo``'s ``authenticate_oidc_device()`` and its
refresh-token reuse need: discovery, the device authorization grant with PKCE (S256), the
token endpoint (device_code and refresh_token grants) and userinfo. A device code is
approved through ``POST /oidc/device/approve`` (``{"user_code": ..., "user": ...}``), the
HTML form at the verification URL, or automatically after ``oidc_auto_approve_after`` s.

Tokens are random strings; only their SHA-256 hashes are kept (in the SQLite store, so
they survive a restart). Nothing here logs a token or a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from .config import BackendConfig
from .errors import ApiError
from .store import JobStore

ANONYMOUS_USER = "demo"
OIDC_PROVIDER_ID = "local"
OIDC_CLIENT_ID = "openeo-tile-jobs-demo"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME = 600.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class DeviceRequest:
    device_code_hash: str
    user_code: str
    client_id: str
    code_challenge: str | None
    scope: str
    created: float
    approved_user: str | None = None
    denied: bool = False


class OAuthError(Exception):
    """An OAuth error answer (RFC 6749 section 5.2 body: ``{"error": ...}``)."""

    def __init__(self, error: str, description: str = "", status: int = 400):
        super().__init__(description or error)
        self.error = error
        self.description = description
        self.status = status


class Auth:
    def __init__(self, config: BackendConfig, store: JobStore):
        self.config = config
        self.store = store
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceRequest] = {}  # by device code hash

    # -- bearer tokens of the openEO API -------------------------------------------------------
    def _issue(self, kind: str, user: str, lifetime: float) -> str:
        token = secrets.token_urlsafe(32)
        self.store.put_token(token_hash(token), kind, user, time.time() + lifetime)
        return token

    def user_for(self, authorization: str | None, required: bool) -> str:
        """The user of a request, from its ``Authorization`` header (openEO bearer token)."""
        if not authorization:
            if required and self.config.auth != "none":
                raise ApiError("AuthenticationRequired", "Unauthorized: this backend requires authentication.")
            return ANONYMOUS_USER
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError("AuthenticationSchemeInvalid", "Use a Bearer token (openEO API).")
        method, _, rest = value.partition("/")
        if method == "basic":
            kind, token = "basic", rest.lstrip("/")
        elif method == "oidc":
            provider, _, token = rest.partition("/")
            if provider != OIDC_PROVIDER_ID:
                raise ApiError("TokenInvalid", f"Unknown OIDC provider '{provider}'.")
            kind = "access"
        else:
            raise ApiError(
                "AuthenticationSchemeInvalid", "Bearer token must start with 'basic//' or 'oidc/<provider>/'."
            )
        row = self.store.get_token(token_hash(token))
        if row is None or row["kind"] != kind:
            raise ApiError("TokenInvalid", "Authorization token has expired or is invalid. Please authenticate again.")
        if row["expires"] < time.time():
            raise ApiError("TokenInvalid", "Authorization token has expired. Please authenticate again.")
        if kind == "basic" and not (self.config.basic_enabled or self.config.auth == "none"):
            raise ApiError("TokenInvalid", "Basic authentication is not enabled on this backend.")
        if kind == "access" and not (self.config.oidc_enabled or self.config.auth == "none"):
            raise ApiError("TokenInvalid", "OIDC authentication is not enabled on this backend.")
        return str(row["user_id"])

    def basic_login(self, authorization: str | None) -> tuple[str, str]:
        """(user, access token) for ``GET /credentials/basic``."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise ApiError("AuthenticationRequired", "Send HTTP basic credentials.")
        try:
            user, _, password = base64.b64decode(authorization[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError("AuthenticationSchemeInvalid", "Malformed basic credentials.") from exc
        if self.config.auth == "none":
            pass  # the demo default: any name is accepted and becomes the user id
        elif not self.config.basic_enabled:
            raise ApiError("AuthenticationSchemeInvalid", "Basic authentication is not enabled on this backend.")
        else:
            expected = self.config.users.get(user)
            if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
                raise ApiError("CredentialsInvalid", "Credentials are not correct.")
        return user, self._issue("basic", user, self.config.token_lifetime)

    # -- OpenID provider --------------------------------------------------------------------
    def device_authorization(self, client_id: str, scope: str, code_challenge: str | None, method: str | None) -> dict:
        if client_id != OIDC_CLIENT_ID:
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}", 401)
        if code_challenge and (method or "plain") != "S256":
            raise OAuthError("invalid_request", "only code_challenge_method S256 is supported")
        device_code = secrets.token_urlsafe(32)
        user_code = "-".join("".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(4)) for _ in range(2))
        request = DeviceRequest(
            device_code_hash=token_hash(device_code),
            user_code=user_code,
            client_id=client_id,
            code_challenge=code_challenge,
            scope=scope,
            created=time.time(),
        )
        with self._lock:
            now = time.time()
            self._devices = {k: v for k, v in self._devices.items() if now - v.created < DEVICE_CODE_LIFETIME}
            self._devices[request.device_code_hash] = request
        return {"device_code": device_code, "user_code": user_code, "expires_in": int(DEVICE_CODE_LIFETIME)}

    def approve(self, user_code: str, user: str | None, deny: bool = False) -> bool:
        """Approve (or deny) a pending device code; False if there is no such code."""
        user = user or self.config.oidc_auto_approve_user
        with self._lock:
            for request in self._devices.values():
                if request.user_code == user_code.strip().upper():
                    request.approved_user, request.denied = (None, True) if deny else (user, False)
                    return True
        return False

    def pending_user_codes(self) -> list[str]:
        with self._lock:
            return [r.user_code for r in self._devices.values() if r.approved_user is None and not r.denied]

    def token(self, form: dict) -> dict:
        grant = form.get("grant_type")
        if form.get("client_id") != OIDC_CLIENT_ID:
            raise OAuthError("invalid_client", "unknown client_id", 401)
        if grant == DEVICE_GRANT:
            return self._device_token(form)
        if grant == "refresh_token":
            refresh = form.get("refresh_token") or ""
            row = self.store.get_token(token_hash(refresh))
            if row is None or row["kind"] != "refresh" or row["expires"] < time.time():
                raise OAuthError("invalid_grant", "refresh token is invalid or expired")
            return self._tokens(str(row["user_id"]), scope="openid", rotate_from=refresh)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported")

    def _device_token(self, form: dict) -> dict:
        key = token_hash(form.get("device_code") or "")
        with self._lock:
            request = self._devices.get(key)
            if request is None or time.time() - request.created > DEVICE_CODE_LIFETIME:
                raise OAuthError("expired_token", "the device code is unknown or expired")
            if request.code_challenge:
                verifier = form.get("code_verifier") or ""
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not hmac.compare_digest(digest, request.code_challenge):
                    raise OAuthError("invalid_grant", "PKCE verification failed")
            auto = self.config.oidc_auto_approve_after
            if request.approved_user is None and not request.denied and auto is not None:
                if time.time() - request.created >= auto:
                    request.approved_user = self.config.oidc_auto_approve_user
            if request.denied:
                del self._devices[key]
                raise OAuthError("access_denied", "the user denied the request")
            if request.approved_user is None:
                raise OAuthError("authorization_pending", "waiting for the user to approve")
            del self._devices[key]
            user, scope = request.approved_user, request.scope
        return self._tokens(user, scope=scope or "openid")

    def _tokens(self, user: str, scope: str, rotate_from: str | None = None) -> dict:
        access = self._issue("access", user, self.config.token_lifetime)
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.config.token_lifetime),
            "scope": scope,
        }
        if rotate_from is not None:
            answer["refresh_token"] = rotate_from  # kept valid until it expires (no rotation)
        else:  # always offered, whatever the scope: refresh-token reuse is what the demo shows
            answer["refresh_token"] = self._issue("refresh", user, self.config.refresh_token_lifetime)
        return answer

    def userinfo(self, authorization: str | None) -> dict:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise OAuthError("invalid_token", "missing bearer token", 401)
        row = self.store.get_token(token_hash(authorization[7:].strip()))
        if row is None or row["kind"] != "access" or row["expires"] < time.time():
            raise OAuthError("invalid_token", "token invalid or expired", 401)
        return {"sub": row["user_id"], "name": row["user_id"], "preferred_username": row["user_id"]}
