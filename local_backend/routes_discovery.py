"""Discovery: well-known versions, capabilities, conformance, formats, collections, processes,
and the demo process definitions served at ``/udp/<name>.json``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from . import __version__, engine
from .collection import collection_metadata
from .cube_io import COLLECTION_ID
from .errors import ApiError
from .routes_common import ADMIN_PREFIX, root, svc

API_VERSION = "1.2.0"
UNLISTED = (ADMIN_PREFIX, "/oidc", "/download", "/udp", "/static")  # not openEO API endpoints
ESTIMATE_RULE = "/jobs/<job_id>/estimate"  # listed only while the backend offers estimates


bp = Blueprint("discovery", __name__)


@bp.get("/.well-known/openeo")
def well_known():
    # The version URL ends with a slash, as real backends publish it (clients append paths to it).
    return jsonify({"versions": [{"url": f"{root()}/", "api_version": API_VERSION, "production": False}]})


@bp.get("/")
def capabilities():
    cfg = svc().config
    endpoints = [
        {
            "path": rule.rule.replace("<", "{").replace(">", "}").replace("path:", ""),
            "methods": sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS")),
        }
        for rule in current_app.url_map.iter_rules()
        if not rule.rule.startswith(UNLISTED)
        and rule.rule not in ("/", "/.well-known/openeo")
        and (cfg.offer_estimate or rule.rule != ESTIMATE_RULE)
    ]
    base = root()
    return jsonify(
        {
            "api_version": API_VERSION,
            "backend_version": __version__,
            "stac_version": "1.0.0",
            "type": "Catalog",
            "id": "openeo-tile-jobs-local-demo",
            "title": "Local demo backend (openEO Tile Jobs)",
            "description": "An openEO backend embedded in the openEO Tile Jobs plugin. Its only collection, "
            f"SENTINEL2_L2A, is SYNTHETIC data ({cfg.pixel_size:g} m pixels). Demo process: "
            f"{base}/udp/cloud_free_composite.json. Synchronous processing (POST /result) up to "
            f"{cfg.sync_max_pixel_dates} pixels x dates; larger requests need a batch job.",
            "production": False,
            "endpoints": sorted(endpoints, key=lambda e: e["path"]),
            "billing": {
                "currency": "credits",
                "default_plan": "demo",
                "plans": [{"name": "demo", "description": "Free local computing.", "paid": False}],
            },
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "data", "href": f"{base}/collections", "type": "application/json"},
                {"rel": "version-history", "href": f"{base}/.well-known/openeo", "type": "application/json"},
                {
                    "rel": "related",
                    "href": f"{base}/udp/cloud_free_composite.json",
                    "type": "application/json",
                    "title": "Demo process: cloud-free composite",
                },
            ],
            "local_demo": {
                "auth": cfg.auth,
                "pixel_size": cfg.pixel_size,
                "workers": cfg.workers,
                "compute": svc().pool.mode if svc().pool is not None else cfg.compute,
                "sync_max_pixel_dates": cfg.sync_max_pixel_dates,
            },
        }
    )


@bp.get("/conformance")
def conformance():
    return jsonify({"conformsTo": ["https://api.openeo.org/1.2.0"]})


@bp.get("/file_formats")
def file_formats():
    gtiff = {
        "title": "GeoTIFF",
        "description": "Cloud-optimised layout: tiled, DEFLATE-compressed, nodata set.",
        "gis_data_types": ["raster"],
        "parameters": {},
    }
    return jsonify({"input": {}, "output": {"GTiff": gtiff}})


@bp.get("/service_types")
def service_types():
    return jsonify({})


@bp.get("/udf_runtimes")
def udf_runtimes():
    return jsonify({})


@bp.get("/collections")
def collections():
    base = root()
    return jsonify(
        {
            "collections": [collection_metadata(base, svc().config.pixel_size, full=False)],
            "links": [{"rel": "self", "href": f"{base}/collections"}],
        }
    )


@bp.get("/collections/<collection_id>")
def collection(collection_id: str):
    if collection_id != COLLECTION_ID:
        raise ApiError("CollectionNotFound", f"Collection '{collection_id}' does not exist.")
    return jsonify(collection_metadata(root(), svc().config.pixel_size))


@bp.get("/processes")
def processes():
    specs = engine.process_specs()
    return jsonify({"processes": [specs[k] for k in sorted(specs)], "links": []})


@bp.get("/udp/<name>.json")
def demo_process(name: str):
    definition = svc().demo_process(name)
    if definition is None:
        raise ApiError("ProcessGraphNotFound", f"No demo process '{name}'.")
    return jsonify(definition)
