"""Compute one tile's preview on a backend and write its GeoTIFF atomically. Blocking: a worker's job.

``POST /result`` when :func:`core.preview.choose_route` says so; when the backend refuses it for
its size anyway, or for a tile too big or a backend without it, a batch job for that tile alone:
created, started, polled politely (0.5 s, then doubling up to 10 s; Retry-After honoured),
downloaded (verified, :class:`core.downloads.Downloader`) and then **deleted**. The job is not the
run's: it carries no client token, so the run's tracking never adopts it, and nothing of it is
written to the job database. It is deleted because its result is already in the preview file,
and a leftover job would stay in the user's job list on the backend, where every later run's
``GET /jobs`` listing pages through it (and some backends bill the storage of its results).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from . import retry
from .backends import Backend
from .downloads import BackendAccess, Downloader, DownloadTask, is_raster_result
from .jobdb import JobDB
from .jobspec import JobSpec, resolve_process
from .preview import (
    BATCH,
    SYNC,
    PreviewRequest,
    Route,
    SyncLimit,
    choose_route,
    is_size_refusal,
    remove_older_previews,
    tile_request,
)
from .redact import redact
from .round_updates import error_message

#: Seconds ``POST /result`` may take before the preview falls back to a batch job.
SYNC_TIMEOUT_S = 300.0
#: Polling a preview job: first wait, growth factor, longest wait (seconds).
POLL_FIRST_S, POLL_FACTOR, POLL_MAX_S = 0.5, 2.0, 10.0
#: Consecutive failed status requests before the preview gives up.
MAX_POLL_FAILURES = 6
#: Longest a preview job is waited for.
MAX_JOB_WAIT_S = 3600.0
#: First bytes of a (Big)TIFF file.
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class PreviewError(Exception):
    """The preview failed; the message is for the user (with the backend's own words)."""


class PreviewCanceledError(PreviewError):
    """The user canceled the preview."""


@dataclass(frozen=True)
class PreviewResult:
    """A preview written to ``path`` (``mode``: SYNC or BATCH; ``note``: why a batch job)."""

    tile_id: str
    path: str
    mode: str
    seconds: float
    job_id: Optional[str] = None
    note: str = ""
    costs: Optional[float] = None


def preview_tile(
    backend: Backend,
    db_path: str | os.PathLike,
    spec: JobSpec,
    fid: int,
    target: Path,
    limit: SyncLimit = SyncLimit(),
    cancel: Optional[threading.Event] = None,
) -> tuple[PreviewRequest, PreviewResult]:
    """Preview tile ``fid`` of the run ``db_path`` (read only) on ``backend`` into ``target``.

    Raises :class:`PreviewError` (its message for the user) when it cannot."""
    try:
        connection = backend.connect()
        capabilities = connection.capabilities()
    except Exception as exc:
        raise PreviewError(f"Cannot connect to {backend.name}: {redact(error_message(exc))}") from exc
    limit = limit.for_backend(capabilities.capabilities)
    try:
        resolved = resolve_process(
            spec, connection=connection, session=backend.session, timeout=backend.profile.request_timeout
        )
    except Exception as exc:
        raise PreviewError(f"Cannot read the process definition: {redact(error_message(exc))}") from exc
    db = JobDB.open(db_path)
    try:
        request = tile_request(db, spec, resolved, fid, backend.name, limit)
    finally:
        db.close()
    offers_sync = capabilities.supports_endpoint("/result", "POST")
    return request, run_preview(backend, request, target, choose_route(offers_sync, request.volume, limit), cancel)


def run_preview(
    backend: Backend,
    request: PreviewRequest,
    target: Path,
    route: Route,
    cancel: Optional[threading.Event] = None,
    sleep: Optional[Callable[[float], bool]] = None,
) -> PreviewResult:
    """Compute ``request`` on ``backend`` the way ``route`` says into ``target``; a size refusal of
    ``POST /result`` falls back to a batch job. ``sleep(seconds)`` waits and returns True when
    canceled (default: ``cancel.wait``)."""
    cancel = cancel or threading.Event()
    sleep = sleep or cancel.wait
    t0 = time.monotonic()
    connection = backend.connect()
    target.parent.mkdir(parents=True, exist_ok=True)
    note, result = route.reason, None
    if route.mode == SYNC:
        try:
            costs = _download_sync(connection, request, target)
            result = PreviewResult(request.tile_id, str(target), SYNC, time.monotonic() - t0, note=note, costs=costs)
        except Exception as exc:
            if not is_size_refusal(exc):
                raise PreviewError(_failed(request, exc)) from exc
            note = f"the backend refused synchronous processing: {redact(error_message(exc))}"
    if result is None:
        if cancel.is_set():
            raise PreviewCanceledError("The preview was canceled.")
        job_id, costs = _run_batch(backend, connection, request, target, cancel, sleep)
        result = PreviewResult(request.tile_id, str(target), BATCH, time.monotonic() - t0, job_id, note, costs)
    remove_older_previews(target, request.tile_id)
    return result


def _failed(request: PreviewRequest, exc: BaseException) -> str:
    return f"The backend could not preview tile {request.tile_id}: {redact(error_message(exc))}"


def _part_path(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".part", dir=target.parent)
    os.close(fd)
    return Path(name)


def _install(part: Path, target: Path) -> None:
    """Check ``part`` is a GeoTIFF, flush it to disk and rename it to ``target`` (readers never see half)."""
    with open(part, "rb+") as f:
        if f.read(4) not in TIFF_MAGIC:
            raise PreviewError(f"The backend's answer for {target.stem} is not a GeoTIFF.")
        os.fsync(f.fileno())
    os.replace(part, target)


def _download_sync(connection: Any, request: PreviewRequest, target: Path) -> Optional[float]:
    """``POST /result`` into ``target``; returns the ``OpenEO-Costs`` the backend answered, if any."""
    headers: dict[str, str] = {}
    part = _part_path(target)
    try:
        connection.download(
            request.process_graph,
            part,
            timeout=SYNC_TIMEOUT_S,
            validate=False,
            job_options=request.job_options,
            on_response_headers=headers.update,
        )
        _install(part, target)
    finally:
        part.unlink(missing_ok=True)
    return _float(headers.get("OpenEO-Costs"))


def _float(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _run_batch(
    backend: Backend,
    connection: Any,
    request: PreviewRequest,
    target: Path,
    cancel: threading.Event,
    sleep: Callable[[float], bool],
) -> tuple[str, Optional[float]]:
    """A batch job for the tile alone: create, start, wait, download, delete. Returns (job id, costs)."""
    try:
        job = connection.create_job(
            request.process_graph,
            title=f"Preview of tile {request.tile_id}",
            description="openEO Tile Jobs: a one-tile preview, not part of the run; deleted once downloaded.",
            job_options=request.job_options,
            validate=False,
        )
    except Exception as exc:
        raise PreviewError(_failed(request, exc)) from exc
    try:
        try:
            job.start()
        except Exception as exc:
            raise PreviewError(_failed(request, exc)) from exc
        metadata = _wait(job, connection, cancel, sleep)
        if metadata.get("status") != "finished":
            raise PreviewError(
                f"The preview job {job.job_id} of tile {request.tile_id} ended {metadata.get('status')}: "
                f"{_job_error(job)}"
            )
        _download_batch(backend, connection, request, job.job_id, target, cancel)
        return job.job_id, _float(metadata.get("costs"))
    finally:
        _delete(job)


def _wait(job: Any, connection: Any, cancel: threading.Event, sleep: Callable[[float], bool]) -> dict:
    """Poll ``GET /jobs/{id}`` until the job ends (see the module docstring for the pace)."""
    retry_after: list[Optional[float]] = [None]

    def remember(response: Any, *_args: Any, **_kwargs: Any) -> None:
        if response.status_code in (429, 503):
            retry_after[0] = retry.parse_retry_after(response.headers.get("Retry-After"))

    hooks = connection.session.hooks["response"]
    hooks.append(remember)
    try:
        delay, failures, deadline = POLL_FIRST_S, 0, time.monotonic() + MAX_JOB_WAIT_S
        backoff = retry.Backoff(base=POLL_FIRST_S, cap=POLL_MAX_S * 6)
        while True:
            if sleep(delay):
                raise PreviewCanceledError("The preview was canceled.")
            try:
                metadata = job.describe()
            except Exception as exc:
                kind = retry.classify(exc)
                failures += 1
                if kind not in (retry.TRANSIENT, retry.RATE_LIMITED, retry.OTHER) or failures >= MAX_POLL_FAILURES:
                    raise PreviewError(
                        f"Cannot follow the preview job {job.job_id}: {redact(error_message(exc))}"
                    ) from exc
                delay = backoff.fail(time.monotonic(), retry_after[0])
                retry_after[0] = None
                continue
            failures = 0
            backoff.succeed()
            if metadata.get("status") in ("finished", "error", "canceled"):
                return metadata
            if time.monotonic() > deadline:
                raise PreviewError(f"The preview job {job.job_id} did not finish within {MAX_JOB_WAIT_S:.0f} s.")
            delay = min(POLL_MAX_S, delay * POLL_FACTOR)
    finally:
        hooks.remove(remember)


def _job_error(job: Any) -> str:
    """The job's error log entries (the backend's words), else a plain note."""
    try:
        entries = [e for e in job.logs(level="error") if isinstance(e, dict)]
    except Exception:  # noqa: BLE001
        entries = []
    text = "; ".join(f"{e.get('code') + ': ' if e.get('code') else ''}{e.get('message', '')}" for e in entries)
    return redact(text) or "the backend gave no error message"


def _download_batch(
    backend: Backend, connection: Any, request: PreviewRequest, job_id: str, target: Path, cancel: threading.Event
) -> None:
    """The job's results through the run's verified downloader, its GeoTIFF moved to ``target``."""
    access = BackendAccess(connection.root_url, connection.auth, backend.new_session, backend.profile.request_timeout)
    work = Path(tempfile.mkdtemp(prefix=f".{target.stem}-", dir=target.parent))
    downloader = Downloader(work, lambda _name: access, workers=1)
    try:
        result = downloader.download(DownloadTask(request.fid, request.tile_id, job_id, backend.name))
        if cancel.is_set():
            raise PreviewCanceledError("The preview was canceled.")
        if not result.ok:
            raise PreviewError(f"Cannot download the preview of tile {request.tile_id}: {result.error}")
        rasters = [Path(result.result_dir) / name for name in result.files if is_raster_result(name)]
        if not rasters:
            raise PreviewError(f"The preview job of tile {request.tile_id} made no GeoTIFF.")
        _install(rasters[0], target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _delete(job: Any) -> None:
    """Delete the preview job (best effort: a job left behind is only clutter)."""
    try:
        job.delete()
    except Exception:  # noqa: BLE001
        pass
