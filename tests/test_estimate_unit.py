"""core.estimate: the arithmetic of the estimate before Start and of its refinement (plain Python)."""

from __future__ import annotations

import pytest

from openeo_tile_jobs.core.estimate import (
    SOURCE_BACKEND,
    SOURCE_FINISHED,
    FinishedTile,
    RunEstimate,
    Span,
    TileFigures,
    describe,
    extrapolate,
    format_span,
    makespan,
    parse_backend_estimate,
    parse_iso_duration,
    parse_seconds,
    refine,
    time_left_at_pace,
    typical_tile,
)


@pytest.mark.parametrize(
    "text, seconds",
    [("PT3S", 3.0), ("PT1M5.2S", 65.2), ("PT2H", 7200.0), ("P1DT1H", 90000.0), ("pt0.5s", 0.5)],
)
def test_iso_durations_as_backends_send_them(text, seconds):
    assert parse_iso_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", None, "3 s", "P", "PT", "soon"])
def test_what_is_not_a_duration_gives_none(text):
    assert parse_iso_duration(text) is None


def test_backend_estimate_body_both_fields_optional():
    assert parse_backend_estimate({"costs": 0.95, "duration": "PT3.2S"}) == TileFigures(0.95, 3.2)
    assert parse_backend_estimate({"duration": "PT1M"}) == TileFigures(None, 60.0)
    assert parse_backend_estimate({"costs": "n/a"}) == TileFigures(None, None)


def test_usage_seconds_from_the_job_database():
    assert parse_seconds("3.25 seconds") == 3.25
    assert parse_seconds("12 cpu-seconds") is None
    assert parse_seconds(None) is None


def test_typical_tile_is_the_median_area_one():
    # a fitted grid of equal tiles plus two narrow edge tiles: the median is a full tile, not a sliver
    areas = {1: 25.0, 2: 25.0, 3: 25.0, 4: 1.8, 5: 25.0, 6: 1.8}
    assert areas[typical_tile(areas)] == 25.0
    assert typical_tile({7: 10.0, 3: 30.0, 5: 20.0}) == 5
    with pytest.raises(ValueError):
        typical_tile({})


def test_extrapolation_scales_by_area_and_divides_time_by_parallel_jobs():
    # 4 tiles of 25 km2 and 2 of 5 km2; the typical tile costs 2 credits and takes 10 s
    areas = [25.0] * 4 + [5.0] * 2
    est = extrapolate(TileFigures(2.0, 10.0), 25.0, areas, parallel=2, source=SOURCE_BACKEND, basis="x1_y1")
    assert est.credits == Span.point(2.0 * (4 + 2 * 0.2))  # 8.8
    assert est.seconds == Span.point((4 * 10 + 2 * 2) / 2)  # 22 s with two at a time
    assert (est.tiles, est.parallel, est.source) == (6, 2, SOURCE_BACKEND)


def test_time_is_never_shorter_than_the_longest_job():
    est = extrapolate(TileFigures(1.0, 60.0), 10.0, [10.0, 1.0], parallel=8, source=SOURCE_BACKEND)
    assert est.seconds.value == 60.0


def test_run_time_counts_whole_waves_of_jobs():
    assert makespan([10.0] * 5, 2) == 30.0  # three waves, not 2.5
    assert makespan([10.0] * 16, 2) == 80.0
    assert makespan([4.0, 1.0, 1.0, 1.0, 1.0], 2) == 4.0  # the short ones run beside the long one
    assert makespan([], 3) == 0.0


def test_extrapolation_keeps_a_missing_figure_missing():
    est = extrapolate(TileFigures(None, 5.0), 1.0, [1.0, 1.0], parallel=1, source=SOURCE_BACKEND)
    assert est.credits is None and est.seconds.value == 10.0


def test_refinement_adds_billed_credits_and_ranges_the_rest_by_cost_per_area():
    finished = [FinishedTile(10.0, 1.0, 4.0), FinishedTile(10.0, 1.5, 6.0), FinishedTile(20.0, 2.0, 8.0)]
    # rates 0.10, 0.15, 0.10 credits per unit area; 40 units left; 0.5 credits billed for a failed tile
    est = refine(finished, billed=5.0, remaining_areas=[20.0, 20.0], time_left=30.0, parallel=2)
    mean = (0.10 + 0.15 + 0.10) / 3
    assert est.credits.value == pytest.approx(5.0 + 40 * mean)
    assert (est.credits.low, est.credits.high) == (pytest.approx(5.0 + 4.0), pytest.approx(5.0 + 6.0))
    # seconds per area 0.4, 0.6, 0.4: the time left gets that spread around the measured 30 s
    assert est.seconds.value == 30.0
    assert est.seconds.low == pytest.approx(30.0 * 0.4 / (1.4 / 3))
    assert est.seconds.high == pytest.approx(30.0 * 0.6 / (1.4 / 3))
    assert est.source == SOURCE_FINISHED and est.tiles == 5


def test_refinement_ranges_use_deciles_once_there_are_enough_tiles():
    finished = [FinishedTile(1.0, 1.0)] * 18 + [FinishedTile(1.0, 100.0)]  # one odd tile
    est = refine(finished, billed=118.0, remaining_areas=[1.0] * 10, time_left=None, parallel=1)
    assert est.credits.high < 118.0 + 10 * 100.0  # the odd tile does not set the top of the range
    assert est.credits.low == pytest.approx(128.0)
    assert est.seconds is None  # no pace measured yet


def test_a_finished_run_is_what_it_was_billed():
    est = refine([FinishedTile(1.0, 2.0)], billed=2.0, remaining_areas=[], time_left=None, parallel=1)
    assert est.credits == Span.point(2.0) and est.seconds == Span.point(0.0)


def test_time_left_at_pace():
    assert time_left_at_pace(4, 20.0, 6) == 30.0
    assert time_left_at_pace(1, 20.0, 6) is None
    assert time_left_at_pace(0, 0.0, 0) == 0.0


def test_estimate_round_trips_through_the_run_record():
    est = extrapolate(TileFigures(1.0, 3.0), 1.0, [1.0] * 3, 2, source=SOURCE_BACKEND, basis="x0_y0", job_id="j-1")
    assert RunEstimate.from_dict(est.to_dict()) == est
    assert RunEstimate.from_dict({"nonsense": 1}) is None


def test_texts_name_the_range_and_the_source():
    assert format_span(Span(12.0, 11.0, 14.25), "credits") == "12.00 credits (11.00–14.25)"
    assert format_span(Span(75.0, 60.0, 90.0), "time") == "1:15 (1:00–1:30)"
    assert format_span(Span(45.0, 44.9, 45.2), "time") == "0:45"  # no range finer than the figure
    est = extrapolate(TileFigures(1.0, 3.0), 1.0, [1.0] * 16, 2, source=SOURCE_BACKEND, basis="x1_y2")
    assert describe(est) == (
        "16.00 credits, time 0:24 at 2 jobs at a time "
        "(the backend's estimate for tile x1_y2, scaled by area to 16 tiles)"
    )
