"""The real APEx catalogue definitions (tests/data/apex_udps, see SOURCES.txt there) by namespace URL over
real HTTP: the tile goes to each spatial parameter in the form it takes; a process chosen by country
(RAMONA, no spatial parameter) is refused before any job is made, with the reason."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

from openeo_tile_jobs.core.jobspec import JobSpec, NotTileableError, build_job_request, resolve_process

APEX = Path(__file__).resolve().parent / "data" / "apex_udps"
RAMONA = "RAMONA-herbaceous_rangeland_biomass-country-mosaick"
TILE = {
    "tile_id": "x1_y2",
    "row": 2,
    "col": 1,
    "geometry": {"type": "Polygon", "coordinates": [[[4.0, 51.0], [4.1, 51.0], [4.1, 51.1], [4.0, 51.1], [4.0, 51.0]]]},
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve_catalogue():
    """The definitions served on 127.0.0.1 like raw.githubusercontent.com serves the catalogue: the root URL."""
    handler = functools.partial(_QuietHandler, directory=str(APEX))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def catalogue():
    with serve_catalogue() as url:
        yield url


@pytest.mark.parametrize(
    ("name", "parameter", "kind"),
    [
        ("bap_composite", "geometry", "geojson"),
        ("max_ndvi_composite", "spatial_extent", "bbox"),
        ("biopar", "spatial_extent", "bbox"),
        ("udp_obsgession_w23_lai", "spatial_extent", "bbox"),
        ("snow_classifier", "bounding_box", "bbox"),
    ],
)
def test_spatial_udps_get_the_tile(catalogue, name, parameter, kind):
    spec = JobSpec(namespace=f"{catalogue}/{name}.json", parameters={"temporal_extent": ["2024-06-01", "2024-09-01"]})
    resolved = resolve_process(spec)
    assert (resolved.geometry_parameter, resolved.geometry_kind) == (parameter, kind)
    # what the tile puts into the job: its GeoJSON, or its bounds as a bounding box
    if name == "udp_obsgession_w23_lai":  # dates as two strings
        spec.parameters = {"start_date": "2024-06-01", "end_date": "2024-09-01"}
    graph = build_job_request(resolved, spec, TILE).process_graph
    (node,) = graph.values()
    assert node["process_id"] == name and node["namespace"] == spec.namespace
    expected = (
        TILE["geometry"] if kind == "geojson" else {"west": 4.0, "south": 51.0, "east": 4.1, "north": 51.1, "crs": 4326}
    )
    assert node["arguments"][parameter] == expected


def test_a_process_chosen_by_country_is_refused_with_the_reason(catalogue):
    definition = json.loads((APEX / f"{RAMONA}.json").read_text())
    assert [p["name"] for p in definition["parameters"]] == ["country", "year", "month"]
    with pytest.raises(NotTileableError) as refused:
        resolve_process(JobSpec(namespace=f"{catalogue}/{RAMONA}.json"))
    message = str(refused.value)
    assert RAMONA in message and "cannot be split into tiles" in message
    assert "(country, year, month)" in message and "every tile would run the same job" in message
    # choosing one of its parameters by hand does not make it tileable
    with pytest.raises(NotTileableError, match="'country' cannot take a tile's area"):
        resolve_process(JobSpec(namespace=f"{catalogue}/{RAMONA}.json", geometry_parameter="country"))


def test_a_process_graph_file_without_parameters_is_refused(tmp_path):
    path = tmp_path / "fixed.json"
    graph = {"lc": {"process_id": "load_collection", "arguments": {"id": "S2", "spatial_extent": None}, "result": True}}
    path.write_text(json.dumps(graph))
    with pytest.raises(NotTileableError, match="it has no parameters"):
        resolve_process(JobSpec(process_graph_file=str(path)))


def test_the_copies_are_the_catalogue_files_verbatim():
    """tests/data/apex_udps holds the APEx files byte for byte (sha256 as listed in SOURCES.txt)."""
    import hashlib
    import re

    listed = dict(
        re.findall(r"^(\S+\.json)\n(?:  .*\n)*?  sha256: ([0-9a-f]{64})", (APEX / "SOURCES.txt").read_text(), re.M)
    )
    assert len(listed) == 6 and RAMONA + ".json" in listed
    for name, digest in listed.items():
        assert hashlib.sha256((APEX / name).read_bytes()).hexdigest() == digest, name
