"""The STAC item ``GET /jobs/{id}/results`` answers: the job's assets with signed download URLs."""

from __future__ import annotations

from collections.abc import Callable


def stac_item(job: dict, root: str, signed_path: Callable[[str, str], str]) -> dict:
    results = job.get("results") or {}
    bbox = results.get("bbox")
    assets = {}
    for a in results.get("assets", []) if job["status"] == "finished" else []:
        assets[a["name"]] = {
            "href": f"{root}{signed_path(job['id'], a['name'])}",
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
    link = f"{root}/jobs/{job['id']}"
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
            {"rel": "self", "href": f"{link}/results", "type": "application/json"},
            {"rel": "canonical", "href": f"{link}/results", "type": "application/json"},
            {"rel": "job", "href": link, "type": "application/json"},
        ],
    }
