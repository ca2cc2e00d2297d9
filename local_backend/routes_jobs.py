"""Batch jobs: create, list, describe, change, delete, start, stop, estimate, results, logs, and
the signed asset downloads."""

from __future__ import annotations

import hmac
import time
import uuid
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request, send_file

from .costs import estimated_seconds, iso_duration, job_credits
from .errors import ApiError
from .routes_common import checked_fields, checked_process, get_job_or_404, int_args, json_object, root, svc, user
from .stac import stac_item
from .store import LOG_LEVELS, rfc3339

ESTIMATE_VALIDITY = 24 * 3600.0  # seconds


bp = Blueprint("jobs", __name__)


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
    if unstarted or not svc().config.report_progress:
        meta.pop("progress")
    if full:
        meta["process"] = job["process"]
        meta["log_level"] = job.get("log_level") or "info"
    return {k: v for k, v in meta.items() if v is not None or k in ("title", "description")}


@bp.post("/jobs")
def create_job():
    owner = user()
    body = json_object()
    process = checked_process(body.get("process"), owner)
    fields = checked_fields(body)
    job_id = "j-" + uuid.uuid4().hex[:20]
    svc().store.create_job(job_id, owner, process, **fields)
    resp = Response(status=201)
    resp.headers["Location"] = f"{root()}/jobs/{job_id}"
    resp.headers["OpenEO-Identifier"] = job_id
    return resp


@bp.get("/jobs")
def list_jobs():
    owner = user()
    limit, after = int_args("limit", "after")
    if limit is not None and limit < 1:
        raise ApiError("BadRequest", "limit must be >= 1.")
    rows = svc().store.list_jobs(owner, None if limit is None else limit + 1, after)
    links = []
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        query = urlencode({"limit": limit, "after": rows[-1]["seq"]})
        links.append({"rel": "next", "href": f"{root()}/jobs?{query}", "type": "application/json"})
    return jsonify({"jobs": [job_metadata(r, full=False) for r in rows], "links": links})


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(job_metadata(get_job_or_404(job_id, user()), full=True))


@bp.patch("/jobs/<job_id>")
def patch_job(job_id: str):
    owner = user()
    job = get_job_or_404(job_id, owner)
    body = json_object()
    if job["status"] in ("queued", "running"):
        raise ApiError("JobLocked", f"Job '{job_id}' is {job['status']}; stop it before changing it.")
    fields = checked_fields(body)
    if "process" in body:
        fields["process"] = checked_process(body["process"], owner)
    if fields:
        svc().store.update_job(job_id, **fields)
    return Response(status=204)


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    get_job_or_404(job_id, user())
    svc().store.cancel_if_active(job_id)
    svc().store.delete_job(job_id)
    svc().delete_results(job_id)
    svc().runner.wake()
    return Response(status=204)


@bp.get("/jobs/<job_id>/estimate")
def estimate_job(job_id: str):
    cfg = svc().config
    if not cfg.offer_estimate:
        raise ApiError("FeatureUnsupported", "This backend does not estimate jobs.")
    owner = user()
    job = get_job_or_404(job_id, owner)
    volume = svc().dry_run(job["process"], owner).volume
    seconds = estimated_seconds(volume, cfg.queue_time.mean, cfg.run_time.mean)
    return jsonify(
        {
            "costs": job_credits(volume, cfg.cost_per_million_values),
            "duration": iso_duration(seconds),
            "size": volume.output_bytes,
            "downloads_included": None,
            "expires": rfc3339(time.time() + ESTIMATE_VALIDITY),
        }
    )


@bp.post("/jobs/<job_id>/results")
def start_job(job_id: str):
    cfg = svc().config
    owner = user()
    status = get_job_or_404(job_id, owner)["status"]
    if status in ("queued", "running"):
        return Response(status=202)
    if status == "finished":
        raise ApiError(
            "JobLocked", f"Job '{job_id}' has finished; its results are final. Create a new job to compute again."
        )
    limit = cfg.max_concurrent_jobs_per_user
    if limit and cfg.over_limit == "refuse" and svc().store.count_active(owner) >= limit:
        raise ApiError(
            "ConcurrentJobLimit",
            f"You already have {limit} jobs queued or running, the maximum for this account. "
            "Wait for one to finish, or stop one.",
        )
    svc().store.update_job(
        job_id,
        where="status NOT IN ('queued', 'running', 'finished')",
        status="queued",
        queued_at=time.time(),
        progress=0,
        usage=None,
        costs=None,
        finished_at=None,
    )
    svc().store.add_log(job_id, "info", "Job queued.")
    svc().runner.wake()
    return Response(status=202)


@bp.delete("/jobs/<job_id>/results")
def stop_job(job_id: str):
    get_job_or_404(job_id, user())
    if svc().store.cancel_if_active(job_id):
        svc().store.add_log(job_id, "info", "Job canceled on request.")
        svc().runner.wake()
    return Response(status=204)


@bp.get("/jobs/<job_id>/results")
def job_results(job_id: str):
    job = get_job_or_404(job_id, user())
    status = job["status"]
    partial = request.args.get("partial", "").lower() in ("true", "1")
    if status == "error":
        last = svc().store.logs(job_id, "error", None, None)
        entry = last[-1] if last else {"code": "Internal", "message": "The job failed."}
        raise ApiError(entry.get("code") or "Internal", entry["message"], 424)
    if status != "finished" and not partial:
        raise ApiError("JobNotFinished", f"Job '{job_id}' has not finished computing the results yet ({status}).")
    resp = jsonify(stac_item(job, root(), svc().signed_path))
    if job.get("costs") is not None:
        resp.headers["OpenEO-Costs"] = f"{job['costs']:g}"
    return resp


@bp.get("/jobs/<job_id>/logs")
def job_logs(job_id: str):
    job = get_job_or_404(job_id, user())
    level = request.args.get("level") or job.get("log_level") or "info"
    if level not in LOG_LEVELS:
        raise ApiError("BadRequest", f"level must be one of {list(LOG_LEVELS)}.")
    after, limit = int_args("offset", "limit")
    entries = svc().store.logs(job_id, level, after, None if limit is None else limit + 1)
    links = []
    if limit is not None and len(entries) > limit:
        entries = entries[:limit]
        query = urlencode({"offset": entries[-1]["seq"], "limit": limit, "level": level})
        links.append({"rel": "next", "href": f"{root()}/jobs/{job_id}/logs?{query}"})
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


@bp.get("/download/<job_id>/<signature>/<name>")
def download(job_id: str, signature: str, name: str):
    if not hmac.compare_digest(signature, svc().signature(job_id, name)):
        raise ApiError("PermissionsInsufficient", "Invalid download signature.", 403)
    job = svc().store.get_job(job_id)
    if job is None or job["status"] != "finished":
        raise ApiError("FileNotFound", f"No results for job '{job_id}'.", 404)
    names = {a["name"]: a for a in (job.get("results") or {}).get("assets", [])}
    path = svc().results_dir / job_id / name
    if name not in names or not path.is_file():
        raise ApiError("FileNotFound", f"Asset '{name}' does not exist.", 404)
    resp = send_file(
        path, mimetype=names[name]["type"], conditional=True, etag=names[name]["checksum"][4:36], max_age=0
    )
    resp.headers["Accept-Ranges"] = "bytes"
    return resp
