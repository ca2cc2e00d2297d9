"""A scheduler for a run file: what is not given comes from its run record, what is given is recorded.

A run resumes from its GeoPackage alone. The run record keeps the job specification
(``job_spec``), the backend profiles (``backends``, never credentials) and the engine settings
(``engine``, including the output folder). The panel, the Processing algorithms, the demo
and scripts all build their scheduler here, so there is one way a run is set up and resumed::

    scheduler = make_scheduler(path, spec=spec, profiles=[profile], output_dir=out)  # first start
    scheduler = make_scheduler(path, credentials=provider)                            # resume
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from .backends import Backend, BackendPool, BackendProfile, CredentialsProvider, RefreshTokenSink, make_session
from .events import EngineListener
from .jobdb import JobDB
from .jobspec import JobSpec, NotTileableError, ResolvedProcess, resolve_process
from .scheduler import EngineConfig, Scheduler

_log = logging.getLogger(__name__)

JOB_SPEC_KEY = "job_spec"
BACKENDS_KEY = "backends"
ENGINE_KEY = "engine"


def default_output_dir(path: str | os.PathLike) -> Path:
    """``<run>_results`` beside the run file."""
    path = Path(path)
    return path.with_name(f"{path.stem}_results")


def recorded_output_dir(record: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """The output folder a run record names, else the default one beside the run file."""
    recorded = (record.get(ENGINE_KEY) or {}).get("output_dir")
    return Path(recorded) if recorded else default_output_dir(path)


def refuse_untileable(
    spec: JobSpec,
    profiles: Sequence[BackendProfile] = (),
    credentials: Optional[CredentialsProvider] = None,
    proxies: Optional[dict[str, str]] = None,
) -> Optional[ResolvedProcess]:
    """Read the process definition before any job is made and raise :class:`NotTileableError` (its
    message says why) when no parameter can take a tile; else return it (None when it could not be
    read). Anything but the refusal (the network, a definition the engine reports itself) is left to
    the engine, which retries and says so. Blocking: not on the GUI thread."""
    on_backend = bool(spec.process_id and not (spec.namespace or spec.process_graph_file))
    if on_backend and not profiles:
        return None
    try:
        connection = Backend(profiles[0], credentials, proxies).connect() if on_backend else None
        return resolve_process(spec, connection=connection, session=make_session(proxies))
    except NotTileableError:
        raise
    except Exception as exc:  # noqa: BLE001 (the engine reads the definition again and reports it)
        _log.info("Cannot read the process definition before the run: %s", exc)
        return None


def recorded_spec(record: Mapping[str, Any]) -> Optional[JobSpec]:
    """The job specification a run was started with (None before its first start)."""
    data = record.get(JOB_SPEC_KEY)
    return JobSpec.from_dict(data) if data else None


def recorded_profiles(record: Mapping[str, Any]) -> list[BackendProfile]:
    """The backend profiles a run was started with (never credentials)."""
    return [BackendProfile.from_dict(b) for b in record.get(BACKENDS_KEY) or []]


def move_backend(spec: JobSpec, old_url: str, new_url: str) -> JobSpec:
    """``spec`` with a process URL served by a backend that moved from ``old_url`` to ``new_url``.

    The Local demo backend serves its demo process itself (``<root>/udp/...``) and may come back
    on another port after a restart; a job naming the old URL would fail there.
    """
    old_root, new_root = old_url.rstrip("/"), new_url.rstrip("/")
    if not spec.namespace or not spec.namespace.startswith(old_root + "/"):
        return spec
    return JobSpec.from_dict({**spec.to_dict(), "namespace": new_root + spec.namespace[len(old_root) :]})


def record_run_setup(db: JobDB, spec: JobSpec, profiles: Sequence[BackendProfile], config: EngineConfig) -> None:
    """Store what the run does in its run record (no secret is part of any of these)."""
    db.update_run_record(
        {
            JOB_SPEC_KEY: spec.to_dict(),
            BACKENDS_KEY: [p.to_dict() for p in profiles],
            ENGINE_KEY: config.to_dict(),
        }
    )


def make_scheduler(
    db: JobDB | str | os.PathLike,
    *,
    spec: Optional[JobSpec] = None,
    profiles: Optional[Sequence[BackendProfile]] = None,
    output_dir: Optional[str | os.PathLike] = None,
    credentials: Optional[CredentialsProvider] = None,
    proxies: Optional[dict[str, str]] = None,
    refresh_token_sink: Optional[RefreshTokenSink] = None,
    config: Optional[Mapping[str, Any]] = None,
    listeners: Iterable[EngineListener] = (),
) -> Scheduler:
    """A :class:`Scheduler` for a run file.

    ``spec``, ``profiles``, ``output_dir`` and ``config`` (extra :class:`EngineConfig` fields,
    e.g. ``max_attempts``) override the run record and are recorded; what is not given is read
    from it. Downloads that failed in an earlier session are tried again (resuming includes
    them). Raises ``ValueError`` when the record lacks a job specification or backends.
    """
    if not isinstance(db, JobDB):
        db = JobDB.open(db)
    record = db.run_record()
    if spec is None:
        if not record.get(JOB_SPEC_KEY):
            raise ValueError(f"{db.path.name} has no job specification yet: choose a process first.")
        spec = JobSpec.from_dict(record[JOB_SPEC_KEY])
    if profiles is None:
        if not record.get(BACKENDS_KEY):
            raise ValueError(f"{db.path.name} has no backend yet: choose a backend first.")
        profiles = [BackendProfile.from_dict(b) for b in record[BACKENDS_KEY]]
    out = Path(os.path.abspath(os.fspath(output_dir or recorded_output_dir(record, db.path))))
    engine = EngineConfig.from_dict(record.get(ENGINE_KEY) or {}, **{**(config or {}), "output_dir": out})
    record_run_setup(db, spec, profiles, engine)
    out.mkdir(parents=True, exist_ok=True)
    pool = BackendPool.from_profiles(list(profiles), credentials, proxies, refresh_token_sink=refresh_token_sink)
    scheduler = Scheduler(db, spec, pool, engine, list(listeners))
    scheduler.retry_failed_downloads()
    return scheduler
