"""The polling policy: when a backend is asked about its jobs (pure, on a fake clock), and the engine using it
against the Local demo backend (counted by the backend itself)."""

from __future__ import annotations

import pytest
from engine_crash_worker import make_db, make_scheduler, run_engine

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.backends import Backend, BackendProfile
from openeo_tile_jobs.core.duration_model import DurationModel, quantile
from openeo_tile_jobs.core.events import RecordingListener
from openeo_tile_jobs.core.polling import JobView, PollingPolicy

T0 = 1_800_000_000.0


def test_quantile_interpolates_between_samples():
    values = [10.0, 20.0, 40.0]
    assert quantile(values, 0.0) == 10.0 and quantile(values, 1.0) == 40.0 and quantile(values, 0.75) == 30.0
    assert quantile([], 0.5) is None


def test_the_duration_model_expects_ends_near_the_typical_time_and_spreads_with_few_samples():
    model = DurationModel.fit([50.0, 60.0, 72.0])
    assert model.typical() == pytest.approx(60.0, rel=0.01)
    # a job of 55 s is more likely to end in the next 10 s than one of 10 s (before any ended)
    assert model.end_chance(55.0, 10.0) > 5 * model.end_chance(10.0, 10.0)
    # three close samples do not make the spread as narrow as they are: the prior still counts
    assert model.log_spread > 0.3
    many = DurationModel.fit([50.0, 60.0, 72.0] * 20)
    assert many.log_spread < 0.25 and many.end_chance(55.0, 10.0) > model.end_chance(55.0, 10.0)
    # a job ten times older than usual is not about to end either: checks on it grow sparse
    assert model.end_chance(600.0, 10.0) < model.end_chance(70.0, 10.0)
    assert DurationModel.fit([]) is None


def test_a_backend_without_jobs_is_not_asked_and_checks_stay_within_bounds():
    policy = PollingPolicy(min_interval=5.0, max_interval=120.0)
    policy.plan(T0, [])
    assert policy.next_at is None and not policy.due(T0 + 1e6)
    job = JobView("j1", started_at=T0, running=False)
    policy.plan(T0 + 0.1, [job])  # a job just started, nothing learned: two minimum intervals, not sooner
    assert policy.next_at == pytest.approx(T0 + 0.1 + 2 * 5.0, abs=1e-3)
    policy.plan(T0 + 10_000, [job])  # a very old job: not after the maximum
    assert policy.next_at == pytest.approx(T0 + 10_000 + 120.0, abs=1e-3)


def test_without_anything_learned_intervals_grow_with_the_jobs_age():
    policy = PollingPolicy(min_interval=1.0)
    job = JobView("j1", started_at=T0, running=False)
    waits = []
    now = T0 + 1
    for _ in range(30):
        policy.plan(now, [job])
        waits.append(policy.next_at - now)
        now = policy.next_at
    assert waits == sorted(waits) and waits[0] == 2.0 and waits[-1] > 20.0


def test_with_progress_the_next_check_is_at_the_predicted_end():
    policy = PollingPolicy(min_interval=1.0)
    policy.observe(T0 + 1, JobView("j1", T0, running=False))
    policy.observe(T0 + 2, JobView("j1", T0, running=True, progress=1.0))
    policy.observe(T0 + 12, JobView("j1", T0, running=True, progress=20.0))  # 1.9 % per second
    job = JobView("j1", T0, running=True, progress=20.0)
    end = T0 + 12 + 80 / 1.9
    assert policy.predicted_end(job) == pytest.approx(end, abs=1e-3)
    policy.plan(T0 + 12, [job])
    assert end < policy.next_at < end + 1.0  # just after it, not a request before
    assert policy.reports_progress


def test_only_a_sharp_observation_teaches_the_queue_time():
    policy = PollingPolicy(min_interval=1.0)
    policy.observe(T0 + 20, JobView("late", T0, running=True, progress=30.0))  # running by now; since when?
    assert policy.queue_times == []
    policy.observe(T0 + 1, JobView("seen", T0, running=False))
    policy.observe(T0 + 2, JobView("seen", T0, running=True, progress=1.0))  # began between 1 and 2 s
    assert policy.queue_times == [1.5]


def test_learned_queue_times_let_one_progress_reading_predict_the_end():
    policy = PollingPolicy(min_interval=1.0)
    for job_id, queued in (("a", 1.5), ("b", 2.5)):  # two sharp observations: queued 1.5 s and 2.5 s
        policy.observe(T0 + queued - 0.5, JobView(job_id, T0, running=False))
        policy.observe(T0 + queued + 0.5, JobView(job_id, T0, running=True, progress=1.0))
    assert sorted(policy.queue_times) == [1.5, 2.5]
    # a job first seen 30 s after its start, at 45 %: it began running 1-3 s after its start (2 +- 1 s)
    job = JobView("c", T0 + 100, running=True, progress=45.0)
    policy.observe(T0 + 130, job)
    end = policy.predicted_end(job)
    assert end == pytest.approx(T0 + 102 + 28 * 100 / 45, abs=0.01)
    early = JobView("d", T0 + 200, running=True, progress=10.0)  # 8 s of running: +-1 s is too unsure
    policy.observe(T0 + 210, early)
    assert policy.predicted_end(early) is None
    unaware = PollingPolicy(min_interval=1.0)
    unaware.observe(T0 + 130, job)
    assert unaware.predicted_end(job) is None  # without queue times: anywhere in 0-30 s, too unsure


def test_the_backends_status_change_time_lets_one_reading_predict_the_end():
    policy = PollingPolicy(min_interval=1.0)
    # started at T0, seen queued at T0 + 1, running at T0 + 20 (12.5 %): the backend says since T0 + 4
    policy.observe(T0 + 1, JobView("a", T0, running=False))
    job = JobView("a", T0, running=True, progress=12.5, status_since=T0 + 4)
    policy.observe(T0 + 20, job)
    assert policy.predicted_end(job) == pytest.approx(T0 + 4 + 16 * 8, abs=1e-6)
    assert policy.queue_times == [4.0]  # sharp, so it teaches the queue time too
    # a time outside the checks that saw it waiting and running is not believed
    odd = JobView("b", T0, running=True, progress=12.5, status_since=T0 + 30)
    policy.observe(T0 + 20, odd)
    assert policy.predicted_end(odd) is None


def test_an_updated_that_moves_while_the_job_runs_is_not_taken_for_its_start():
    policy = PollingPolicy(min_interval=1.0)
    policy.observe(T0 + 1, JobView("a", T0, running=False))
    policy.observe(T0 + 20, JobView("a", T0, running=True, progress=10.0, status_since=T0 + 19.9))
    # this backend bumps 'updated' with every progress change: the first reading alone misleads ...
    job = JobView("a", T0, running=True, progress=12.0, status_since=T0 + 21.9)
    policy.observe(T0 + 22, job)
    assert not policy.updated_is_status_change
    # ... so the rate comes from the two readings (1 % per second), and later jobs get no prediction
    assert policy.predicted_end(job) == pytest.approx(T0 + 22 + 88, abs=1e-6)
    policy.observe(T0 + 31, JobView("b", T0 + 30, running=False))
    later = JobView("b", T0 + 30, running=True, progress=20.0, status_since=T0 + 39.9)
    policy.observe(T0 + 40, later)
    assert policy.predicted_end(later) is None
    restored = PollingPolicy()
    restored.load(policy.to_dict())
    assert not restored.updated_is_status_change


def test_a_job_nearly_done_by_one_reading_is_asked_about_by_the_latest_it_can_end():
    policy = PollingPolicy(min_interval=1.0, total_times=[60.0, 70.0])
    job = JobView("j", T0, running=True, progress=96.8)  # first seen 31 s after its start, nearly done
    policy.observe(T0 + 31, job)
    assert policy.predicted_end(job) is None  # when it began running is unknown: no rate
    policy.plan(T0 + 31, [job])
    # had it run all 31 s, the last 3.2 % take 1 s more: asked then, not where 60-70 s jobs end
    assert policy.next_at == pytest.approx(T0 + 31 + 31 * 3.2 / 96.8 + 0.25, abs=0.01)


def test_jobs_ending_less_than_a_minimum_interval_apart_are_caught_by_one_check():
    policy = PollingPolicy(min_interval=1.0)
    jobs = []
    for job_id, rate in (("early", 2.0), ("late", 1.99)):  # predicted ends 0.25 s apart
        policy.observe(T0 + 1, JobView(job_id, T0, running=False))
        policy.observe(T0 + 2, JobView(job_id, T0, running=True, progress=rate))
        policy.observe(T0 + 10, JobView(job_id, T0, running=True, progress=9 * rate))
        jobs.append(JobView(job_id, T0, running=True, progress=9 * rate))
    early, late = (policy.predicted_end(job) for job in jobs)
    assert early < late < early + 1.0
    policy.plan(T0 + 10, jobs)
    # One check after both ends; checking after the first would see the other running and then have to
    # wait a whole minimum interval before asking again.
    assert late < policy.next_at < late + 1.0


def test_learned_durations_place_checks_where_jobs_end_and_survive_a_resume():
    policy = PollingPolicy(min_interval=1.0)
    for i, duration in enumerate([50.0, 55.0, 60.0, 65.0, 70.0]):
        policy.record_end(T0 + duration, f"old{i}", started_at=T0, ended_at=T0 + duration)
    job = JobView("new", started_at=T0 + 100, running=True)
    policy.plan(T0 + 101, [job])
    # nothing to ask long before the shortest job seen (50 s), and asked by the typical one (60 s)
    assert T0 + 100 + 40.0 <= policy.next_at <= T0 + 100 + 60.0
    # a resumed run (a new policy from the run record) plans the same
    resumed = PollingPolicy(min_interval=1.0)
    resumed.load(policy.to_dict())
    resumed.plan(T0 + 101, [job])
    assert resumed.next_at == pytest.approx(policy.next_at, abs=1e-3)
    # a backend with nothing learned yet uses what the run's other backends learned
    fresh = PollingPolicy(min_interval=1.0, peers=[policy])
    fresh.plan(T0 + 101, [job])
    assert fresh.next_at == pytest.approx(policy.next_at, abs=1e-3)


def test_after_a_start_a_check_comes_soon_unless_one_comes_soon_after_anyway():
    policy = PollingPolicy(min_interval=1.0)
    policy.plan(T0, [])  # no job: not asked
    policy.on_started(T0)
    assert policy.next_at == pytest.approx(T0 + 1.0, abs=1e-3)  # nothing learned: at the minimum
    policy.next_at = T0 + 3.0
    policy.on_started(T0)  # a check within a few intervals anyway: kept
    assert policy.next_at == pytest.approx(T0 + 3.0, abs=1e-3)
    policy.next_at = T0 + 100.0
    policy.on_started(T0)
    assert policy.next_at == pytest.approx(T0 + 1.0, abs=1e-3)
    policy.check_now(T0 + 2)
    assert policy.due(T0 + 2)


def test_backoff_keeps_growing_while_creating_fails_although_listing_works():
    now = [0.0]
    backend = Backend(BackendProfile(name="b", url="http://127.0.0.1:9"), clock=lambda: now[0])
    backend.backoff.rng = lambda: 1.0  # no jitter
    error = ConnectionError("refused")
    delays = []
    for _ in range(5):
        backend.record_failure(error, "creating a job")
        delays.append(backend.seconds_until_ready())
        now[0] += delays[-1]
        backend.record_success("listing jobs")  # the listing works meanwhile
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert "failure 5 in a row" in backend.detail  # the state the panel shows says so
    backend.record_success("creating a job")
    assert backend.backoff.failures == 0 and backend.ready()


LocalBackend = pytest.importorskip("openeo_tile_jobs.local_backend").LocalBackend


def test_the_engine_asks_only_when_something_may_have_changed(tmp_path, local_backend_factory):
    """Jobs of about 6 s, rounds every 0.1 s: the backend is asked a handful of times, not every round."""
    b = local_backend_factory(queue_time=1.0, run_time=6.0)
    db = make_db(tmp_path / "run.gpkg", cols=2, rows=1)
    rec = RecordingListener()
    sched = make_scheduler(
        db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=2, poll_min=None, listeners=(rec,)
    )
    rounds = []
    report = run_engine(sched, poll_interval=0.1, max_seconds=60, on_round=rounds.append)
    assert report.done and db.count_by_status() == {statuses.FINISHED: 2}
    counts = b.request_counts()
    tracking = counts.get("GET /jobs", 0) + counts.get("GET /jobs/{job_id}", 0)
    assert len(rounds) > 50 and 2 <= tracking <= 10, (len(rounds), counts)
    assert sum(r.tracking_requests() for r in rounds) == tracking
    assert sum(r.bytes for r in rounds) > 0
    # the progress events said when the backend would be asked next
    assert any(p.next_check_in.get("local1") for p in rec.progress)
    learned = db.run_record()["polling"]["local1"]
    assert len(learned["total_times"]) == 2 and all(7 <= t < 60 for t in learned["total_times"]), learned
    # what the listing cost there is kept too: a resumed run compares the two ways of tracking at once
    measured = learned["request_costs"]
    assert measured["listing_seconds"] > 0 and measured["listing_bytes"] > 100, measured
    resumed = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=2, poll_min=None)
    assert resumed.request_costs("local1").to_dict() == measured


def test_retry_after_is_honoured(tmp_path, local_backend_factory):
    """Every listing answered 429 with Retry-After: 3 -- the engine waits 3 s between listings."""
    b = local_backend_factory(run_time=30.0, faults={"rate_limit": 1.0, "retry_after": 3, "endpoints": ["GET /jobs"]})
    db = make_db(tmp_path / "run.gpkg", cols=1, rows=1)
    sched = make_scheduler(db, [b.url], b.demo_process_url, tmp_path / "out", parallel_jobs=1)
    run_engine(sched, poll_interval=0.05, max_seconds=7, until_done=False)
    listings = b.request_counts().get("GET /jobs", 0)
    assert 1 <= listings <= 3, listings


def test_the_cheaper_way_to_track_is_chosen_from_measured_bytes_and_latency():
    from openeo_tile_jobs.core.request_costs import MODE_JOBS, MODE_LISTING, RequestCosts

    costs = RequestCosts()
    assert costs.choose(2) == MODE_LISTING  # nothing measured yet
    costs.note_listing_page(seconds=0.01, nbytes=20_000, jobs=100)  # a small backend: one small page
    assert costs.choose(2) == MODE_LISTING  # one request beats two
    costs = RequestCosts()
    for _ in range(3):  # a federation: pages of 100 jobs, 400 kB and 1.5 s each, three of them per round
        costs.note_listing_page(seconds=1.5, nbytes=400_000, jobs=100)
    costs.listing_pages = 3.0
    costs.note_job(seconds=0.2, nbytes=1_500)
    assert costs.choose(2) == MODE_JOBS  # two small GET /jobs/{id} beat three big pages
    assert costs.choose(100) == MODE_LISTING  # but not a hundred of them


def test_engine_settings_reach_the_backends_and_policies(tmp_path):
    """EngineConfig's backoff and polling bounds are what each backend of the run uses (loopback or remote)."""
    from openeo_tile_jobs.core.jobspec import JobSpec
    from openeo_tile_jobs.core.scheduler import EngineConfig, Scheduler

    db = make_db(tmp_path / "run.gpkg", cols=1, rows=1)
    backends = [
        Backend(BackendProfile(name="here", url="http://127.0.0.1:9")),
        Backend(BackendProfile(name="there", url="https://openeo.example.org")),
    ]
    config = EngineConfig(output_dir=tmp_path / "out", backoff_base=0.5, backoff_cap=7.0, poll_max=90.0)
    sched = Scheduler(db, JobSpec(process_id="p"), backends, config)
    assert [(b.backoff.base, b.backoff.cap) for b in backends] == [(0.5, 7.0), (0.5, 7.0)]
    assert sched.polling_policy("here").min_interval == 1.0 and sched.polling_policy("there").min_interval == 5.0
    assert sched.polling_policy("there").max_interval == 90.0
    sched.stop()
    db.close()
