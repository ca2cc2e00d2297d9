"""The demo's grid: the seed's Antwerp AOI gives 16 tiles of 5 km fitted or not; a central block of a
fitted grid keeps exactly the fitted tiles it was cut from; --no-fit asks for openeo's split_area tiles."""

from __future__ import annotations

import numpy as np
import pytest

from openeo_tile_jobs.demo.area import demo_grid
from openeo_tile_jobs.demo.options import SEED_AOI, SEED_TILE_SIZE, parse_options


@pytest.mark.parametrize("fit", [True, False])
def test_seed_gives_16_tiles_of_5_km_either_way(fit):
    grid = demo_grid(dict(SEED_AOI), SEED_TILE_SIZE, fit=fit)
    assert len(grid) == 16 and grid.fit is fit
    assert grid.size_range() == ((5000.0, 5000.0), (5000.0, 5000.0))


def test_a_central_block_of_a_fitted_grid_keeps_its_tiles():
    aoi = {"west": 590000, "south": 5660000, "east": 611700, "north": 5681300, "crs": "EPSG:32631"}
    whole = demo_grid(aoi, 5000)
    assert len(whole) == 25 and whole.size_range()[0] == pytest.approx((4340.0, 4260.0))
    block = demo_grid(aoi, 5000, tiles=4)
    assert len(block) == 4
    bounds = {tuple(np.round(b, 6)) for b in whole.bounds}
    assert all(tuple(np.round(b, 6)) in bounds for b in block.bounds)  # the same squares, not new ones


def test_no_fit_flag():
    assert parse_options([]).fit is True
    assert parse_options(["--no-fit"]).fit is False
