"""openEO parameter schemas -> form field descriptions and validation. Pure Python (no Qt).

The dock's Process step builds its widgets from :class:`FieldSpec` objects;
keeping the mapping here makes it testable without QGIS. Validation returns
:class:`Problem` codes; the widget module turns them into translated text.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

# Field kinds, one widget type each.
DATE = "date"
DATETIME = "datetime"
DATE_RANGE = "date_range"
NUMBER = "number"
INTEGER = "integer"
ENUM = "enum"
ENUM_LIST = "enum_list"  # an array whose items are one of a list of values: a checklist
BOOLEAN = "boolean"
STRING = "string"
BBOX = "bbox"
GEOMETRY = "geometry"
JSON = "json"  # anything else: edited as JSON text

GEOMETRY_SUBTYPES = frozenset({"geojson", "vector-cube", "geometry", "geometries"})
BBOX_SUBTYPES = frozenset({"bounding-box"})
#: Names that point at the spatial parameter when the schema does not say it.
GEOMETRY_NAMES = ("geometry", "geometries", "aoi", "spatial_extent", "area", "polygon", "bbox", "extent")
BBOX_KEYS = ("west", "south", "east", "north")


@dataclass(frozen=True)
class FieldSpec:
    """One form field derived from an openEO process parameter."""

    name: str
    kind: str
    description: str = ""
    required: bool = True
    nullable: bool = False
    default: Any = None
    has_default: bool = False
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple = ()  #: an ENUM's values, or the values an ENUM_LIST's items may take
    min_items: Optional[int] = None  #: an ENUM_LIST's minItems / maxItems
    max_items: Optional[int] = None
    pattern: Optional[str] = None
    schema: Any = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Problem:
    """A validation problem: ``code`` selects the message, ``args`` fill it in."""

    code: str
    args: tuple = ()


# Problem codes.
REQUIRED = "required"
NOT_A_NUMBER = "not_a_number"
NOT_AN_INTEGER = "not_an_integer"
BELOW_MINIMUM = "below_minimum"
ABOVE_MAXIMUM = "above_maximum"
NOT_A_CHOICE = "not_a_choice"
BAD_DATE = "bad_date"
RANGE_ORDER = "range_order"
BAD_BBOX = "bad_bbox"
BBOX_ORDER = "bbox_order"
PATTERN = "pattern"
BAD_JSON = "bad_json"
TOO_FEW = "too_few"
TOO_MANY = "too_many"


def _schemas(schema: Any) -> list[dict]:
    """Flatten a schema (dict, list of alternatives, anyOf/oneOf) into alternatives."""
    if isinstance(schema, list):
        return [s for item in schema for s in _schemas(item)]
    if not isinstance(schema, dict):
        return []
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [s for item in schema[key] for s in _schemas(item)]
    return [schema]


def _types(schema: dict) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind)
    return {kind} if kind else set()


def _is_null(schema: dict) -> bool:
    return _types(schema) == {"null"}


def _is_date(schema: dict) -> bool:
    return schema.get("subtype") == "date" or schema.get("format") == "date"


def _is_datetime(schema: dict) -> bool:
    return schema.get("subtype") == "date-time" or schema.get("format") == "date-time"


def _is_temporal_interval(schema: dict) -> bool:
    if schema.get("subtype") == "temporal-interval":
        return True
    if "array" in _types(schema) and schema.get("minItems") == 2 and schema.get("maxItems") == 2:
        items = _schemas(schema.get("items", {}))
        return bool(items) and all(_is_date(s) or _is_datetime(s) or _is_null(s) for s in items)
    return False


def _item_choices(schema: dict) -> tuple:
    """The values an array's items may take (``items: {"enum": [...]}``), else ()."""
    if "array" not in _types(schema):
        return ()
    items = [s for s in _schemas(schema.get("items", {})) if not _is_null(s)]
    return tuple(items[0]["enum"]) if len(items) == 1 and isinstance(items[0].get("enum"), list) else ()


def kind_of(schema: Any) -> str:
    """The form field kind for a parameter schema (alternatives: the first supported one wins)."""
    alternatives = [s for s in _schemas(schema) if not _is_null(s)]
    if not alternatives:
        return JSON
    for s in alternatives:  # the most specific kinds first
        if s.get("subtype") in GEOMETRY_SUBTYPES:
            return GEOMETRY
    for s in alternatives:
        if s.get("subtype") in BBOX_SUBTYPES:
            return BBOX
    for s in alternatives:
        if _is_temporal_interval(s):
            return DATE_RANGE
    for s in alternatives:
        if "enum" in s:
            return ENUM
    for s in alternatives:
        if _item_choices(s):
            return ENUM_LIST
    for s in alternatives:
        if _is_date(s):
            return DATE
    for s in alternatives:
        if _is_datetime(s):
            return DATETIME
    for s in alternatives:
        types = _types(s)
        if "boolean" in types:
            return BOOLEAN
        if "integer" in types:
            return INTEGER
        if "number" in types:
            return NUMBER
        if "string" in types:
            return STRING
    return JSON


def field_from_parameter(parameter: dict) -> FieldSpec:
    """A :class:`FieldSpec` from one entry of an openEO process's ``parameters`` list."""
    schema = parameter.get("schema", {})
    alternatives = _schemas(schema)
    nullable = any(_is_null(s) for s in alternatives)
    concrete = [s for s in alternatives if not _is_null(s)]
    kind = kind_of(schema)
    main = next((s for s in concrete if kind_of(s) == kind), concrete[0] if concrete else {})
    minimum = main.get("minimum")
    maximum = main.get("maximum")
    exclusive_minimum = main.get("exclusiveMinimum", False)
    exclusive_maximum = main.get("exclusiveMaximum", False)
    # JSON Schema draft 6+: exclusiveMinimum is the bound itself
    if not isinstance(exclusive_minimum, bool):
        minimum, exclusive_minimum = exclusive_minimum, True
    if not isinstance(exclusive_maximum, bool):
        maximum, exclusive_maximum = exclusive_maximum, True
    return FieldSpec(
        name=str(parameter.get("name", "")),
        kind=kind,
        description=str(parameter.get("description", "") or ""),
        required=not parameter.get("optional", False) and "default" not in parameter,
        nullable=nullable,
        default=parameter.get("default"),
        has_default="default" in parameter,
        minimum=minimum,
        maximum=maximum,
        exclusive_minimum=bool(exclusive_minimum),
        exclusive_maximum=bool(exclusive_maximum),
        choices=_item_choices(main) if kind == ENUM_LIST else tuple(main.get("enum", ())),
        min_items=main.get("minItems") if kind == ENUM_LIST else None,
        max_items=main.get("maxItems") if kind == ENUM_LIST else None,
        pattern=main.get("pattern"),
        schema=schema,
    )


def fields_from_parameters(parameters: list[dict]) -> list[FieldSpec]:
    return [field_from_parameter(p) for p in parameters or [] if isinstance(p, dict) and p.get("name")]


def geometry_field(fields: list[FieldSpec]) -> Optional[str]:
    """The parameter the tile's geometry goes into: a geometry schema first, then a bbox, then a telling name."""
    for kind in (GEOMETRY, BBOX):
        for spec in fields:
            if spec.kind == kind:
                return spec.name
    for name in GEOMETRY_NAMES:
        for spec in fields:
            if spec.name.lower() == name and spec.kind in (JSON, STRING, GEOMETRY, BBOX):
                return spec.name
    return None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _parse_date(text: Any, with_time: bool) -> Optional[dt.date]:
    if isinstance(text, dt.date):
        return text
    if not isinstance(text, str):
        return None
    try:
        if with_time:
            return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def validate(spec: FieldSpec, value: Any) -> Optional[Problem]:
    """None when ``value`` fits ``spec``, else the first :class:`Problem`. Geometry fields are filled per tile."""
    if spec.kind == GEOMETRY:
        return None
    if _empty(value) or (spec.kind == DATE_RANGE and isinstance(value, (list, tuple)) and all(map(_empty, value))):
        return Problem(REQUIRED) if spec.required and not spec.nullable else None
    if spec.kind in (NUMBER, INTEGER):
        return _validate_number(spec, value)
    if spec.kind == ENUM:
        return None if value in spec.choices else Problem(NOT_A_CHOICE, (", ".join(map(str, spec.choices)),))
    if spec.kind == ENUM_LIST:
        return _validate_enum_list(spec, value)
    if spec.kind in (DATE, DATETIME):
        return None if _parse_date(value, spec.kind == DATETIME) else Problem(BAD_DATE, (str(value),))
    if spec.kind == DATE_RANGE:
        return _validate_range(value)
    if spec.kind == BBOX:
        return _validate_bbox(value)
    if spec.kind == STRING and spec.pattern and not re.search(spec.pattern, str(value)):
        return Problem(PATTERN, (spec.pattern,))
    return None


def _validate_number(spec: FieldSpec, value: Any) -> Optional[Problem]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return Problem(NOT_A_NUMBER)
    if isinstance(value, bool) or math.isnan(number):
        return Problem(NOT_A_NUMBER)
    if spec.kind == INTEGER and not float(number).is_integer():
        return Problem(NOT_AN_INTEGER)
    if spec.minimum is not None:
        if number < spec.minimum or (spec.exclusive_minimum and number == spec.minimum):
            return Problem(BELOW_MINIMUM, (_fmt(spec.minimum), spec.exclusive_minimum))
    if spec.maximum is not None:
        if number > spec.maximum or (spec.exclusive_maximum and number == spec.maximum):
            return Problem(ABOVE_MAXIMUM, (_fmt(spec.maximum), spec.exclusive_maximum))
    return None


def _validate_enum_list(spec: FieldSpec, value: Any) -> Optional[Problem]:
    """A list of the allowed values with the schema's number of items (nothing chosen: required or not)."""
    if not isinstance(value, (list, tuple)) or any(item not in spec.choices for item in value):
        return Problem(NOT_A_CHOICE, (", ".join(map(str, spec.choices)),))
    if not value and not spec.min_items:
        return Problem(REQUIRED) if spec.required and not spec.nullable else None
    if spec.min_items is not None and len(value) < spec.min_items:
        return Problem(TOO_FEW, (spec.min_items,))
    if spec.max_items is not None and len(value) > spec.max_items:
        return Problem(TOO_MANY, (spec.max_items,))
    return None


def _validate_range(value: Any) -> Optional[Problem]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return Problem(BAD_DATE, (str(value),))
    start, end = value
    parsed = []
    for item in (start, end):
        if _empty(item):  # open-ended interval
            parsed.append(None)
            continue
        date = _parse_date(item, with_time="T" in str(item))
        if date is None:
            return Problem(BAD_DATE, (str(item),))
        parsed.append(date)
    if parsed[0] is not None and parsed[1] is not None and str(parsed[0]) >= str(parsed[1]):
        return Problem(RANGE_ORDER)
    return None


def _validate_bbox(value: Any) -> Optional[Problem]:
    if not isinstance(value, dict) or any(k not in value for k in BBOX_KEYS):
        return Problem(BAD_BBOX)
    try:
        west, south, east, north = (float(value[k]) for k in BBOX_KEYS)
    except (TypeError, ValueError):
        return Problem(BAD_BBOX)
    if west >= east or south >= north:
        return Problem(BBOX_ORDER)
    return None


def _fmt(number: float) -> str:
    return f"{number:g}"


def initial_value(spec: FieldSpec) -> Any:
    """What a new form shows: the default, else an empty value of the right shape."""
    if spec.has_default:
        return spec.default
    if spec.kind == BOOLEAN:
        return False
    if spec.kind == DATE_RANGE:
        return [None, None]
    if spec.kind == ENUM_LIST:
        return []
    if spec.kind == ENUM and spec.choices:
        return spec.choices[0] if spec.required else None
    return None
