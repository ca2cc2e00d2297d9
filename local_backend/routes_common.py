"""What several route modules share: the request's root URL, its JSON body, its user, the job
it names, and the checks of a process and of job fields."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from . import engine
from .errors import ApiError
from .services import Services
from .store import LOG_LEVELS
from .validate import validate_process

JOB_FIELDS = ("title", "description", "plan", "budget", "log_level")
ADMIN_PREFIX = "/_admin"
EXTENSION = "local_backend"  # the app's Services live in app.extensions[EXTENSION]


def svc() -> Services:
    """What the routes work with (store, auth, runner, pool, config) for the current request."""
    return current_app.extensions[EXTENSION]


def root() -> str:
    return request.host_url.rstrip("/")


def json_body() -> Any:
    raw = request.get_data(cache=True)
    if not raw:
        raise ApiError("JsonInvalid", "The request body is empty; send JSON.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("JsonInvalid", f"The request body is not valid JSON: {exc}") from exc


def json_object() -> dict:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError("JsonInvalid", "The request body must be a JSON object.")
    return body


def endpoint_key() -> str:
    rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    return f"{request.method} {rule.replace('<', '{').replace('>', '}')}"


def user(required: bool = True) -> str:
    return svc().auth.user_for(request.headers.get("Authorization"), required)


def get_job_or_404(job_id: str, owner: str) -> dict:
    job = svc().store.get_job(job_id, owner)
    if job is None:
        raise ApiError("JobNotFound", f"The batch job '{job_id}' does not exist.")
    return job


def checked_process(process: Any, owner: str) -> dict:
    """``process`` if job creation would accept it; else the :class:`ApiError` it would answer."""
    services = svc()
    validate_process(
        process,
        known=engine.predefined_ids(),
        user_udp_exists=lambda pid: services.store.get_udp(owner, pid) is not None,
        own_namespace=services.own_namespace_definition,
        pixel_size=services.config.pixel_size,
    )
    return process


def checked_fields(body: dict) -> dict:
    fields = {k: body.get(k) for k in JOB_FIELDS if k in body}
    if "log_level" in fields and fields["log_level"] not in LOG_LEVELS:
        raise ApiError("BadRequest", f"log_level must be one of {list(LOG_LEVELS)}.")
    if "budget" in fields and fields["budget"] is not None:
        try:
            fields["budget"] = float(fields["budget"])
        except (TypeError, ValueError) as exc:
            raise ApiError("BadRequest", "budget must be a number.") from exc
    for k in ("title", "description", "plan"):
        if k in fields and fields[k] is not None and not isinstance(fields[k], str):
            raise ApiError("BadRequest", f"{k} must be a string.")
    return fields


def int_args(*names: str) -> list[int | None]:
    """Query parameters as integers (None when absent); 400 when not integers."""
    values = []
    for name in names:
        text = request.args.get(name)
        try:
            values.append(int(text) if text not in (None, "") else None)
        except ValueError as exc:
            raise ApiError("BadRequest", f"{' and '.join(names)} must be integers.") from exc
    return values
