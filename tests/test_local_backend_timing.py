"""Local demo backend: queue and run times drawn from distributions (reproducibly), job metadata
without ``progress``, and response bytes per endpoint, over real HTTP with the openeo client."""

from __future__ import annotations

import calendar
import statistics
import time

import openeo
import pytest
import requests

from openeo_tile_jobs.local_backend.__main__ import parse_args
from openeo_tile_jobs.local_backend.durations import Duration

UTM_BOX = {"west": 590000, "south": 5660000, "east": 591000, "north": 5661000, "crs": "EPSG:32631"}


def small_job(con):
    cube = con.load_collection("SENTINEL2_L2A", spatial_extent=UTM_BOX, temporal_extent=["2024-06-01", "2024-06-06"])
    return con.create_job(cube.save_result("GTiff"))


def wait_all(con, job_ids, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {j["id"]: j["status"] for j in con.list_jobs()}
        if all(statuses[i] in ("finished", "error") for i in job_ids):
            assert all(statuses[i] == "finished" for i in job_ids)
            return
        time.sleep(0.05)
    raise AssertionError("jobs did not finish")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60", Duration("fixed", 60, 0)),
        (2.5, Duration("fixed", 2.5, 0)),
        ("uniform:40,80", Duration("uniform", 40, 80)),
        ("lognormal:60,0.3", Duration("lognormal", 60, 0.3)),
    ],
)
def test_duration_forms(text, expected):
    assert Duration.parse(text) == expected


@pytest.mark.parametrize("bad", ["soon", "uniform:80,40", "uniform:1", "gamma:1,2", "-3", "lognormal:60,x"])
def test_bad_durations_are_refused_with_the_accepted_forms(bad):
    with pytest.raises(ValueError):
        Duration.parse(bad)
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", "x", "--run-time", bad])


def test_draws_are_reproducible_and_have_the_asked_spread():
    uniform, lognormal = Duration.parse("uniform:40,80"), Duration.parse("lognormal:60,0.3")
    draws = [uniform.sample(7, n, "run") for n in range(1, 2001)]
    assert draws == [uniform.sample(7, n, "run") for n in range(1, 2001)]
    assert draws != [uniform.sample(8, n, "run") for n in range(1, 2001)]
    assert 40 <= min(draws) < 41 and 79 < max(draws) <= 80
    logs = [lognormal.sample(7, n, "run") for n in range(1, 4001)]
    assert statistics.fmean(logs) == pytest.approx(60, rel=0.03)  # the mean is the first number
    assert statistics.median(logs) < 60 < max(logs)  # skewed to the right, as job durations are
    assert uniform.sample(7, 1, "queue") != uniform.sample(7, 1, "run")


def test_command_line_names_old_and_new():
    args = parse_args(["--data-dir", "x", "--queue-time", "uniform:1,2", "--min-run-time", "3", "--no-progress"])
    assert (args.queue_time, args.run_time, args.no_progress) == (Duration("uniform", 1, 2), Duration("fixed", 3), True)
    assert parse_args(["--data-dir", "x"]).duration_seed == 0


def test_each_job_runs_its_drawn_time(local_backend_factory):
    run_time = "uniform:1,3"
    backend = local_backend_factory(run_time=run_time, duration_seed=0, workers=3)
    con = openeo.connect(backend.url)
    warm = small_job(con)  # creation number 1: starts the worker processes
    warm.start()
    wait_all(con, [warm.job_id], timeout=60)
    jobs = [small_job(con) for _ in range(3)]
    for job in jobs:
        job.start()
    wait_all(con, [j.job_id for j in jobs])
    drawn = [Duration.parse(run_time).sample(0, n, "run") for n in (2, 3, 4)]  # creation numbers
    measured = [con.job(j.job_id).describe()["usage"]["duration"]["value"] for j in jobs]
    assert max(drawn) - min(drawn) > 0.5  # distinct draws, so the check below tells them apart
    for want, got in zip(drawn, measured):
        assert want <= got < want + 0.4  # the job computes within its run time (workers already warm)


def test_queue_time_distribution_holds_jobs_queued(local_backend_factory):
    backend = local_backend_factory(queue_time="uniform:0.5,0.6", min_run_time=0)
    con = openeo.connect(backend.url)
    job = small_job(con)
    job.start()
    time.sleep(0.3)
    assert job.status() == "queued"
    wait_all(con, [job.job_id])


def test_progress_can_be_switched_off(local_backend_factory):
    with_progress = local_backend_factory(run_time=3)
    without = local_backend_factory(run_time=3, report_progress=False)
    seen = {}
    for backend in (with_progress, without):
        con = openeo.connect(backend.url)
        job = small_job(con)
        job.start()
        deadline = time.monotonic() + 10
        while job.status() != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        listed = con.list_jobs()[0]
        described = job.describe()
        seen[backend.config.report_progress] = (
            "progress" in listed,
            "progress" in described,
            described["status"],
        )
        job.stop()
    assert seen[True] == (True, True, "running")
    assert seen[False] == (False, False, "running")


def test_updated_is_when_the_status_last_changed_not_each_progress(local_backend_factory):
    backend = local_backend_factory(run_time=8)
    con = openeo.connect(backend.url)
    job = small_job(con)
    job.start()
    readings = []
    deadline = time.monotonic() + 20
    while len(readings) < 2 and time.monotonic() < deadline:
        meta = job.describe()
        if meta["status"] == "running" and meta.get("progress", 0) > 0:
            if not readings or meta["progress"] > readings[-1]["progress"]:
                readings.append(meta)
        time.sleep(0.2)
    assert len(readings) == 2, "the job did not report a growing progress"
    # the progress moved, 'updated' did not: it is when the job began running (as the openEO API says)
    assert readings[0]["updated"] == readings[1]["updated"]
    began = calendar.timegm(time.strptime(readings[0]["updated"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert time.time() - 20 < began <= time.time()
    wait_all(con, [job.job_id])
    assert job.describe()["updated"] > readings[1]["updated"]  # finishing is a status change


def test_counts_give_response_bytes_per_endpoint(local_backend):
    con = openeo.connect(local_backend.url)
    small_job(con)
    local_backend.reset_counts()
    session = requests.Session()
    sizes = [len(session.get(f"{local_backend.url}/jobs", timeout=5).content) for _ in range(3)]
    missing = session.get(f"{local_backend.url}/jobs/nope", timeout=5)
    both = requests.get(f"{local_backend.url}/_admin/counts", params={"bytes": "true"}, timeout=5).json()
    assert both["requests"] == {"GET /jobs": 3, "GET /jobs/{job_id}": 1}
    assert both["bytes"] == {"GET /jobs": sum(sizes), "GET /jobs/{job_id}": len(missing.content)}
    assert local_backend.response_bytes() == both["bytes"]
    assert requests.get(f"{local_backend.url}/_admin/counts", timeout=5).json() == both["requests"]  # as before
    local_backend.reset_counts()
    assert local_backend.response_bytes() == {}
