"""Job specification: parameter resolution like openeo's ProcessBasedJobCreator, geometry parameter, tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely.geometry
from openeo.internal.processes.parse import Parameter, Schema

from openeo_tile_jobs.core import jobspec
from openeo_tile_jobs.core.jobspec import (
    JobSpec,
    JobSpecError,
    ResolvedProcess,
    build_arguments,
    build_job_request,
    choose_geometry_parameter,
    find_client_token,
    new_client_token,
    process_from_dict,
)

GEOJSON_OR_BBOX = [
    {"type": "object", "subtype": "bounding-box"},
    {"type": "object", "subtype": "geojson"},
    {"type": "null"},
]
TILE = {
    "fid": 3,
    "tile_id": "x1_y2",
    "row": 2,
    "col": 1,
    "geometry": {"type": "Polygon", "coordinates": [[[4.0, 51.0], [4.1, 51.0], [4.1, 51.1], [4.0, 51.1], [4.0, 51.0]]]},
}

# The parameter part of the seed's APEx bap_composite definition (trimmed).
BAP = {
    "id": "bap_composite",
    "parameters": [
        {"name": "spatial_extent", "description": "", "schema": GEOJSON_OR_BBOX},
        {"name": "temporal_extent", "description": "", "schema": {"type": "array", "subtype": "temporal-interval"}},
        {"name": "max_cloud_cover", "description": "", "schema": {"type": "number"}, "default": 75},
        {"name": "mask", "description": "", "schema": {"type": "boolean"}, "optional": True},
    ],
}


def resolved(definition=BAP, **kw):
    process = process_from_dict(definition)
    name, kind = choose_geometry_parameter(process.parameters, kw.get("chosen"), kw.get("kind"))
    return ResolvedProcess(
        process_id=process.id,
        namespace=kw.get("namespace", "https://example.org/bap.json"),
        parameters=tuple(process.parameters),
        geometry_parameter=name,
        geometry_kind=kind,
    )


def test_spec_needs_a_process_and_round_trips():
    with pytest.raises(JobSpecError):
        JobSpec()
    spec = JobSpec(namespace="https://x/y.json", parameters={"temporal_extent": ["2024-06-01", "2024-09-01"]})
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_geometry_parameter_found_from_schema_prefers_geojson():
    r = resolved()
    assert (r.geometry_parameter, r.geometry_kind) == ("spatial_extent", "geojson")


def test_bbox_only_parameter_gets_a_bbox_in_the_given_crs():
    definition = {
        "id": "p",
        "parameters": [{"name": "extent", "description": "", "schema": {"type": "object", "subtype": "bounding-box"}}],
    }
    r = resolved(definition)
    assert (r.geometry_parameter, r.geometry_kind) == ("extent", "bbox")
    tile = dict(TILE, bbox={"west": 1, "south": 2, "east": 3, "north": 4, "crs": 32631})
    args = build_arguments(r, JobSpec(process_id="p"), tile)
    assert args["extent"] == {"west": 1, "south": 2, "east": 3, "north": 4, "crs": 32631}
    # without a tiling-CRS bbox, the bounds of the EPSG:4326 geometry
    args = build_arguments(r, JobSpec(process_id="p"), TILE)
    assert args["extent"] == {"west": 4.0, "south": 51.0, "east": 4.1, "north": 51.1, "crs": 4326}


def test_two_geometry_parameters_need_a_choice_unless_one_is_well_known():
    schema = {"type": "object", "subtype": "geojson"}
    two = [Parameter("a", "", Schema(schema)), Parameter("b", "", Schema(schema))]
    with pytest.raises(JobSpecError, match="choose one"):
        choose_geometry_parameter(two)
    assert choose_geometry_parameter(two, "b") == ("b", "geojson")
    named = [Parameter("mask_geom", "", Schema(schema)), Parameter("geometry", "", Schema(schema))]
    assert choose_geometry_parameter(named) == ("geometry", "geojson")
    with pytest.raises(JobSpecError, match="no parameter"):
        choose_geometry_parameter(two, "c")


def test_arguments_resolved_like_process_based_job_creator():
    """Same order as openeo's ProcessBasedJobCreator: column, user value, schema default, optional skipped."""
    spec = JobSpec(
        namespace="https://example.org/bap.json",
        parameters={"temporal_extent": ["2024-06-01", "2024-09-01"], "max_cloud_cover": 50},
        column_map={"max_cloud_cover": "cc"},
    )
    tile = dict(TILE, cc=np.int64(20))
    args = build_arguments(resolved(), spec, tile)
    assert args == {
        "spatial_extent": TILE["geometry"],
        "temporal_extent": ["2024-06-01", "2024-09-01"],
        "max_cloud_cover": 20,
    }
    assert type(args["max_cloud_cover"]) is int  # numpy scalar made JSON-able
    args = build_arguments(resolved(), JobSpec(namespace="u", parameters={"temporal_extent": ["a", "b"]}), TILE)
    assert args["max_cloud_cover"] == 75 and "mask" not in args
    with pytest.raises(JobSpecError, match="temporal_extent"):
        build_arguments(resolved(), JobSpec(namespace="u"), TILE)


def test_same_result_as_process_based_job_creator(tmp_path):
    """The process graph we send equals the one openeo's ProcessBasedJobCreator builds for the same row."""
    import geopandas as gpd
    import openeo
    from openeo.extra.job_management.process_based import ProcessBasedJobCreator

    spec = JobSpec(
        namespace="https://example.org/bap.json", parameters={"temporal_extent": ["2024-06-01", "2024-09-01"]}
    )
    ours = build_job_request(resolved(), spec, TILE).process_graph

    creator = ProcessBasedJobCreator(namespace=spec.namespace, parameter_defaults=spec.parameters)
    creator._get_process_definition = lambda connection: process_from_dict(BAP)  # no network in a unit test
    row = gpd.GeoDataFrame({"geometry": [shapely.geometry.shape(TILE["geometry"])]}, crs=4326).iloc[0]

    captured = {}

    class FakeConnection(openeo.Connection):
        def __init__(self):  # no HTTP
            pass

        def create_job(self, process_graph, **kw):
            captured["pg"] = process_graph.flat_graph()
            return None

    creator.start_job(row=row, connection=FakeConnection())
    theirs = captured["pg"]
    # shapely's mapping gives tuples; compare as JSON
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(theirs))


def test_title_description_and_client_token():
    spec = JobSpec(namespace="https://example.org/bap.json", parameters={"temporal_extent": ["a", "b"]})
    token = new_client_token()
    req = build_job_request(resolved(), spec, TILE, client_token=token)
    assert req.title.startswith("bap_composite tile x1_y2")
    assert "row 2, col 1" in req.description
    assert find_client_token(req.title) == token
    assert find_client_token(None, req.description) == token
    assert find_client_token("no token here") is None
    assert new_client_token() != token
    # unknown template fields stay as they are instead of failing
    spec2 = JobSpec(namespace="u", parameters={"temporal_extent": ["a", "b"]}, title_template="{nope} {tile_id}")
    assert build_job_request(resolved(), spec2, TILE).title == "{nope} x1_y2"


def test_process_graph_file_parameters_substituted_but_not_in_callbacks(tmp_path):
    graph = {
        "lc": {
            "process_id": "load_collection",
            "arguments": {
                "id": "SENTINEL2_L2A",
                "spatial_extent": {"from_parameter": "spatial_extent"},
                "temporal_extent": {"from_parameter": "temporal_extent"},
            },
        },
        "r": {
            "process_id": "reduce_dimension",
            "arguments": {
                "data": {"from_node": "lc"},
                "dimension": "t",
                "reducer": {
                    "process_graph": {
                        "m": {"process_id": "median", "arguments": {"data": {"from_parameter": "data"}}, "result": True}
                    }
                },
            },
        },
        "s": {
            "process_id": "save_result",
            "arguments": {"data": {"from_node": "r"}, "format": "GTiff"},
            "result": True,
        },
    }
    path = tmp_path / "pg.json"
    path.write_text(json.dumps(graph))
    spec = JobSpec(process_graph_file=str(path), parameters={"temporal_extent": ["2024-06-01", "2024-07-01"]})
    r = jobspec.resolve_process(spec)
    assert [p.name for p in r.parameters] == ["spatial_extent", "temporal_extent"]  # "data" is a callback's
    assert r.geometry_parameter == "spatial_extent"
    pg = build_job_request(r, spec, TILE).process_graph
    text = json.dumps(pg)
    assert '"from_parameter": "spatial_extent"' not in text and '"from_parameter": "data"' in text
    lc = next(n for n in pg.values() if n["process_id"] == "load_collection")
    assert lc["arguments"]["spatial_extent"] == TILE["geometry"]
    assert lc["arguments"]["temporal_extent"] == ["2024-06-01", "2024-07-01"]


def test_bad_process_graph_file_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("[1, 2]")
    with pytest.raises(JobSpecError, match="process graph"):
        jobspec.resolve_process(JobSpec(process_graph_file=str(p)))
    with pytest.raises(JobSpecError, match="Cannot read"):
        jobspec.resolve_process(JobSpec(process_graph_file=str(tmp_path / "missing.json")))
