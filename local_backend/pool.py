"""Where computations run: a pool of worker PROCESSES (so two jobs use two cores; numpy and the
openEO processes hold Python's GIL often enough to keep threads at 1.3-1.6x on two cores), or,
when no Python interpreter can be found to start them, threads.

Worker processes are started with ``spawn`` (the same on Linux, macOS and Windows; ``fork`` is
unsafe in a multi-threaded program such as QGIS) from a real Python interpreter: inside QGIS
``sys.executable`` is the QGIS program, so the interpreter beside it, of the same version, is
used. They start with the first computation and are terminated when the backend stops
(:meth:`ComputePool.stop`), so none outlives it. On Linux they are forked from
multiprocessing's fork server, which has the engine's libraries loaded; that one helper
process is shared by every backend of this Python process and ends with it.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from .errors import JobError

log = logging.getLogger(__name__)
MODES = ("processes", "threads")
_FORK_SERVER_LOCK = threading.Lock()


def python_executable() -> str | None:
    """The Python interpreter of this installation to start workers with, or None.

    ``sys.executable`` only when it lies in this installation (or its venv): embedded in QGIS it
    is the QGIS program, or whatever ``python3`` is first on PATH, which may be another Python
    whose standard library does not match the one this process runs on."""
    exe = Path(os.path.abspath(sys.executable or "nothing"))
    homes = [Path(os.path.abspath(p)) for p in (sys.prefix, sys.exec_prefix, sys.base_exec_prefix)]
    if exe.name.lower().startswith("python") and exe.is_file() and any(home in exe.parents for home in homes):
        return str(exe)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for home in homes[1:]:  # the interpreter beside the libraries this process runs on
        for sub in ("bin", ""):
            for name in (f"python{version}", "python3", "python"):
                for suffix in ("", ".exe"):
                    candidate = home / sub / (name + suffix)
                    if candidate.is_file():
                        return str(candidate)
    return None


#: Imported once by the fork server, so that each worker forked from it starts with the engine's
#: libraries loaded (a worker then starts in milliseconds instead of seconds).
PRELOAD = (
    f"{__package__}.worker_init",  # first: the fork server and its forks run at a lower CPU priority
    f"{__package__}.compute",
    "openeo_processes_dask.process_implementations.core",
    "openeo_pg_parser_networkx",
)


class ComputePool:
    def __init__(self, workers: int, mode: str = "processes"):
        if mode not in MODES:
            raise ValueError(f"compute must be one of {MODES}, got {mode!r}")
        self.workers = workers
        self.mode = mode
        self._python: str | None = None
        self._lock = threading.Lock()
        self._executor: cf.Executor | None = None
        self._stopped = False

    def start(self) -> ComputePool:
        """Choose processes or threads; the workers themselves start with the first computation."""
        if self.mode == "processes":
            self._python = python_executable()
            if self._python is None:
                log.warning("No Python found beside %s: the Local demo backend computes in threads", sys.executable)
                self.mode = "threads"
        return self

    def _get_executor(self) -> cf.Executor:
        with self._lock:
            if self._stopped:
                raise RuntimeError("compute pool stopped")
            if self._executor is None:
                self._executor = self._new_executor()
            return self._executor

    def _new_executor(self) -> cf.Executor:
        if self.mode == "processes" and self._python is not None:
            try:
                return _process_pool(self.workers, self._python)
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("Worker processes cannot start (%s): the Local demo backend computes in threads", exc)
                self.mode = "threads"
        return cf.ThreadPoolExecutor(self.workers, thread_name_prefix="local-backend-compute")

    def run(self, func: Callable[[Any], Any], arg: Any) -> Any:
        """``func(arg)`` in a worker; waits for the answer. A worker that died fails only its own
        computation (JobError); the next computation starts new workers."""
        executor = self._get_executor()
        try:
            return executor.submit(func, arg).result()
        except BrokenProcessPool:
            with self._lock:
                if self._executor is executor:
                    log.warning("A Local demo backend worker process died; new ones start with the next job")
                    self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            if self._stopped:
                raise
            raise JobError("The worker computing this job stopped unexpectedly (out of memory?).", "Internal") from None

    def worker_pids(self) -> list[int]:
        """Process ids of the running worker processes (none for threads)."""
        return sorted(getattr(self._executor, "_processes", None) or {})

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the workers: computations in progress are abandoned, no worker process is left."""
        with self._lock:
            executor, self._executor, self._stopped = self._executor, None, True
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())  # to terminate stragglers
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        for proc in processes:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)


def _process_pool(workers: int, python: str) -> cf.ProcessPoolExecutor:
    """Worker processes forked from a fork server on Linux (cheap, and safe in a threaded program
    such as QGIS: the server itself has no threads), spawned elsewhere."""
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    if python != sys.executable:
        context.set_executable(python)
    if method == "forkserver":
        context.set_forkserver_preload(list(PRELOAD))
        _start_fork_server()
    return cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)


def _start_fork_server() -> None:
    """Start the fork server with this process's import path: Python 3.11 ignores the sys.path it is
    handed, so modules found through paths added at run time (QGIS's plugin folder) would not preload."""
    from multiprocessing import forkserver

    with _FORK_SERVER_LOCK:
        before = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            forkserver.ensure_running()
        finally:
            if before is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = before


def _init_worker() -> None:
    """In each worker: lower its CPU priority (once per process; forks of the fork server already are)."""
    importlib.import_module(f"{__package__}.worker_init")
