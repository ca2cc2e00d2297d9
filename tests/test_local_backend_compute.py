"""Local demo backend: jobs compute in worker processes with the same pixels as in threads, the
workers end with the backend, a Python interpreter is found beside a QGIS executable (threads
when none is), and the process descriptions are the official openeo-processes ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import openeo
import pytest

from openeo_tile_jobs.local_backend import pool, worker_init

TILE = {
    "type": "Polygon",
    "coordinates": [
        [[4.35633, 51.08363], [4.42769, 51.08278], [4.42908, 51.12773], [4.35765, 51.12858], [4.35633, 51.08363]]
    ],
}
SUMMER = ["2024-06-01", "2024-09-01"]
OFFICIAL = Path(pool.__file__).parent / "specs" / "openeo-processes-2.x.json"


def composite_job(backend):
    """A created (not started) cloud-free composite job of TILE."""
    con = openeo.connect(backend.url)
    cube = con.datacube_from_process(
        "cloud_free_composite", namespace=backend.demo_process_url, spatial_extent=TILE, temporal_extent=SUMMER
    )
    return con.create_job(cube)


def run_composite(backend) -> dict:
    job = composite_job(backend)
    job.start()
    deadline = time.monotonic() + 90
    while job.status() not in ("finished", "error") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.status() == "finished"
    return job.get_results().get_assets()[0].metadata


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_processes_and_threads_compute_identical_files(local_backend_factory):
    in_processes = local_backend_factory(compute="processes", pixel_size=100.0)
    in_threads = local_backend_factory(compute="threads", pixel_size=100.0)
    a, b = run_composite(in_processes), run_composite(in_threads)
    assert (in_processes.compute_mode, in_threads.compute_mode) == ("processes", "threads")
    assert in_processes.worker_pids() and not in_threads.worker_pids()
    assert a["proj:shape"] == b["proj:shape"] == [50, 50]
    assert a["file:checksum"] == b["file:checksum"]


def test_worker_processes_end_with_the_backend_even_while_computing(local_backend_factory):
    backend = local_backend_factory(pixel_size=10.0, workers=2)
    run_composite(local_backend_factory(pixel_size=200.0))  # warm the fork server: the next start is quick
    job = composite_job(backend)  # 500 x 500 pixels: computes for a second or more
    job.start()
    deadline = time.monotonic() + 30
    while not backend.worker_pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = backend.worker_pids()
    assert pids and all(alive(p) for p in pids) and job.status() == "running"
    backend.stop(timeout=0.5)
    assert not any(alive(p) for p in pids)


@pytest.mark.parametrize("executable", ["qgis", "other-python/bin/python3"])
def test_the_python_of_this_installation_is_used(monkeypatch, tmp_path, executable):
    # Embedded in QGIS, sys.executable is the QGIS program or the first python3 on PATH (e.g. pyenv's).
    fake = tmp_path / executable
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("#!/bin/sh\nexit 1\n")
    monkeypatch.setattr(sys, "executable", str(fake))
    python = pool.python_executable()
    assert python is not None and Path(python) != fake
    probe = "import sys; print(sys.version_info[:2], sys.base_exec_prefix)"
    answer = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert answer == f"{sys.version_info[:2]} {sys.base_exec_prefix}"


def test_without_a_python_the_backend_computes_in_threads(local_backend_factory, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis"))
    monkeypatch.setattr(sys, "exec_prefix", str(tmp_path))
    monkeypatch.setattr(sys, "base_exec_prefix", str(tmp_path))
    backend = local_backend_factory()
    assert backend.compute_mode == "threads"
    assert "computes in threads" in caplog.text
    assert run_composite(backend)["proj:shape"] == [25, 25]


def test_process_descriptions_are_the_official_ones(local_backend):
    official = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    served = {p["id"]: p for p in openeo.connect(local_backend.url).list_processes()}
    compared = [pid for pid in served if pid in official]
    assert len(compared) >= 100 and {"load_collection", "save_result", "filter_bbox", "array_append"} <= set(compared)
    assert [pid for pid in compared if served[pid] != official[pid]] == []
    # openeo-processes-dask's bundled copies differ here (a fork): the official save_result returns true.
    assert served["save_result"]["returns"]["schema"] == {"type": "boolean", "const": True}
    assert set(served) - set(official) <= {"ddmc"}  # only backend-specific processes lack an official definition


def test_a_taken_port_is_an_oserror_so_callers_can_pick_another(local_backend_factory, tmp_path):
    from openeo_tile_jobs.local_backend import LocalBackend

    first = local_backend_factory()
    with pytest.raises(OSError):
        LocalBackend(tmp_path / "second", port=first.port).start()
    assert local_backend_factory(data_dir=tmp_path / "second").running  # the same folder, another port


def test_a_worker_killed_mid_job_fails_only_that_job(local_backend_factory):
    import signal

    backend = local_backend_factory(pixel_size=10.0, workers=1)
    victim = composite_job(backend)
    victim.start()
    deadline = time.monotonic() + 60
    while not (backend.worker_pids() and victim.status() == "running") and time.monotonic() < deadline:
        time.sleep(0.01)
    (pid,) = backend.worker_pids()
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer does
    while victim.status() == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    (error,) = victim.logs(level="error")
    assert victim.status() == "error" and "stopped unexpectedly" in error.message
    assert run_composite(backend)["proj:shape"] == [500, 500]  # new workers take the next job
    assert pid not in backend.worker_pids()


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no CPU priorities here")
def test_workers_compute_at_a_lower_cpu_priority_than_the_server(local_backend):
    run_composite(local_backend)
    (pid, *_) = local_backend.worker_pids()
    assert os.getpriority(os.PRIO_PROCESS, pid) >= os.getpriority(os.PRIO_PROCESS, 0) + worker_init.NICENESS > 0
