"""Synchronous processing (``POST /result``), validation (``POST /validation``) and the user's
own process definitions (``/process_graphs``)."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from flask import Blueprint, Response, jsonify

from . import compute, engine
from .costs import job_credits
from .errors import ApiError
from .routes_common import checked_process, json_body, json_object, svc, user
from .validate import PROCESS_ID

bp = Blueprint("processing", __name__)


@bp.post("/result")
def sync_result():
    """Compute a small request right away and answer its GeoTIFF. Larger than
    ``sync_max_pixel_dates`` (pixels x dates, counted by a dry run): 400 ProcessGraphComplexity."""
    cfg = svc().config
    owner = user()
    body = json_object()
    process = checked_process(body.get("process"), owner)
    definitions = svc().resolve_definitions(process, owner)
    volume = svc().dry_run(process, owner, definitions).volume
    if volume.pixel_dates > cfg.sync_max_pixel_dates:
        raise ApiError(
            "ProcessGraphComplexity",
            f"The process is too large for synchronous processing: {volume.pixel_dates} pixels x dates "
            f"({volume.pixels} pixels, {volume.dates} dates), more than the {cfg.sync_max_pixel_dates} "
            "this backend computes synchronously. Create a batch job instead (POST /jobs).",
        )
    (svc().data_dir / "sync").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=svc().data_dir / "sync") as tmp:
        work = compute.Work(
            "sync-" + uuid.uuid4().hex[:12],
            process,
            cfg.pixel_size,
            definitions,
            Path(tmp),
            "info",
            cfg.max_pixels_per_job,
        )
        outcome = svc().pool.run(compute.run, work)
        if outcome.error is not None:
            message, code = outcome.error
            raise ApiError(code, message, 500 if code in ("Internal", "OutOfMemory") else None)
        if len(outcome.assets) != 1:
            raise ApiError(
                "FormatUnsuitable",
                f"The result is {len(outcome.assets)} files (one per date?); synchronous processing answers "
                "one file: reduce the time dimension, or create a batch job.",
            )
        asset = outcome.assets[0]
        data = asset.path.read_bytes()
    resp = Response(data, mimetype=asset.media_type)
    resp.headers["OpenEO-Costs"] = f"{job_credits(outcome.volume, cfg.cost_per_million_values):g}"
    resp.headers["Content-Disposition"] = f'attachment; filename="{asset.name}"'
    return resp


@bp.post("/validation")
def validation():
    """The errors job creation would answer for this process (the spec's ``errors`` list)."""
    owner = user(required=False)
    process = json_body()
    errors = []
    try:
        checked_process(process, owner)
    except ApiError as exc:
        errors.append({"code": exc.code, "message": exc.message})
    return jsonify({"errors": errors})


@bp.get("/process_graphs")
def list_udps():
    return jsonify({"processes": svc().store.list_udps(user()), "links": []})


@bp.get("/process_graphs/<udp_id>")
def get_udp(udp_id: str):
    definition = svc().store.get_udp(user(), udp_id)
    if definition is None:
        raise ApiError("ProcessGraphNotFound", f"User-defined process '{udp_id}' does not exist.")
    return jsonify(definition)


@bp.put("/process_graphs/<udp_id>")
def put_udp(udp_id: str):
    owner = user()
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("process_graph"), dict):
        raise ApiError("ProcessGraphMissing", "Send a process with a 'process_graph'.")
    if not PROCESS_ID.match(udp_id):
        raise ApiError("BadRequest", "Invalid process id.")
    if udp_id in engine.predefined_ids():
        raise ApiError("BadRequest", f"'{udp_id}' is a predefined process; choose another id.")
    checked_process({"process_graph": body["process_graph"]}, owner)
    body["id"] = udp_id
    svc().store.put_udp(owner, udp_id, body)
    return Response(status=200)


@bp.delete("/process_graphs/<udp_id>")
def delete_udp(udp_id: str):
    if not svc().store.delete_udp(user(), udp_id):
        raise ApiError("ProcessGraphNotFound", f"User-defined process '{udp_id}' does not exist.")
    return Response(status=204)
