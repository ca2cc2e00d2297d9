"""The Flask application: what every request goes through (slashes, counting, faults, errors);
the routes themselves live in the ``routes_*`` modules, one blueprint per area of the openEO API."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from . import routes_accounts, routes_admin, routes_discovery, routes_jobs, routes_processing
from .auth import OAuthError
from .errors import ApiError
from .routes_common import ADMIN_PREFIX, EXTENSION, endpoint_key
from .services import Services


class _TidyPaths:
    """WSGI middleware: ``//jobs`` and ``/jobs/`` are ``/jobs``, as on real backends, whose clients
    join a version URL ending in ``/`` with paths starting with ``/``."""

    def __init__(self, app: Callable):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        tidy = re.sub("/{2,}", "/", path)
        if len(tidy) > 1:
            tidy = tidy.rstrip("/")
        environ["PATH_INFO"] = tidy
        return self.app(environ, start_response)


def create_app(services: Services) -> Flask:
    app = Flask("local_backend")
    app.json.sort_keys = False
    app.wsgi_app = _TidyPaths(app.wsgi_app)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = services
    _cross_cutting(app, services)
    for area in (routes_discovery, routes_accounts, routes_jobs, routes_processing, routes_admin):
        app.register_blueprint(area.bp)
    return app


def _cross_cutting(app: Flask, services: Services) -> None:
    @app.before_request
    def count_and_misbehave() -> Response | None:
        if request.path.startswith(ADMIN_PREFIX):
            return None
        key = endpoint_key()
        services.counter.add(key)
        latency, action = services.faults.draw(key)
        if latency:
            time.sleep(latency)
        return None if action is None else _misbehave(services, action)

    @app.after_request
    def count_bytes(resp: Response) -> Response:
        if not request.path.startswith(ADMIN_PREFIX):
            size = resp.content_length  # files are streamed; their length (or the range's) is known
            if size is None and not resp.is_streamed:
                size = len(resp.get_data())
            services.counter.add_bytes(endpoint_key(), size or 0)
        return resp

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        resp = jsonify(exc.body())
        resp.status_code = exc.status
        for k, v in exc.headers.items():
            resp.headers[k] = v
        return resp

    @app.errorhandler(OAuthError)
    def oauth_error(exc: OAuthError) -> Response:
        resp = jsonify({"error": exc.error, "error_description": exc.description})
        resp.status_code = exc.status
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = {404: "NotFound", 405: "MethodNotAllowed", 416: "RangeNotSatisfiable"}.get(exc.code or 500, "BadRequest")
        resp = api_error(ApiError(code, exc.description or exc.name, exc.code))
        if exc.code == 405 and exc.get_headers():
            resp.headers.update({k: v for k, v in exc.get_headers() if k.lower() == "allow"})
        return resp

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        return api_error(ApiError("Internal", f"Server error: {type(exc).__name__}", 500))


def _misbehave(services: Services, action: str) -> Any:
    """The injected fault's answer (or a dropped connection)."""
    services.counter.add(f"fault {action}")
    if action == "drop":
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return Response(b"", status=500)
    retry_after = str(services.faults.config.retry_after)
    if action == "429":
        raise ApiError("TooManyRequests", "Too many requests (injected fault).", 429, {"Retry-After": retry_after})
    if action == "503":
        raise ApiError("ServiceUnavailable", "Service unavailable (injected fault).", 503, {"Retry-After": retry_after})
    if action == "502":
        return Response("<html><body><h1>502 Bad Gateway</h1>(injected fault)</body></html>", 502, mimetype="text/html")
    raise ApiError("Internal", "Internal server error (injected fault).", 500)
