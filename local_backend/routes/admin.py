"""Admin routes under ``/_admin`` (local use only; never counted, never faulted): fault
injection, request and byte counts, pending sign-in codes, health."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from ..config import FaultConfig
from ..errors import ApiError
from ..services import Services
from ..store import rfc3339
from .common import ADMIN_PREFIX, json_body


def register(app: Flask, services: Services) -> None:
    @app.get(f"{ADMIN_PREFIX}/faults")
    def admin_get_faults():
        return jsonify(services.faults.config.to_dict())

    @app.put(f"{ADMIN_PREFIX}/faults")
    def admin_put_faults():
        body = json_body()
        try:
            services.faults.set(FaultConfig.from_dict(body if isinstance(body, dict) else None))
        except (TypeError, ValueError) as exc:
            raise ApiError("BadRequest", str(exc)) from exc
        return jsonify(services.faults.config.to_dict())

    @app.delete(f"{ADMIN_PREFIX}/faults")
    def admin_clear_faults():
        services.faults.set(FaultConfig())
        return Response(status=204)

    @app.get(f"{ADMIN_PREFIX}/counts")
    def admin_counts():
        """Requests per endpoint; with ``?bytes=true`` also the response bytes per endpoint."""
        if request.args.get("bytes", "").lower() in ("1", "true"):
            return jsonify({"requests": services.counter.snapshot(), "bytes": services.counter.bytes_snapshot()})
        return jsonify(services.counter.snapshot())

    @app.delete(f"{ADMIN_PREFIX}/counts")
    def admin_reset_counts():
        services.counter.reset()
        return Response(status=204)

    @app.get(f"{ADMIN_PREFIX}/oidc/pending")
    def admin_pending_codes():
        return jsonify({"user_codes": services.auth.pending_user_codes()})

    @app.get(f"{ADMIN_PREFIX}/health")
    def admin_health():
        return jsonify({"status": "ok", "time": rfc3339()})
