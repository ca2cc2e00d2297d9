"""What every tile runs: a process, its parameter values, and how a tile fills them in.

Three sources of a process, as the user picks them:

* ``namespace``: the URL of a remote process definition / user-defined process, like the
  seed's APEx ``bap_composite.json`` (optionally with ``process_id`` when the URL is a
  process listing);
* ``process_id`` alone: a process predefined on the backend, or one of the user's
  user-defined processes there;
* ``process_graph_file``: a JSON file with a process graph (a bare flat graph, or a
  process with ``process_graph`` and ``parameters``), parameters filled in by the
  openeo client's own unflattener (so callback parameters are left alone).

Parameters are resolved the way openeo's ``ProcessBasedJobCreator.start_job`` does
(column of the tile row, else the user's value, else the schema default, else skipped
when optional, else an error), with one addition it cannot make: the geometry parameter
is filled from the tile -- as GeoJSON when its schema takes GeoJSON, as a bounding box
when it only takes a bounding box. A process with no parameter that can take the tile (e.g. one
chosen by country) is refused with :class:`NotTileableError` before any job is made: every tile
would run the same job. Everything here is pure except :func:`resolve_process`, which may fetch
the definition once per run.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy
from openeo.internal.graph_building import PGNode
from openeo.internal.processes.parse import Parameter, Process, Schema

GEOMETRY_GEOJSON = "geojson"
GEOMETRY_BBOX = "bbox"

#: Parameter names tried (in this order) when several parameters could take the tile.
PREFERRED_GEOMETRY_NAMES = ("spatial_extent", "geometry", "geometries", "aoi", "area", "bbox", "extent")

DEFAULT_TITLE = "{process_id} tile {tile_id}"
DEFAULT_DESCRIPTION = "openEO Tile Jobs: process {process_id} for tile {tile_id} (row {row}, col {col})"

TOKEN_PREFIX = "otj-"
#: Bookkeeping columns of the job database: never taken as parameter values by name.
ENGINE_COLUMNS = frozenset(
    {
        "fid",
        "geom",
        "geometry",
        "bbox",
        "tile_id",
        "row",
        "col",
        "status",
        "id",
        "backend_name",
        "start_time",
        "running_start_time",
        "costs",
        "cpu",
        "memory",
        "duration",
        "title",
        "description",
        "progress",
        "attempts",
        "last_error",
        "client_token",
        "result_dir",
        "result_files",
        "result_status",
        "updated",
    }
)
_TOKEN_RX = re.compile(r"\[(otj-[0-9a-f]{16})\]")


class JobSpecError(ValueError):
    """The job specification cannot produce a job (message is for the user)."""


class NotTileableError(JobSpecError):
    """The process has no parameter that can take a tile's area: one job per tile makes no sense."""


@dataclass
class JobSpec:
    """What every tile runs. Serialisable with :meth:`to_dict` / :meth:`from_dict` (the run table)."""

    process_id: Optional[str] = None
    namespace: Optional[str] = None
    process_graph_file: Optional[str] = None
    #: Parameter values shared by every tile, e.g. ``{"temporal_extent": ["2024-06-01", "2024-09-01"]}``.
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The parameter that receives the tile; ``None``: found from the parameter schemas.
    geometry_parameter: Optional[str] = None
    #: ``"geojson"`` or ``"bbox"``; ``None``: from the parameter's schema.
    geometry_kind: Optional[str] = None
    #: Parameter name -> tile column whose value it takes.
    column_map: dict[str, str] = field(default_factory=dict)
    title_template: str = DEFAULT_TITLE
    description_template: str = DEFAULT_DESCRIPTION
    job_options: Optional[dict[str, Any]] = None
    #: The process definition as fetched when the run was set up (namespace URL or backend
    #: process): recorded with the run, so resuming never depends on fetching it again.
    definition: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        if not (self.process_id or self.namespace or self.process_graph_file):
            raise JobSpecError("Choose a process: a namespace URL, a process id or a process graph file.")
        if self.process_graph_file and (self.namespace or self.process_id):
            raise JobSpecError("A process graph file cannot be combined with a process id or namespace.")
        if self.geometry_kind not in (None, GEOMETRY_GEOJSON, GEOMETRY_BBOX):
            raise JobSpecError(f"Unknown geometry kind {self.geometry_kind!r} (use 'geojson' or 'bbox').")

    def to_dict(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "namespace": self.namespace,
            "process_graph_file": self.process_graph_file,
            "parameters": self.parameters,
            "geometry_parameter": self.geometry_parameter,
            "geometry_kind": self.geometry_kind,
            "column_map": self.column_map,
            "title_template": self.title_template,
            "description_template": self.description_template,
            "job_options": self.job_options,
            "definition": self.definition,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and data[k] is not None}
        return cls(**known)


@dataclass(frozen=True)
class ResolvedProcess:
    """A process definition fetched once per run, ready to build one job per tile."""

    process_id: str
    namespace: Optional[str]
    parameters: tuple[Parameter, ...]
    #: For a process graph file: the flat graph (or process dict) to fill in.
    flat_graph: Optional[dict] = None
    geometry_parameter: Optional[str] = None
    geometry_kind: Optional[str] = None
    #: The definition it was read from (for :attr:`JobSpec.definition`); None for a graph file.
    definition: Optional[dict] = None


@dataclass(frozen=True)
class JobRequest:
    """The body of one ``POST /jobs``."""

    process_graph: dict
    title: str
    description: str
    job_options: Optional[dict] = None


# ---------------------------------------------------------------------------------------------
# Resolving the process definition
# ---------------------------------------------------------------------------------------------


def resolve_process(spec: JobSpec, connection: Any = None, session: Any = None, timeout: float = 30) -> ResolvedProcess:
    """Fetch the process definition once and choose the geometry parameter.

    ``connection`` (an ``openeo.Connection``) is needed for a backend process id;
    ``session`` (a ``requests.Session`` carrying the caller's proxies) for a namespace URL.
    """
    definition, flat_graph = None, None
    if spec.process_graph_file:
        process, flat_graph = _load_process_graph_file(Path(spec.process_graph_file))
    elif spec.definition:  # recorded with the run: no network
        definition = spec.definition
    elif spec.namespace and re.match(r"https?://", spec.namespace):
        definition = _fetch_remote_definition(spec.namespace, spec.process_id, session, timeout)
    elif spec.namespace:
        raise JobSpecError(f"Unsupported namespace {spec.namespace!r}: give the URL of a process definition.")
    else:
        if connection is None:
            raise JobSpecError("A backend connection is needed to describe a backend process.")
        definition = _describe_backend_process(connection, spec.process_id or "")
    if definition is not None:
        process = process_from_dict(definition, spec.process_id or "process")
    parameters = tuple(process.parameters or ())
    name, kind = choose_geometry_parameter(parameters, spec.geometry_parameter, spec.geometry_kind)
    if name is None:
        raise NotTileableError(not_tileable_message(process.id, parameters))
    resolved = ResolvedProcess(
        process_id=process.id,
        namespace=spec.namespace if not spec.process_graph_file else None,
        parameters=parameters,
        flat_graph=flat_graph,
        geometry_parameter=name,
        geometry_kind=kind,
        definition=definition,
    )
    return resolved


def process_from_dict(data: Mapping[str, Any], fallback_id: str = "process") -> Process:
    """An openeo ``Process`` from a definition dict, tolerant of missing descriptions."""
    params = []
    for p in data.get("parameters") or []:
        params.append(
            Parameter.from_dict(
                {"description": "", "schema": {}, **p},
            )
        )
    return Process(id=data.get("id") or fallback_id, parameters=params, description=data.get("description"))


def _fetch_remote_definition(url: str, process_id: Optional[str], session: Any, timeout: float) -> dict:
    """openeo's ``parse_remote_process_definition``, but through the caller's session (proxies)."""
    if session is None:
        import requests

        session = requests.Session()
    import requests

    resp = session.get(url, timeout=timeout)  # network errors propagate: the caller retries them
    if resp.status_code == 429 or resp.status_code >= 500:
        resp.raise_for_status()
    try:
        resp.raise_for_status()
        data = resp.json()
    except (requests.HTTPError, ValueError) as e:
        raise JobSpecError(f"Cannot read the process definition at {url}: {e}") from e
    if not isinstance(data, dict):
        raise JobSpecError(f"The process definition at {url} is not a JSON object.")
    if "id" not in data and isinstance(data.get("processes"), list):
        if not process_id:
            raise JobSpecError(f"{url} lists several processes: choose a process id.")
        matches = [p for p in data["processes"] if isinstance(p, dict) and p.get("id") == process_id]
        if len(matches) != 1:
            raise JobSpecError(f"Process {process_id!r} not found in the listing at {url}.")
        data = matches[0]
    if "id" not in data:
        raise JobSpecError(f"The process definition at {url} has no 'id'.")
    if process_id and data["id"] != process_id:
        raise JobSpecError(f"Expected process {process_id!r} at {url}, found {data['id']!r}.")
    return data


def _describe_backend_process(connection: Any, process_id: str) -> dict:
    """A predefined process of the backend, else one of the user's user-defined processes."""
    from . import retry

    errors = []
    for describe in (
        lambda: connection.describe_process(process_id),
        lambda: connection.user_defined_process(process_id).describe(),
    ):
        try:
            definition = dict(describe())
            definition.setdefault("id", process_id)
            return definition
        except Exception as e:
            if retry.classify(e) in (retry.TRANSIENT, retry.RATE_LIMITED):
                raise  # the backend is unwell, not the process unknown: retried later
            errors.append(str(e))
    raise JobSpecError(f"Process {process_id!r} is not available on the backend: {'; '.join(errors)}")


def _load_process_graph_file(path: Path) -> tuple[Process, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise JobSpecError(f"Cannot read process graph file {path}: {e}") from e
    if not isinstance(data, dict) or not data:
        raise JobSpecError(f"{path} does not hold a process graph.")
    if "process_graph" in data:
        process = process_from_dict(data, fallback_id=path.stem)
        if not process.parameters:
            process = Process(id=process.id, parameters=_parameters_referenced(data["process_graph"]))
        return process, data
    if not all(isinstance(v, dict) and "process_id" in v for v in data.values()):
        raise JobSpecError(f"{path} is neither a flat process graph nor a process with a 'process_graph'.")
    return Process(id=path.stem, parameters=_parameters_referenced(data)), data


def _parameters_referenced(flat_graph: Mapping[str, Any]) -> list[Parameter]:
    """Top-level ``from_parameter`` names of a graph without declared parameters (no schemas)."""
    names: list[str] = []

    def walk(value: Any, top: bool) -> None:
        if isinstance(value, dict):
            if top and set(value) == {"from_parameter"} and isinstance(value["from_parameter"], str):
                if value["from_parameter"] not in names:
                    names.append(value["from_parameter"])
                return
            for k, v in value.items():
                # Child process graphs (callbacks) have parameters of their own.
                walk(v, top and k != "process_graph")
        elif isinstance(value, list):
            for v in value:
                walk(v, top)

    for node in flat_graph.values():
        walk(node.get("arguments", {}), True)
    return [Parameter(name=n, description="", schema=Schema({})) for n in names]


# ---------------------------------------------------------------------------------------------
# The geometry parameter
# ---------------------------------------------------------------------------------------------


def _subtypes(schema: Any) -> set[str]:
    items = schema if isinstance(schema, list) else [schema]
    out = set()
    for s in items:
        if isinstance(s, dict):
            if s.get("subtype"):
                out.add(s["subtype"])
            for key in ("anyOf", "oneOf", "allOf"):
                if isinstance(s.get(key), list):
                    out |= _subtypes(s[key])
    return out


def geometry_kinds_of(parameter: Parameter) -> list[str]:
    """What tile forms ``parameter`` accepts, preferred first (GeoJSON before bbox)."""
    subtypes = _subtypes(parameter.schema.schema)
    kinds = []
    if parameter.schema.accepts_geojson() or "geojson" in subtypes:
        kinds.append(GEOMETRY_GEOJSON)
    if "bounding-box" in subtypes:
        kinds.append(GEOMETRY_BBOX)
    return kinds


def not_tileable_message(process_id: str, parameters: tuple[Parameter, ...] | list[Parameter]) -> str:
    """Why ``process_id`` cannot be run once per tile (no parameter takes an area)."""
    if parameters:
        names = ", ".join(p.name for p in parameters)
        has = f"none of its parameters ({names}) takes an area (a GeoJSON geometry or a bounding box)"
    else:
        has = "it has no parameters, so it cannot be given an area"
    return (
        f"Process {process_id!r} cannot be split into tiles: {has}, so every tile would run the same job "
        "over the same area. Choose a process with a spatial parameter (e.g. spatial_extent or geometry), "
        "or run this one as a single batch job."
    )


def may_take_area(parameter: Parameter) -> bool:
    """False when the schema says the parameter takes something else than an area (a string, a
    number, an array...): neither an object nor a geometry or bounding box. No schema, or a
    composite one, may take anything."""
    schema = parameter.schema.schema
    alternatives = schema if isinstance(schema, list) else [schema]
    types: set[str] = set()
    for s in alternatives:
        if not isinstance(s, dict) or not s.get("type") or s.get("anyOf") or s.get("oneOf") or s.get("allOf"):
            return True
        types |= set(s["type"]) if isinstance(s["type"], list) else {s["type"]}
    return bool(geometry_kinds_of(parameter)) or "object" in types


def choose_geometry_parameter(
    parameters: tuple[Parameter, ...] | list[Parameter],
    chosen: Optional[str] = None,
    kind: Optional[str] = None,
) -> tuple[Optional[str], Optional[str]]:
    """The parameter that receives the tile and the form it takes (``geojson``/``bbox``).

    The user's choice wins; else the one parameter whose schema takes a geometry; among
    several, the first of :data:`PREFERRED_GEOMETRY_NAMES`. A process with no parameter
    that can take a geometry gives ``(None, None)`` (every tile would run the same graph:
    :func:`resolve_process` refuses it). A chosen parameter whose schema takes no area (a string,
    a number, ...) raises :class:`NotTileableError`.
    """
    by_name = {p.name: p for p in parameters}
    if chosen:
        if by_name and chosen not in by_name:
            raise JobSpecError(f"The process has no parameter {chosen!r} (it has: {', '.join(by_name)}).")
        if chosen in by_name and not may_take_area(by_name[chosen]):
            raise NotTileableError(
                f"Parameter {chosen!r} cannot take a tile's area: its schema accepts no geometry or bounding box."
            )
        if kind:
            return chosen, kind
        kinds = geometry_kinds_of(by_name[chosen]) if chosen in by_name else []
        return chosen, kinds[0] if kinds else GEOMETRY_GEOJSON
    candidates = [(p.name, geometry_kinds_of(p)) for p in parameters]
    candidates = [(n, k) for n, k in candidates if k]
    if not candidates:
        # No schemas (bare process graph file): fall back on well-known names.
        named = [n for n in PREFERRED_GEOMETRY_NAMES if n in by_name and may_take_area(by_name[n])]
        if named:
            return named[0], kind or GEOMETRY_GEOJSON
        return None, None
    if len(candidates) > 1:
        named = [n for n in PREFERRED_GEOMETRY_NAMES if any(c[0] == n for c in candidates)]
        if not named:
            raise JobSpecError(
                f"Several parameters can take the tile geometry ({', '.join(c[0] for c in candidates)}): choose one."
            )
        candidates = [c for c in candidates if c[0] == named[0]]
    name, kinds = candidates[0]
    if kind and kind not in kinds:
        raise JobSpecError(f"Parameter {name!r} does not accept a {kind}.")
    return name, kind or kinds[0]


# ---------------------------------------------------------------------------------------------
# One job per tile
# ---------------------------------------------------------------------------------------------


def tile_bbox(tile: Mapping[str, Any]) -> dict[str, Any]:
    """The tile as an openEO bounding box: its ``bbox`` if given (e.g. in the tiling CRS), else the
    bounds of its EPSG:4326 geometry."""
    bbox = tile.get("bbox")
    if isinstance(bbox, Mapping):
        return dict(bbox)
    geom = tile.get("geometry")
    if geom is None:
        raise JobSpecError(f"Tile {tile.get('tile_id')!r} has no geometry.")
    import shapely.geometry

    w, s, e, n = shapely.geometry.shape(geom).bounds
    return {"west": w, "south": s, "east": e, "north": n, "crs": 4326}


def _jsonable(value: Any) -> Any:
    """Prepare values for JSON like ProcessBasedJobCreator does (numpy scalars, shapely geometries)."""
    if isinstance(value, numpy.integer):
        return int(value)
    if isinstance(value, numpy.number):
        return float(value)
    if hasattr(value, "__geo_interface__"):
        return dict(value.__geo_interface__)
    return value


def build_arguments(resolved: ResolvedProcess, spec: JobSpec, tile: Mapping[str, Any]) -> dict[str, Any]:
    """Argument values for one tile (``tile``: a row with ``geometry`` as EPSG:4326 GeoJSON).

    Order per parameter, as openeo's ProcessBasedJobCreator: the geometry parameter gets the
    tile; a mapped or same-named tile column; the user's value; the schema default; skipped
    when optional; else :class:`JobSpecError`.
    """
    arguments: dict[str, Any] = {}
    geometry_name = resolved.geometry_parameter
    for parameter in resolved.parameters:
        name = parameter.name
        column = spec.column_map.get(name)
        if column is None and name in tile and name not in ENGINE_COLUMNS:
            column = name  # a tile column named like the parameter (as ProcessBasedJobCreator does)
        if name == geometry_name and column is None:
            if resolved.geometry_kind == GEOMETRY_BBOX:
                value = tile_bbox(tile)
            else:
                value = tile.get("geometry")
                if value is None:
                    raise JobSpecError(f"Tile {tile.get('tile_id')!r} has no geometry.")
        elif column is not None:
            if column not in tile:
                raise JobSpecError(f"Column {column!r} (for parameter {name!r}) is not in the tile table.")
            value = tile[column]
        elif name in spec.parameters:
            value = spec.parameters[name]
        elif parameter.has_default():
            value = parameter.default
        elif parameter.optional:
            continue
        else:
            raise JobSpecError(f"Missing required parameter {name!r} for process {resolved.process_id!r}.")
        arguments[name] = _jsonable(value)
    if not resolved.parameters:
        # No declared parameters: pass what the user gave (a bare process graph file).
        arguments.update({k: _jsonable(v) for k, v in spec.parameters.items()})
    return arguments


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _format(template: str, fields: Mapping[str, Any]) -> str:
    try:
        return string.Formatter().vformat(template, (), _Fields(fields))
    except (ValueError, IndexError, AttributeError):
        return template


def build_job_request(
    resolved: ResolvedProcess, spec: JobSpec, tile: Mapping[str, Any], client_token: Optional[str] = None
) -> JobRequest:
    """The ``POST /jobs`` body for one tile; ``client_token`` is marked in title and description."""
    arguments = build_arguments(resolved, spec, tile)
    if resolved.flat_graph is not None:
        graph = resolved.flat_graph
        params = {}
        if "process_graph" in graph:
            for p in graph.get("parameters") or []:
                if isinstance(p, dict) and "default" in p:
                    params[p["name"]] = p["default"]
            graph = graph["process_graph"]
        params.update(arguments)
        process_graph = PGNode.from_flat_graph(flat_graph=graph, parameters=params).flat_graph()
    else:
        process_graph = PGNode(resolved.process_id, namespace=resolved.namespace, arguments=arguments).flat_graph()
    fields = {k: v for k, v in tile.items() if isinstance(v, (str, int, float)) or v is None}
    fields.update(process_id=resolved.process_id, namespace=resolved.namespace or "")
    title = _format(spec.title_template, fields)
    description = _format(spec.description_template, fields)
    if client_token:
        title, description = mark_with_token(title, description, client_token)
    return JobRequest(process_graph=process_graph, title=title, description=description, job_options=spec.job_options)


# ---------------------------------------------------------------------------------------------
# Client tokens (crash safety: find a job created just before a crash)
# ---------------------------------------------------------------------------------------------


def new_client_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(8)


def mark_with_token(title: str, description: str, token: str) -> tuple[str, str]:
    marker = f"[{token}]"
    return f"{title} {marker}".strip(), f"{description}\n{marker}".strip()


def find_client_token(*texts: Optional[str]) -> Optional[str]:
    """The client token marked in a job's title or description, if any."""
    for text in texts:
        if isinstance(text, str):
            m = _TOKEN_RX.search(text)
            if m:
                return m.group(1)
    return None
