"""STAC metadata of the synthetic SENTINEL2_L2A collection."""

from __future__ import annotations

from . import synthetic

_BANDS = [
    {"name": "B02", "common_name": "blue", "center_wavelength": 0.49, "gsd": 10},
    {"name": "B03", "common_name": "green", "center_wavelength": 0.56, "gsd": 10},
    {"name": "B04", "common_name": "red", "center_wavelength": 0.665, "gsd": 10},
    {"name": "B08", "common_name": "nir", "center_wavelength": 0.842, "gsd": 10},
    {
        "name": "SCL",
        "description": "Scene classification (3 cloud shadow, 4 vegetation, 5 not vegetated, "
        "6 water, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus)",
        "gsd": 20,
    },
]


def collection_metadata(root: str, pixel_size: float, full: bool = True) -> dict:
    cid = "SENTINEL2_L2A"
    meta = {
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/datacube/v2.2.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        "type": "Collection",
        "id": cid,
        "title": "Sentinel-2 L2A (SYNTHETIC demo data)",
        "description": (
            "SYNTHETIC data generated on the fly by the Local demo backend of openEO Tile Jobs: not real "
            "Sentinel-2 observations. Deterministic for a place and date: fields with crop phenology, forest, "
            "water and built-up areas, an acquisition every 5 days with moving clouds and their shadows. "
            "Bands B02, B03, B04, B08 are reflectance x 10000 (int16), SCL is the scene classification. "
            f"Pixels of {pixel_size:g} m in the UTM zone of the requested extent."
        ),
        "keywords": ["synthetic", "demo", "sentinel-2", "l2a"],
        "license": "CC0-1.0",
        "deprecated": False,
        "synthetic": True,
        "providers": [{"name": "openEO Tile Jobs (Local demo backend)", "roles": ["producer", "host"]}],
        "extent": {
            "spatial": {"bbox": [[-25.0, 34.0, 45.0, 72.0]]},
            "temporal": {"interval": [[synthetic.EPOCH.isoformat() + "T00:00:00Z", None]]},
        },
        "links": [
            {"rel": "self", "href": f"{root}/collections/{cid}", "type": "application/json"},
            {"rel": "root", "href": f"{root}/", "type": "application/json"},
        ],
    }
    if full:
        meta["cube:dimensions"] = {
            "x": {
                "type": "spatial",
                "axis": "x",
                "extent": [-25.0, 45.0],
                "step": pixel_size,
                "reference_system": 32631,
                "description": "UTM zone of the requested extent",
            },
            "y": {
                "type": "spatial",
                "axis": "y",
                "extent": [34.0, 72.0],
                "step": pixel_size,
                "reference_system": 32631,
                "description": "UTM zone of the requested extent",
            },
            "t": {
                "type": "temporal",
                "extent": [synthetic.EPOCH.isoformat() + "T00:00:00Z", None],
                "step": f"P{synthetic.REVISIT_DAYS}D",
            },
            "bands": {"type": "bands", "values": list(synthetic.BANDS)},
        }
        meta["summaries"] = {
            "eo:bands": _BANDS,
            "constellation": ["synthetic"],
            "gsd": [pixel_size],
        }
    return meta
