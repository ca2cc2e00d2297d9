"""The synthetic SENTINEL2_L2A data: deterministic, seamless between requests, plausible."""

from __future__ import annotations

import datetime as dt

import numpy as np

from openeo_tile_jobs.local_backend import synthetic

SUMMER = synthetic.acquisition_dates(dt.date(2024, 6, 1), dt.date(2024, 9, 1))


def test_acquisitions_every_five_days_end_excluded():
    dates = synthetic.acquisition_dates(dt.date(2024, 6, 1), dt.date(2024, 6, 11))
    assert dates == [dt.date(2024, 6, 1), dt.date(2024, 6, 6)]
    assert len(SUMMER) == 19
    assert all((b - a).days == 5 for a, b in zip(SUMMER, SUMMER[1:]))


def test_pixel_centres_inside_the_box_on_a_fixed_grid():
    xs, ys = synthetic.pixel_centres(590_010, 5_660_000, 590_500, 5_660_300, 100)
    assert list(xs) == [590_050, 590_150, 590_250, 590_350, 590_450]
    assert list(ys) == [5_660_250, 5_660_150, 5_660_050]


def test_deterministic_and_seamless_between_overlapping_requests():
    dates = SUMMER[:4]
    xs_a, ys_a = synthetic.pixel_centres(590_000, 5_660_000, 592_000, 5_662_000, 50)
    xs_b, ys_b = synthetic.pixel_centres(591_000, 5_661_000, 593_000, 5_663_000, 50)
    a = synthetic.generate(xs_a, ys_a, dates)
    assert np.array_equal(a, synthetic.generate(xs_a, ys_a, dates))
    b = synthetic.generate(xs_b, ys_b, dates)
    common_x, ia, ib = np.intersect1d(xs_a, xs_b, return_indices=True)
    common_y, ja, jb = np.intersect1d(ys_a, ys_b, return_indices=True)
    assert common_x.size == 20 and common_y.size == 20
    assert np.array_equal(a[:, :, ja][:, :, :, ia], b[:, :, jb][:, :, :, ib])


def test_plausible_landscape_and_value_ranges():
    xs, ys = synthetic.pixel_centres(580_000, 5_650_000, 600_000, 5_670_000, 100)
    cover = synthetic.land_cover(xs, ys)
    shares = np.bincount(cover.ravel(), minlength=4) / cover.size
    assert all(shares > 0.02), shares  # water, built-up, forest and fields all present
    assert shares[synthetic.FIELD] > 0.4
    cube = synthetic.generate(xs, ys, SUMMER[:3])
    assert cube.dtype == np.int16
    spectral, scl = cube[:, :4], cube[:, 4]
    assert spectral.min() >= 1 and spectral.max() <= 10_000
    assert set(np.unique(scl)) <= {3, 4, 5, 6, 8, 9, 10}
    clear = ~np.isin(scl, synthetic.SCL_CLOUDY)
    water = clear & (cover == synthetic.WATER)
    forest = clear & (cover == synthetic.FOREST)
    assert np.median(spectral[:, 3][water]) < 400 < np.median(spectral[:, 3][forest])  # NIR: water dark


def test_clouds_move_and_vary_between_dates():
    xs, ys = synthetic.pixel_centres(590_000, 5_660_000, 600_000, 5_670_000, 100)
    dates = synthetic.acquisition_dates(dt.date(2024, 1, 1), dt.date(2025, 1, 1))
    scl = synthetic.generate(xs, ys, dates, ["SCL"])[:, 0]
    cloudy = np.isin(scl, synthetic.SCL_CLOUDY)
    fraction = cloudy.mean(axis=(1, 2))
    assert fraction.min() < 0.05 and fraction.max() > 0.5
    partly = [t for t in range(len(dates) - 1) if 0.2 < fraction[t] < 0.8 and 0.2 < fraction[t + 1] < 0.8]
    assert partly
    t = partly[0]
    both = (cloudy[t] & cloudy[t + 1]).mean()
    assert both < min(fraction[t], fraction[t + 1])  # not the same clouds in the same place
    assert {3, 8, 9, 10} <= set(np.unique(scl))
