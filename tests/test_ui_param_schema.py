"""The pure schema -> field mapping and validation behind the Process step's form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openeo_tile_jobs.ui import param_schema as ps
from openeo_tile_jobs.ui.device_flow import parse_instructions

DEMO_PROCESS = Path(__file__).resolve().parent.parent / "local_backend" / "processes" / "cloud_free_composite.json"


@pytest.mark.parametrize(
    ("schema", "kind"),
    [
        ({"type": "string", "format": "date"}, ps.DATE),
        ({"type": "string", "subtype": "date-time", "format": "date-time"}, ps.DATETIME),
        (
            {"type": "array", "subtype": "temporal-interval", "minItems": 2, "maxItems": 2, "items": {}},
            ps.DATE_RANGE,
        ),
        ({"type": "number", "minimum": 0, "maximum": 1}, ps.NUMBER),
        ({"type": "integer"}, ps.INTEGER),
        ({"type": "string", "enum": ["a", "b"]}, ps.ENUM),
        ({"type": "boolean"}, ps.BOOLEAN),
        ({"type": "string"}, ps.STRING),
        ({"type": "object", "subtype": "bounding-box"}, ps.BBOX),
        ([{"type": "object", "subtype": "geojson"}, {"type": "object", "subtype": "bounding-box"}], ps.GEOMETRY),
        ([{"type": "null"}, {"type": "number"}], ps.NUMBER),
        ({"type": "object"}, ps.JSON),
    ],
)
def test_kind_of_schema(schema, kind) -> None:
    assert ps.kind_of(schema) == kind


def test_demo_process_fields_and_geometry() -> None:
    definition = json.loads(DEMO_PROCESS.read_text(encoding="utf-8"))
    fields = ps.fields_from_parameters(definition["parameters"])
    by_name = {f.name: f for f in fields}
    assert by_name["spatial_extent"].kind == ps.GEOMETRY
    assert by_name["temporal_extent"].kind == ps.DATE_RANGE
    assert by_name["temporal_extent"].default == ["2024-06-01", "2024-09-01"]
    assert not by_name["temporal_extent"].required
    assert ps.geometry_field(fields) == "spatial_extent"
    assert ps.initial_value(by_name["temporal_extent"]) == ["2024-06-01", "2024-09-01"]


def test_number_bounds_and_exclusive_bounds() -> None:
    spec = ps.field_from_parameter({"name": "x", "schema": {"type": "number", "minimum": 0, "maximum": 100}})
    assert ps.validate(spec, "50") is None
    assert ps.validate(spec, "-1") == ps.Problem(ps.BELOW_MINIMUM, ("0", False))
    assert ps.validate(spec, "101").code == ps.ABOVE_MAXIMUM
    assert ps.validate(spec, "abc").code == ps.NOT_A_NUMBER
    assert ps.validate(spec, "").code == ps.REQUIRED
    draft6 = ps.field_from_parameter({"name": "y", "schema": {"type": "number", "exclusiveMinimum": 0}})
    assert ps.validate(draft6, "0").code == ps.BELOW_MINIMUM
    assert ps.validate(draft6, "0.1") is None
    integer = ps.field_from_parameter({"name": "n", "schema": {"type": "integer"}, "optional": True})
    assert ps.validate(integer, "1.5").code == ps.NOT_AN_INTEGER
    assert ps.validate(integer, "") is None  # optional


def test_dates_ranges_enums_bboxes() -> None:
    date = ps.field_from_parameter({"name": "d", "schema": {"type": "string", "format": "date"}})
    assert ps.validate(date, "2024-02-30").code == ps.BAD_DATE
    assert ps.validate(date, "2024-02-29") is None
    interval = ps.field_from_parameter({"name": "t", "schema": {"type": "array", "subtype": "temporal-interval"}})
    assert ps.validate(interval, ["2024-09-01", "2024-06-01"]).code == ps.RANGE_ORDER
    assert ps.validate(interval, ["2024-06-01", None]) is None  # open-ended
    assert ps.validate(interval, [None, None]).code == ps.REQUIRED
    enum = ps.field_from_parameter({"name": "e", "schema": {"type": "string", "enum": ["mean", "median"]}})
    assert ps.validate(enum, "max").code == ps.NOT_A_CHOICE
    assert ps.validate(enum, "median") is None
    bbox = ps.field_from_parameter({"name": "b", "schema": {"type": "object", "subtype": "bounding-box"}})
    assert ps.validate(bbox, {"west": 5, "south": 50, "east": 4, "north": 51}).code == ps.BBOX_ORDER
    assert ps.validate(bbox, {"west": 4, "south": 50}).code == ps.BAD_BBOX
    assert ps.validate(bbox, {"west": 4, "south": 50, "east": 5, "north": 51}) is None


def test_device_flow_instructions_are_parsed() -> None:
    plain = parse_instructions("Visit https://idp.example/device and enter user code 'ABCD-EFGH' to authenticate.")
    assert plain.url == "https://idp.example/device"
    assert plain.user_code == "ABCD-EFGH"
    complete = parse_instructions("Visit https://idp.example/device?user_code=WXYZ-1234 to authenticate.")
    assert complete.user_code == "WXYZ-1234"
    assert parse_instructions("[####      ] Authorization pending") is None


def test_enum_array_is_a_checklist_with_min_and_max_items() -> None:
    apex = Path(__file__).resolve().parent / "data" / "apex_udps" / "bap_composite.json"
    bands = next(p for p in json.loads(apex.read_text())["parameters"] if p["name"] == "bands")
    spec = ps.field_from_parameter(bands)
    assert spec.kind == ps.ENUM_LIST and spec.min_items == 1 and spec.max_items is None
    assert spec.choices[:3] == ("B02", "B03", "B04") and len(spec.choices) == 10
    assert ps.initial_value(spec) == ["B04", "B03", "B02"]
    assert ps.validate(spec, ["B08"]) is None
    assert ps.validate(spec, []) == ps.Problem(ps.TOO_FEW, (1,))  # optional, but minItems holds
    assert ps.validate(spec, ["B08", "B99"]).code == ps.NOT_A_CHOICE
    pair = ps.field_from_parameter(
        {"name": "p", "schema": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 2}}
    )
    assert pair.kind == ps.ENUM_LIST and pair.required
    assert ps.validate(pair, ["a", "b", "c"]) == ps.Problem(ps.TOO_MANY, (2,))
    assert ps.validate(pair, []) == ps.Problem(ps.REQUIRED)
    # a plain array stays JSON; a temporal interval stays a date range
    assert ps.kind_of({"type": "array", "items": {"type": "string"}}) == ps.JSON
