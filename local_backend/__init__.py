"""Local demo backend: a real openEO API 1.2 server that runs batch jobs on synthetic data.

Start it in-process (tests, benchmarks, the plugin's "Local demo backend" entry)::

    from openeo_tile_jobs.local_backend import LocalBackend   # or: from local_backend import ...
    backend = LocalBackend(data_dir=path, port=0, workers=2).start()
    connection = openeo.connect(backend.url)
    cube = connection.datacube_from_process(
        "cloud_free_composite", namespace=backend.demo_process_url,
        spatial_extent=geojson_polygon, temporal_extent=["2024-06-01", "2024-09-01"])
    ...
    backend.stop()

or from the repository root: ``python -m local_backend --port 8089 --data-dir DIR [options]``
(``--help`` lists the options; they map one to one on the settings below).

Settings (keyword arguments of ``LocalBackend``; ``BackendConfig`` holds them):

- ``workers`` (2): how many jobs compute at once.
- ``compute`` ("processes"): jobs compute in worker processes (:mod:`.pool`: forked from a fork
  server on Linux, spawned elsewhere, from a Python found beside QGIS's executable), started with
  the first computation and terminated on :meth:`LocalBackend.stop`; "threads" computes in this
  process (also the fallback, logged, when no Python interpreter is found).
- ``pixel_size`` (10.0): metres per pixel of SENTINEL2_L2A; 100-200 m makes a 5 km x 3 months
  tile compute in a few tens of milliseconds. Computation is never skipped.
- ``max_pixels_per_job`` (0 = unlimited): a job whose ``load_collection`` calls load more pixels
  (x * y) ends in ``error`` as on a real backend whose executors run out of memory (warnings
  "Lost executor ... exceeding memory limits", error code ``OutOfMemory`` naming the memory limit).
- ``sync_max_pixel_dates`` (2,000,000): ``POST /result`` computes requests of up to that many
  pixels x dates (a 3.2 km square over a summer at 10 m, a second or two) and answers 400
  ``ProcessGraphComplexity`` beyond: larger ones are batch jobs.
- ``max_concurrent_jobs_per_user`` (0 = unlimited) with ``over_limit``: ``"queue"`` (a started job
  waits in ``queued`` until one of the user's running jobs ends) or ``"refuse"`` (starting when the
  user already has that many jobs queued or running answers 400 ``ConcurrentJobLimit``).
- ``queue_time`` / ``run_time`` (0 s; the old names ``min_queue_time`` / ``min_run_time`` still work):
  a started job stays ``queued`` / ``running`` at least that long, so status transitions can be
  watched (the job still computes for real). A number of seconds or a distribution,
  ``"uniform:40,80"`` or ``"lognormal:60,0.3"`` (mean seconds, sigma), drawn per job from
  ``duration_seed`` (0) and the job's creation number: reproducible whatever the workers' timing.
- ``report_progress`` (True): False leaves ``progress`` out of job metadata, as many real backends do.
- ``offer_estimate`` (True): False drops ``GET /jobs/{id}/estimate`` from ``GET /`` and answers it
  501 ``FeatureUnsupported``, as backends without estimates do.
- ``auth``: ``"none"`` (default: no sign-in needed; anonymous requests are user ``"demo"``, and
  ``/credentials/basic`` accepts any name, which becomes the user id), ``"basic"``, ``"oidc"`` or
  ``"basic+oidc"``; ``users`` ({"demo": "demo"}): user -> password for basic, and the names a
  device sign-in may be approved for.
- ``token_lifetime`` (3600 s): access-token lifetime (basic and OIDC); ``refresh_token_lifetime``.
- ``oidc_auto_approve_after`` (None): approve every device sign-in after so many seconds as
  ``oidc_auto_approve_user`` ("demo"); otherwise approve with ``backend.approve_device(user_code)``
  or ``POST <root>/oidc/device/approve`` ``{"user_code": ..., "user": ...}``.
  ``oidc_poll_interval`` (1 s) is the interval told to device-flow clients.
- ``namespace_timeout`` (5 s): fetching a remote process definition (``namespace`` URL).
- ``cost_per_million_values`` (0.05 credits): costs = loaded pixels x dates x bands / 1e6 x this
  (:mod:`.costs`), the same for billing a finished job and for ``GET /jobs/{id}/estimate``.
- ``faults``: dict of :class:`FaultConfig` fields: ``error_500``, ``error_502``, ``error_503``,
  ``rate_limit`` (429 with ``Retry-After: retry_after``), ``drop_connection`` (probabilities per
  request), ``latency`` (seconds added), ``job_error`` (probability that a started job ends in
  error), ``endpoints`` (fnmatch patterns on endpoint keys such as ``"GET /jobs/{job_id}"``;
  empty = all), ``seed``. Change at run time with ``backend.set_faults(...)`` or
  ``PUT <root>/_admin/faults`` (JSON of the same fields; ``DELETE`` clears).
- ``host`` ("127.0.0.1").

Request counts per endpoint: ``backend.request_counts()`` / ``GET <root>/_admin/counts``; bytes of
the response bodies per endpoint: ``backend.response_bytes()``; both at once:
``GET <root>/_admin/counts?bytes=true`` -> ``{"requests": {...}, "bytes": {...}}``
(``backend.reset_counts()`` / ``DELETE`` clears both). Admin routes are neither counted nor faulted.

Endpoints beyond batch jobs: ``POST /result`` (synchronous, a GeoTIFF), ``POST /validation`` (the
checks job creation makes), ``GET /jobs/{id}/estimate``; ``OpenEO-Costs`` on results; the version
URL in ``/.well-known/openeo`` ends with ``/`` and doubled slashes in paths are accepted.
``GET /processes`` serves the official openeo-processes 2.x definitions (``specs/``).

The demo process "cloud-free composite" is served at the stable URL
``<root>/udp/cloud_free_composite.json`` (``backend.demo_process_url``), usable as ``namespace``
exactly like an APEx catalogue URL. The server resolves its own URL without network; other URLs
are fetched with ``namespace_timeout`` and a failure ends the job in error with a log line.

Data: ``<data_dir>/jobs.sqlite`` (jobs, logs, user-defined processes, token hashes) and
``<data_dir>/results/<job_id>/`` (GeoTIFFs); jobs survive a restart, jobs that were running are
queued again with a log entry. Asset hrefs are signed download URLs (no auth needed, HTTP Range
supported) that stay valid across restarts.

Needs what ``requirements-local-backend.txt`` lists (flask, openeo-pg-parser-networkx,
openeo-processes-dask and their extras); :func:`missing_requirements` tells the plugin which are
missing without importing them.
"""

from __future__ import annotations

import importlib.util

from .config import BackendConfig, FaultConfig
from .server import LocalBackend

__version__ = "0.1.0"

REQUIRED_MODULES = {
    "flask": "flask",
    "werkzeug": "werkzeug",
    "numpy": "numpy",
    "rasterio": "rasterio",
    "pyproj": "pyproj",
    "shapely": "shapely",
    "xarray": "xarray",
    "openeo_pg_parser_networkx": "openeo-pg-parser-networkx",
    "openeo_processes_dask": "openeo-processes-dask",
}
INSTALL_HINT = "pip install -r requirements-local-backend.txt"


def missing_requirements() -> list[str]:
    """Distribution names of the packages the Local demo backend needs but cannot find."""
    return [dist for module, dist in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]


__all__ = ["INSTALL_HINT", "BackendConfig", "FaultConfig", "LocalBackend", "missing_requirements"]
