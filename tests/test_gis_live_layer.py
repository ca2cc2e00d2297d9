"""The tile layer stays live however QGIS opened it: the engine's writes are what QGIS reads.

QGIS opens a GeoPackage layer read-only with GDAL's NOLOCK when no ``-wal`` file exists, and such a
connection fails every read once a writer creates one (``gis.tile_layer`` holds the WAL to prevent
it). Each test here read nothing ("unable to open database file") before that hold existed.
"""

from __future__ import annotations

import pytest
from osgeo import gdal
from qgis.core import QgsProject, QgsVectorLayer

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.grid import make_grid
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.gis.layer_tree import PROP_KIND, PROP_RUN, run_key
from openeo_tile_jobs.gis.tile_layer import (
    KIND_TILES,
    held_files,
    open_tile_layer,
    tile_layer_uri,
    watch_project,
)
from openeo_tile_jobs.tests.test_gis_support import clear_project

AOI = {"west": 590000, "south": 5660000, "east": 600000, "north": 5670000, "crs": "EPSG:32631"}


@pytest.fixture()
def run_file(tmp_path, qgis_app):
    path = tmp_path / "run.gpkg"
    JobDB.create(path, make_grid(AOI, tile_size=5000, crs="EPSG:32631")).close()  # no -wal left behind
    yield path
    clear_project()


@pytest.fixture()
def gdal_errors():
    errors: list[str] = []
    gdal.PushErrorHandler(lambda cls, _no, msg: errors.append(msg) if cls >= gdal.CE_Warning else None)
    yield errors
    gdal.PopErrorHandler()


def statuses_of(layer: QgsVectorLayer) -> dict[int, str]:
    return {f.id(): f["status"] for f in layer.getFeatures()}


def test_layer_opened_before_the_engine_reads_its_writes(run_file, gdal_errors):
    """The grid was just written (no -wal): the run's layer is added, then the engine starts."""
    watch_project()
    layer = open_tile_layer(run_file)
    QgsProject.instance().addMapLayer(layer)
    assert set(statuses_of(layer).values()) == {statuses.NOT_STARTED}
    with JobDB.open(run_file) as db:
        db.update_many({1: {"status": statuses.RUNNING}, 2: {"status": statuses.QUEUED}})
        seen = statuses_of(layer)
        db.update(3, status=statuses.FINISHED)
        seen_later = statuses_of(layer)
    assert seen == {1: statuses.RUNNING, 2: statuses.QUEUED, 3: statuses.NOT_STARTED, 4: statuses.NOT_STARTED}
    assert seen_later[3] == statuses.FINISHED
    assert statuses_of(layer)[3] == statuses.FINISHED  # after the engine closed the file too
    assert gdal_errors == []


def test_a_layer_qgis_opened_itself_is_made_live(run_file, gdal_errors):
    """A project being read: QGIS opens the layer before the plugin sees it (NOLOCK, no -wal yet)."""
    project = QgsProject.instance()
    watch_project(project)
    layer = QgsVectorLayer(tile_layer_uri(run_file), "Tiles", "ogr")
    layer.setCustomProperty(PROP_RUN, run_key(run_file))
    layer.setCustomProperty(PROP_KIND, KIND_TILES)
    statuses_of(layer)  # QGIS reads it at once (the first render)
    project.addMapLayer(layer)
    with JobDB.open(run_file) as db:
        db.update(2, status=statuses.ERROR)
        assert statuses_of(layer).get(2) == statuses.ERROR
    assert gdal_errors == []
    assert held_files() == [run_key(run_file)]


def test_the_hold_ends_with_the_last_layer(run_file):
    project = QgsProject.instance()
    watch_project(project)
    first, second = open_tile_layer(run_file), open_tile_layer(run_file)
    project.addMapLayers([first, second])
    assert held_files() == [run_key(run_file)]
    project.removeMapLayer(first.id())
    assert held_files() == [run_key(run_file)]
    project.removeMapLayer(second.id())
    assert held_files() == []


@pytest.mark.parametrize("old_file", [False, True], ids=["run_file", "run_file_from_before_re_tiling"])
def test_split_tiles_appear_in_the_live_layer(run_file, gdal_errors, old_file):
    """A split adds rows (and, in a run file made before re-tiling, the parent column): the map shows them."""
    import sqlite3

    from openeo_tile_jobs.core.events import StatusChange
    from openeo_tile_jobs.core.jobdb import PARENT_COLUMN
    from openeo_tile_jobs.core.retile import split_tile
    from openeo_tile_jobs.gis.tile_layer import TileLayerUpdater
    from openeo_tile_jobs.tests.test_gis_support import close_to, over_white, pixel_at, render

    if old_file:
        con = sqlite3.connect(run_file)
        con.execute(f"DROP INDEX idx_tiles_{PARENT_COLUMN}")
        con.execute(f"ALTER TABLE tiles DROP COLUMN {PARENT_COLUMN}")
        con.commit()
        con.close()
    watch_project()
    layer = open_tile_layer(run_file)
    QgsProject.instance().addMapLayer(layer)
    updater = TileLayerUpdater(layer)
    extent = layer.extent()
    assert layer.featureCount() == 4
    with JobDB.open(run_file) as db:
        db.update(1, status=statuses.RUNNING)
        result = split_tile(db, 1)
        children = [f for f, _ in result.children]
        updater.on_status_changed(StatusChange(status=statuses.SPLIT, tile_ids=("x0_y0",), fids=(1,)))
        updater.on_status_changed(
            StatusChange(
                status=statuses.NOT_STARTED, tile_ids=tuple(t for _, t in result.children), fids=tuple(children)
            )
        )
        db.update(children[0], status=statuses.RUNNING)
        updater.flush()
    assert layer.featureCount() == 8
    assert statuses_of(layer) == {
        1: statuses.SPLIT,
        **{f: statuses.NOT_STARTED for f in (2, 3, 4, *children[1:])},
        children[0]: statuses.RUNNING,
    }
    assert PARENT_COLUMN in layer.fields().names()
    image = render([layer], extent)
    navy = over_white(statuses.CSS_HEX["navy"], statuses.FILL_OPACITY)
    grey = over_white(statuses.CSS_HEX["lightgrey"], statuses.FILL_OPACITY)
    assert pixel_at(image, extent, 591250, 5661250)[:3] == navy  # the running south-west quarter
    assert pixel_at(image, extent, 593750, 5663750)[:3] == grey  # a quarter not started: filled once, not twice
    # the split parent: a dashed plum outline drawn over its children's fills and outlines
    plum = tuple(int(statuses.CSS_HEX["plum"][i : i + 2], 16) for i in (1, 3, 5))
    edge = [pixel_at(image, extent, x, 5665000 - 25)[:3] for x in range(590100, 595000, 50)]
    assert sum(close_to(p, plum, 40) for p in edge) > len(edge) / 2  # dashes, not a line
    assert not any(close_to(pixel_at(image, extent, x, 5670000 - 25)[:3], plum, 40) for x in range(590100, 600000, 50))
    assert gdal_errors == []
