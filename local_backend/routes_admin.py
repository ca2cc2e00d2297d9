"""Admin routes under ``/_admin`` (local use only; never counted, never faulted): fault
injection, request and byte counts, pending sign-in codes, health."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .config import FaultConfig
from .errors import ApiError
from .routes_common import ADMIN_PREFIX, json_body, svc
from .store import rfc3339

bp = Blueprint("admin", __name__)


@bp.get(f"{ADMIN_PREFIX}/faults")
def admin_get_faults():
    return jsonify(svc().faults.config.to_dict())


@bp.put(f"{ADMIN_PREFIX}/faults")
def admin_put_faults():
    body = json_body()
    try:
        svc().faults.set(FaultConfig.from_dict(body if isinstance(body, dict) else None))
    except (TypeError, ValueError) as exc:
        raise ApiError("BadRequest", str(exc)) from exc
    return jsonify(svc().faults.config.to_dict())


@bp.delete(f"{ADMIN_PREFIX}/faults")
def admin_clear_faults():
    svc().faults.set(FaultConfig())
    return Response(status=204)


@bp.get(f"{ADMIN_PREFIX}/counts")
def admin_counts():
    """Requests per endpoint; with ``?bytes=true`` also the response bytes per endpoint."""
    if request.args.get("bytes", "").lower() in ("1", "true"):
        return jsonify({"requests": svc().counter.snapshot(), "bytes": svc().counter.bytes_snapshot()})
    return jsonify(svc().counter.snapshot())


@bp.delete(f"{ADMIN_PREFIX}/counts")
def admin_reset_counts():
    svc().counter.reset()
    return Response(status=204)


@bp.get(f"{ADMIN_PREFIX}/oidc/pending")
def admin_pending_codes():
    return jsonify({"user_codes": svc().auth.pending_user_codes()})


@bp.get(f"{ADMIN_PREFIX}/health")
def admin_health():
    return jsonify({"status": "ok", "time": rfc3339()})
