"""The panel's tile table after a split: the children are added, the parent shows as split."""

from __future__ import annotations

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.grid import make_grid
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.core.retile import split_tile
from openeo_tile_jobs.ui.tile_table import DB_COLUMNS, STATUS_ROLE, TileTableModel

AOI = {"west": 590000, "south": 5660000, "east": 600000, "north": 5670000, "crs": "EPSG:32631"}


def test_the_tile_table_adds_the_children_of_a_split_tile(tmp_path, qgis_app):
    inserted = []
    with JobDB.create(tmp_path / "run.gpkg", make_grid(AOI, tile_size=5000, crs="EPSG:32631")) as db:
        model = TileTableModel()
        model.load(db)
        model.rowsInserted.connect(lambda _parent, first, last: inserted.append((first, last)))
        result = split_tile(db, 3)
        changed = [3, *(fid for fid, _ in result.children)]  # the fids the round's events name
        model.update_rows(db.get_many(changed, columns=[c for c in DB_COLUMNS if c != "fid"]))
        model.update_rows(db.get_many(changed, columns=[c for c in DB_COLUMNS if c != "fid"]))  # no twice
    assert model.rowCount() == 8 and inserted == [(4, 7)]
    assert model.counts() == {statuses.SPLIT: 1, statuses.NOT_STARTED: 7}
    assert [model.row_data(r)["tile_id"] for r in range(4, 8)] == [t for _, t in result.children]
    assert model.data(model.index(model.row_of_fid(3), 1), STATUS_ROLE) == statuses.SPLIT
