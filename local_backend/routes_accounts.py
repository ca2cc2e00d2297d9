"""Sign-in: basic credentials, the OIDC provider list, ``/me``, and the backend's own small
OpenID provider (issuer ``<root>/oidc``: device flow with PKCE, refresh tokens)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .auth import OIDC_CLIENT_ID, OIDC_PROVIDER_ID
from .errors import ApiError
from .routes_common import root, svc, user

bp = Blueprint("accounts", __name__)


@bp.get("/credentials/basic")
def credentials_basic():
    name, token = svc().auth.basic_login(request.headers.get("Authorization"))
    return jsonify({"access_token": token, "user_id": name})


@bp.get("/credentials/oidc")
def credentials_oidc():
    client = {
        "id": OIDC_CLIENT_ID,
        "grant_types": ["urn:ietf:params:oauth:grant-type:device_code+pkce", "refresh_token"],
    }
    provider = {
        "id": OIDC_PROVIDER_ID,
        "issuer": f"{root()}/oidc",
        "title": "Local demo sign-in",
        "scopes": ["openid"],
        "default_clients": [client],
    }
    return jsonify({"providers": [provider]})


@bp.get("/me")
def me():
    name = user()
    return jsonify(
        {
            "user_id": name,
            "name": name,
            "default_plan": "demo",
            "budget": None,
            "links": [],
            "local_demo": {
                "active_jobs": svc().store.count_active(name),
                "max_concurrent_jobs": svc().config.max_concurrent_jobs_per_user or None,
            },
        }
    )


@bp.get("/oidc/.well-known/openid-configuration")
def oidc_discovery():
    issuer = f"{root()}/oidc"
    return jsonify(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "device_authorization_endpoint": f"{issuer}/device_authorization",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "grant_types_supported": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "offline_access"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["none"],
        }
    )


@bp.get("/oidc/jwks")
def oidc_jwks():
    return jsonify({"keys": []})


@bp.post("/oidc/device_authorization")
def oidc_device_authorization():
    form = request.form
    answer = svc().auth.device_authorization(
        form.get("client_id", ""),
        form.get("scope", "openid"),
        form.get("code_challenge"),
        form.get("code_challenge_method"),
    )
    verify = f"{root()}/oidc/device"
    answer.update(
        verification_uri=verify,
        verification_uri_complete=f"{verify}?user_code={answer['user_code']}",
        interval=svc().config.oidc_poll_interval,
    )
    return jsonify(answer)


@bp.post("/oidc/token")
def oidc_token():
    resp = jsonify(svc().auth.token(request.form.to_dict()))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/oidc/userinfo")
def oidc_userinfo():
    return jsonify(svc().auth.userinfo(request.headers.get("Authorization")))


@bp.get("/oidc/device")
def oidc_device_page():
    code = request.args.get("user_code", "")
    page = f"""<!doctype html><html><head><title>Local demo sign-in</title></head><body>
<h1>Local demo backend: sign in</h1>
<p>Approve the sign-in request of your openEO client.</p>
<form method="post" action="{root()}/oidc/device/approve">
<label>Code <input name="user_code" value="{_escape(code)}"></label>
<label>User <input name="user" value="{_escape(svc().config.oidc_auto_approve_user)}"></label>
<button type="submit">Approve</button></form></body></html>"""
    return Response(page, mimetype="text/html")


@bp.post("/oidc/device/approve")
def oidc_device_approve():
    cfg = svc().config
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    data = data or {}
    code, name = str(data.get("user_code", "")), data.get("user") or None
    deny = str(data.get("deny", "")).lower() in ("1", "true")
    if cfg.auth not in ("none",) and name is not None and cfg.users and name not in cfg.users:
        raise ApiError("CredentialsInvalid", f"Unknown user '{name}'.")
    if not svc().auth.approve(code, name, deny=deny):
        raise ApiError("NotFound", f"No pending sign-in with code '{code}'.", 404)
    if request.is_json:
        return jsonify({"approved": not deny, "user_code": code})
    return Response("<html><body><p>Done. You can return to your application.</p></body></html>", mimetype="text/html")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
