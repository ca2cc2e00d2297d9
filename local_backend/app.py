"""The Flask application: openEO API 1.2 routes, OIDC provider routes and admin routes."""

from __future__ import annotations

import hmac
import json
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import HTTPException

from . import __version__, engine
from .auth import OIDC_CLIENT_ID, OIDC_PROVIDER_ID, OAuthError
from .collection import collection_metadata
from .config import FaultConfig
from .errors import ApiError
from .services import Services
from .store import LOG_LEVELS, rfc3339
from .validate import PROCESS_ID, validate_process

API_VERSION = "1.2.0"
JOB_FIELDS = ("title", "description", "plan", "budget", "log_level")
ADMIN_PREFIX = "/_admin"


def _root() -> str:
    return request.host_url.rstrip("/")


def _json_body() -> Any:
    raw = request.get_data(cache=True)
    if not raw:
        raise ApiError("JsonInvalid", "The request body is empty; send JSON.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("JsonInvalid", f"The request body is not valid JSON: {exc}") from exc


def _endpoint_key() -> str:
    rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    return f"{request.method} {rule.replace('<', '{').replace('>', '}')}"


def create_app(services: Services) -> Flask:
    app = Flask("local_backend")
    app.json.sort_keys = False
    cfg = services.config

    # -- cross-cutting: counting, faults, errors -----------------------------------------------
    @app.before_request
    def count_and_misbehave() -> Response | None:
        if request.path.startswith(ADMIN_PREFIX):
            return None
        key = _endpoint_key()
        services.counter.add(key)
        latency, action = services.faults.draw(key)
        if latency:
            time.sleep(latency)
        if action is None:
            return None
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
            raise ApiError(
                "ServiceUnavailable", "Service unavailable (injected fault).", 503, {"Retry-After": retry_after}
            )
        if action == "502":
            return Response(
                "<html><body><h1>502 Bad Gateway</h1>(injected fault)</body></html>", 502, mimetype="text/html"
            )
        raise ApiError("Internal", "Internal server error (injected fault).", 500)

    @app.after_request
    def count_bytes(resp: Response) -> Response:
        if not request.path.startswith(ADMIN_PREFIX):
            size = resp.content_length  # files are streamed; their length (or the range's) is known
            if size is None and not resp.is_streamed:
                size = len(resp.get_data())
            services.counter.add_bytes(_endpoint_key(), size or 0)
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

    def user(required: bool = True) -> str:
        return services.auth.user_for(request.headers.get("Authorization"), required)

    # -- discovery ---------------------------------------------------------------------------
    @app.get("/.well-known/openeo")
    def well_known():
        return jsonify({"versions": [{"url": _root(), "api_version": API_VERSION, "production": False}]})

    @app.get("/")
    def capabilities():
        endpoints = [
            {
                "path": rule.rule.replace("<", "{").replace(">", "}").replace("path:", ""),
                "methods": sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS")),
            }
            for rule in app.url_map.iter_rules()
            if not rule.rule.startswith((ADMIN_PREFIX, "/oidc", "/download", "/udp", "/static"))
            and rule.rule not in ("/", "/.well-known/openeo")
        ]
        root = _root()
        return jsonify(
            {
                "api_version": API_VERSION,
                "backend_version": __version__,
                "stac_version": "1.0.0",
                "type": "Catalog",
                "id": "openeo-tile-jobs-local-demo",
                "title": "Local demo backend (openEO Tile Jobs)",
                "description": "An openEO backend embedded in the openEO Tile Jobs plugin. Its only collection, "
                "SENTINEL2_L2A, is SYNTHETIC data. Demo process: " + f"{root}/udp/cloud_free_composite.json",
                "production": False,
                "endpoints": sorted(endpoints, key=lambda e: e["path"]),
                "billing": {
                    "currency": "credits",
                    "default_plan": "demo",
                    "plans": [{"name": "demo", "description": "Free local computing.", "paid": False}],
                },
                "links": [
                    {"rel": "self", "href": f"{root}/", "type": "application/json"},
                    {"rel": "data", "href": f"{root}/collections", "type": "application/json"},
                    {"rel": "version-history", "href": f"{root}/.well-known/openeo", "type": "application/json"},
                    {
                        "rel": "related",
                        "href": f"{root}/udp/cloud_free_composite.json",
                        "type": "application/json",
                        "title": "Demo process: cloud-free composite",
                    },
                ],
                "local_demo": {"auth": cfg.auth, "pixel_size": cfg.pixel_size, "workers": cfg.workers},
            }
        )

    @app.get("/conformance")
    def conformance():
        return jsonify({"conformsTo": ["https://api.openeo.org/1.2.0"]})

    @app.get("/file_formats")
    def file_formats():
        gtiff = {
            "title": "GeoTIFF",
            "description": "Cloud-optimised layout: tiled, DEFLATE-compressed, nodata set.",
            "gis_data_types": ["raster"],
            "parameters": {},
        }
        return jsonify({"input": {}, "output": {"GTiff": gtiff}})

    @app.get("/service_types")
    def service_types():
        return jsonify({})

    @app.get("/udf_runtimes")
    def udf_runtimes():
        return jsonify({})

    @app.get("/collections")
    def collections():
        root = _root()
        return jsonify(
            {
                "collections": [collection_metadata(root, cfg.pixel_size, full=False)],
                "links": [{"rel": "self", "href": f"{root}/collections"}],
            }
        )

    @app.get("/collections/<collection_id>")
    def collection(collection_id: str):
        if collection_id != engine.COLLECTION_ID:
            raise ApiError("CollectionNotFound", f"Collection '{collection_id}' does not exist.")
        return jsonify(collection_metadata(_root(), cfg.pixel_size))

    @app.get("/processes")
    def processes():
        specs = engine.process_specs()
        return jsonify({"processes": [specs[k] for k in sorted(specs)], "links": []})

    @app.get("/udp/<name>.json")
    def demo_process(name: str):
        definition = services.demo_process(name)
        if definition is None:
            raise ApiError("ProcessGraphNotFound", f"No demo process '{name}'.")
        return jsonify(definition)

    # -- accounts ----------------------------------------------------------------------------
    @app.get("/credentials/basic")
    def credentials_basic():
        name, token = services.auth.basic_login(request.headers.get("Authorization"))
        return jsonify({"access_token": token, "user_id": name})

    @app.get("/credentials/oidc")
    def credentials_oidc():
        root = _root()
        return jsonify(
            {
                "providers": [
                    {
                        "id": OIDC_PROVIDER_ID,
                        "issuer": f"{root}/oidc",
                        "title": "Local demo sign-in",
                        "scopes": ["openid"],
                        "default_clients": [
                            {
                                "id": OIDC_CLIENT_ID,
                                "grant_types": ["urn:ietf:params:oauth:grant-type:device_code+pkce", "refresh_token"],
                            }
                        ],
                    }
                ]
            }
        )

    @app.get("/me")
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
                    "active_jobs": services.store.count_active(name),
                    "max_concurrent_jobs": cfg.max_concurrent_jobs_per_user or None,
                },
            }
        )

    # -- batch jobs ------------------------------------------------------------------------
    def get_job_or_404(job_id: str, owner: str) -> dict:
        job = services.store.get_job(job_id, owner)
        if job is None:
            raise ApiError("JobNotFound", f"The batch job '{job_id}' does not exist.")
        return job

    def job_metadata(job: dict, full: bool) -> dict:
        meta = {
            "id": job["id"],
            "title": job.get("title"),
            "description": job.get("description"),
            "status": job["status"],
            "progress": job.get("progress"),
            "created": job["created"],
            "updated": job["updated"],
            "plan": job.get("plan") or "demo",
            "costs": job.get("costs"),
            "budget": job.get("budget"),
            "usage": job.get("usage"),
        }
        unstarted = job["status"] not in ("running", "finished", "error") and meta["progress"] is None
        if unstarted or not cfg.report_progress:
            meta.pop("progress")
        if full:
            meta["process"] = job["process"]
            meta["log_level"] = job.get("log_level") or "info"
        return {k: v for k, v in meta.items() if v is not None or k in ("title", "description")}

    def checked_process(body: dict, owner: str) -> dict:
        process = body.get("process")
        validate_process(
            process,
            known=engine.predefined_ids(),
            user_udp_exists=lambda pid: services.store.get_udp(owner, pid) is not None,
            own_namespace=services.own_namespace_definition,
            pixel_size=cfg.pixel_size,
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

    @app.post("/jobs")
    def create_job():
        owner = user()
        body = _json_body()
        if not isinstance(body, dict):
            raise ApiError("JsonInvalid", "The request body must be a JSON object.")
        process = checked_process(body, owner)
        fields = checked_fields(body)
        job_id = "j-" + uuid.uuid4().hex[:20]
        services.store.create_job(job_id, owner, process, **fields)
        resp = Response(status=201)
        resp.headers["Location"] = f"{_root()}/jobs/{job_id}"
        resp.headers["OpenEO-Identifier"] = job_id
        return resp

    @app.get("/jobs")
    def list_jobs():
        owner = user()
        limit = request.args.get("limit")
        after = request.args.get("after")
        try:
            limit_n = int(limit) if limit not in (None, "") else None
            after_n = int(after) if after not in (None, "") else None
        except ValueError as exc:
            raise ApiError("BadRequest", "limit and after must be integers.") from exc
        if limit_n is not None and limit_n < 1:
            raise ApiError("BadRequest", "limit must be >= 1.")
        rows = services.store.list_jobs(owner, None if limit_n is None else limit_n + 1, after_n)
        links = []
        if limit_n is not None and len(rows) > limit_n:
            rows = rows[:limit_n]
            query = urlencode({"limit": limit_n, "after": rows[-1]["seq"]})
            links.append({"rel": "next", "href": f"{_root()}/jobs?{query}", "type": "application/json"})
        return jsonify({"jobs": [job_metadata(r, full=False) for r in rows], "links": links})

    @app.get("/jobs/<job_id>")
    def get_job(job_id: str):
        return jsonify(job_metadata(get_job_or_404(job_id, user()), full=True))

    @app.patch("/jobs/<job_id>")
    def patch_job(job_id: str):
        owner = user()
        job = get_job_or_404(job_id, owner)
        body = _json_body()
        if not isinstance(body, dict):
            raise ApiError("JsonInvalid", "The request body must be a JSON object.")
        if job["status"] in ("queued", "running"):
            raise ApiError("JobLocked", f"Job '{job_id}' is {job['status']}; stop it before changing it.")
        fields = checked_fields(body)
        if "process" in body:
            fields["process"] = checked_process(body, owner)
        if fields:
            services.store.update_job(job_id, **fields)
        return Response(status=204)

    @app.delete("/jobs/<job_id>")
    def delete_job(job_id: str):
        owner = user()
        get_job_or_404(job_id, owner)
        services.store.cancel_if_active(job_id)
        services.store.delete_job(job_id)
        services.delete_results(job_id)
        services.runner.wake()
        return Response(status=204)

    @app.post("/jobs/<job_id>/results")
    def start_job(job_id: str):
        owner = user()
        job = get_job_or_404(job_id, owner)
        status = job["status"]
        if status in ("queued", "running"):
            return Response(status=202)
        if status == "finished":
            raise ApiError(
                "JobLocked", f"Job '{job_id}' has finished; its results are final. Create a new job to compute again."
            )
        limit = cfg.max_concurrent_jobs_per_user
        if limit and cfg.over_limit == "refuse" and services.store.count_active(owner) >= limit:
            raise ApiError(
                "ConcurrentJobLimit",
                f"You already have {limit} jobs queued or running, the maximum for this account. "
                "Wait for one to finish, or stop one.",
            )
        services.store.update_job(
            job_id,
            where="status NOT IN ('queued', 'running', 'finished')",
            status="queued",
            queued_at=time.time(),
            progress=0,
            usage=None,
            costs=None,
            finished_at=None,
        )
        services.store.add_log(job_id, "info", "Job queued.")
        services.runner.wake()
        return Response(status=202)

    @app.delete("/jobs/<job_id>/results")
    def stop_job(job_id: str):
        owner = user()
        get_job_or_404(job_id, owner)
        if services.store.cancel_if_active(job_id):
            services.store.add_log(job_id, "info", "Job canceled on request.")
            services.runner.wake()
        return Response(status=204)

    @app.get("/jobs/<job_id>/results")
    def job_results(job_id: str):
        owner = user()
        job = get_job_or_404(job_id, owner)
        status = job["status"]
        partial = request.args.get("partial", "").lower() in ("true", "1")
        if status == "error":
            last = services.store.logs(job_id, "error", None, None)
            entry = last[-1] if last else {"code": "Internal", "message": "The job failed."}
            raise ApiError(entry.get("code") or "Internal", entry["message"], 424)
        if status != "finished" and not partial:
            raise ApiError("JobNotFinished", f"Job '{job_id}' has not finished computing the results yet ({status}).")
        return jsonify(stac_item(job))

    def stac_item(job: dict) -> dict:
        root = _root()
        results = job.get("results") or {}
        bbox = results.get("bbox")
        assets = {}
        for a in results.get("assets", []) if job["status"] == "finished" else []:
            assets[a["name"]] = {
                "href": f"{root}{services.signed_path(job['id'], a['name'])}",
                "type": a["type"],
                "roles": ["data"],
                "title": a["name"],
                "file:size": a["size"],
                "file:checksum": a["checksum"],
                "proj:epsg": a["epsg"],
                "proj:shape": a["shape"],
                "proj:bbox": a["bounds"],
                "eo:bands": [{"name": b} for b in a["bands"]],
                **({"datetime": a["date"] + "T00:00:00Z"} if a.get("date") else {}),
            }
        process = job.get("process") or {}
        geometry = None
        if bbox:
            w, s, e, n = bbox
            geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        return {
            "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/file/v2.1.0/schema.json",
                "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            ],
            "type": "Feature",
            "id": job["id"],
            "bbox": bbox,
            "geometry": geometry,
            "properties": {
                "datetime": job["updated"] if job["status"] == "finished" else None,
                "created": job["created"],
                "updated": job["updated"],
                "title": job.get("title"),
                "description": job.get("description"),
                "openeo:status": job["status"],
                "openeo:process_id_count": len(process.get("process_graph") or {}),
            },
            "assets": assets,
            "links": [
                {"rel": "self", "href": f"{root}/jobs/{job['id']}/results", "type": "application/json"},
                {"rel": "canonical", "href": f"{root}/jobs/{job['id']}/results", "type": "application/json"},
                {"rel": "job", "href": f"{root}/jobs/{job['id']}", "type": "application/json"},
            ],
        }

    @app.get("/jobs/<job_id>/logs")
    def job_logs(job_id: str):
        owner = user()
        job = get_job_or_404(job_id, owner)
        level = request.args.get("level") or job.get("log_level") or "info"
        if level not in LOG_LEVELS:
            raise ApiError("BadRequest", f"level must be one of {list(LOG_LEVELS)}.")
        try:
            offset = request.args.get("offset")
            after = int(offset) if offset not in (None, "") else None
            limit = request.args.get("limit")
            limit_n = int(limit) if limit not in (None, "") else None
        except ValueError as exc:
            raise ApiError("BadRequest", "offset and limit must be integers.") from exc
        entries = services.store.logs(job_id, level, after, None if limit_n is None else limit_n + 1)
        links = []
        if limit_n is not None and len(entries) > limit_n:
            entries = entries[:limit_n]
            query = urlencode({"offset": entries[-1]["seq"], "limit": limit_n, "level": level})
            links.append({"rel": "next", "href": f"{_root()}/jobs/{job_id}/logs?{query}"})
        logs = [
            {
                "id": str(e["seq"]),
                "level": e["level"],
                "message": e["message"],
                "time": e["time"],
                **({"code": e["code"]} if e.get("code") else {}),
            }
            for e in entries
        ]
        return jsonify({"level": level, "logs": logs, "links": links})

    @app.get("/download/<job_id>/<signature>/<name>")
    def download(job_id: str, signature: str, name: str):
        if not hmac.compare_digest(signature, services.signature(job_id, name)):
            raise ApiError("PermissionsInsufficient", "Invalid download signature.", 403)
        job = services.store.get_job(job_id)
        if job is None or job["status"] != "finished":
            raise ApiError("FileNotFound", f"No results for job '{job_id}'.", 404)
        names = {a["name"]: a for a in (job.get("results") or {}).get("assets", [])}
        path = services.results_dir / job_id / name
        if name not in names or not path.is_file():
            raise ApiError("FileNotFound", f"Asset '{name}' does not exist.", 404)
        resp = send_file(
            path, mimetype=names[name]["type"], conditional=True, etag=names[name]["checksum"][4:36], max_age=0
        )
        resp.headers["Accept-Ranges"] = "bytes"
        return resp

    # -- user-defined processes ---------------------------------------------------------------
    @app.get("/process_graphs")
    def list_udps():
        owner = user()
        return jsonify({"processes": services.store.list_udps(owner), "links": []})

    @app.get("/process_graphs/<udp_id>")
    def get_udp(udp_id: str):
        definition = services.store.get_udp(user(), udp_id)
        if definition is None:
            raise ApiError("ProcessGraphNotFound", f"User-defined process '{udp_id}' does not exist.")
        return jsonify(definition)

    @app.put("/process_graphs/<udp_id>")
    def put_udp(udp_id: str):
        owner = user()
        body = _json_body()
        if not isinstance(body, dict) or not isinstance(body.get("process_graph"), dict):
            raise ApiError("ProcessGraphMissing", "Send a process with a 'process_graph'.")
        if not PROCESS_ID.match(udp_id):
            raise ApiError("BadRequest", "Invalid process id.")
        if udp_id in engine.predefined_ids():
            raise ApiError("BadRequest", f"'{udp_id}' is a predefined process; choose another id.")
        checked_process({"process": {"process_graph": body["process_graph"]}}, owner)
        body["id"] = udp_id
        services.store.put_udp(owner, udp_id, body)
        return Response(status=200)

    @app.delete("/process_graphs/<udp_id>")
    def delete_udp(udp_id: str):
        if not services.store.delete_udp(user(), udp_id):
            raise ApiError("ProcessGraphNotFound", f"User-defined process '{udp_id}' does not exist.")
        return Response(status=204)

    # -- OpenID provider (issuer = <root>/oidc) ---------------------------------------------------
    @app.get("/oidc/.well-known/openid-configuration")
    def oidc_discovery():
        issuer = f"{_root()}/oidc"
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

    @app.get("/oidc/jwks")
    def oidc_jwks():
        return jsonify({"keys": []})

    @app.post("/oidc/device_authorization")
    def oidc_device_authorization():
        form = request.form
        answer = services.auth.device_authorization(
            form.get("client_id", ""),
            form.get("scope", "openid"),
            form.get("code_challenge"),
            form.get("code_challenge_method"),
        )
        verify = f"{_root()}/oidc/device"
        answer.update(
            verification_uri=verify,
            verification_uri_complete=f"{verify}?user_code={answer['user_code']}",
            interval=cfg.oidc_poll_interval,
        )
        return jsonify(answer)

    @app.post("/oidc/token")
    def oidc_token():
        resp = jsonify(services.auth.token(request.form.to_dict()))
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/oidc/userinfo")
    def oidc_userinfo():
        return jsonify(services.auth.userinfo(request.headers.get("Authorization")))

    @app.get("/oidc/device")
    def oidc_device_page():
        code = request.args.get("user_code", "")
        page = f"""<!doctype html><html><head><title>Local demo sign-in</title></head><body>
<h1>Local demo backend: sign in</h1>
<p>Approve the sign-in request of your openEO client.</p>
<form method="post" action="{_root()}/oidc/device/approve">
<label>Code <input name="user_code" value="{_escape(code)}"></label>
<label>User <input name="user" value="{_escape(cfg.oidc_auto_approve_user)}"></label>
<button type="submit">Approve</button></form></body></html>"""
        return Response(page, mimetype="text/html")

    @app.post("/oidc/device/approve")
    def oidc_device_approve():
        data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
        data = data or {}
        code, name = str(data.get("user_code", "")), data.get("user") or None
        deny = str(data.get("deny", "")).lower() in ("1", "true")
        if cfg.auth not in ("none",) and name is not None and cfg.users and name not in cfg.users:
            raise ApiError("CredentialsInvalid", f"Unknown user '{name}'.")
        if not services.auth.approve(code, name, deny=deny):
            raise ApiError("NotFound", f"No pending sign-in with code '{code}'.", 404)
        if request.is_json:
            return jsonify({"approved": not deny, "user_code": code})
        return Response(
            "<html><body><p>Done. You can return to your application.</p></body></html>", mimetype="text/html"
        )

    # -- admin (not counted, never faulted; local use only) ---------------------------------------
    @app.get(f"{ADMIN_PREFIX}/faults")
    def admin_get_faults():
        return jsonify(services.faults.config.to_dict())

    @app.put(f"{ADMIN_PREFIX}/faults")
    def admin_put_faults():
        body = _json_body()
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

    return app


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
