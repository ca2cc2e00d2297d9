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


def test_demo_exits_with_the_reason_for_a_process_that_cannot_be_tiled(tmp_path, local_backend):
    """BACKEND_URL=... PROCESS_URL=<RAMONA> (chosen by country): the demo says why and exits before any job."""
    from openeo_tile_jobs.tests.test_demo import run_demo
    from openeo_tile_jobs.tests.test_jobspec_apex import RAMONA, serve_catalogue

    with serve_catalogue() as catalogue:
        args = ("--backend-url", local_backend.url, "--process-url", f"{catalogue}/{RAMONA}.json", "--no-frames")
        done = run_demo(tmp_path, *args, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "cannot be split into tiles" in output and "(country, year, month)" in output, output
    assert not (tmp_path / "demo_output" / "demo_run.gpkg").exists()  # no grid, no job database
    counts = local_backend.request_counts()
    assert not any(key.startswith("POST /jobs") for key in counts), counts  # no job on the backend
