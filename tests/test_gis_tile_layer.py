"""The tile layer on a real job database: group, style, and recolouring from a writer thread's events."""

from __future__ import annotations

import threading
import time

import pytest
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QCoreApplication, QObject, pyqtSignal

from openeo_tile_jobs.core import statuses
from openeo_tile_jobs.core.events import StatusChange
from openeo_tile_jobs.core.grid import make_grid
from openeo_tile_jobs.core.jobdb import JobDB
from openeo_tile_jobs.gis.layer_tree import PROP_KIND, PROP_RUN, find_run_group
from openeo_tile_jobs.gis.tile_layer import TileLayerUpdater, add_tile_layer, find_tile_layer
from openeo_tile_jobs.tests.test_gis_support import clear_project, close_to, over_white, pixel_at, render

SEED_AOI = {"west": 590000, "south": 5660000, "east": 610000, "north": 5680000, "crs": "EPSG:32631"}


def make_jobdb(path):
    grid = make_grid(SEED_AOI, tile_size=5000, crs="EPSG:32631")
    return JobDB.create(path, grid)


@pytest.fixture()
def project(qgis_app):
    yield QgsProject.instance()
    clear_project()


class Relay(QObject):
    """Carries events from a worker thread to the main thread, as the run task does."""

    changed = pyqtSignal(object)


def centre_colour(image, extent, db: JobDB, fid: int) -> tuple[int, ...]:
    x0, y0, x1, y1 = db.geometry(fid).bounds
    return pixel_at(image, extent, (x0 + x1) / 2, (y0 + y1) / 2)


def test_tile_layer_in_its_run_group(tmp_path, project) -> None:
    db = make_jobdb(tmp_path / "antwerp.gpkg")
    db.close()
    layer, group = add_tile_layer(tmp_path / "antwerp.gpkg", project=project)
    assert layer.featureCount() == 16
    assert group.name() == "antwerp" and group.customProperty(PROP_RUN) == str(tmp_path / "antwerp.gpkg")
    assert find_run_group(tmp_path / "antwerp.gpkg", project) is group
    assert group.children()[0].layer() is layer
    assert layer.customProperty(PROP_KIND) == "tiles"
    assert layer.renderer().classAttribute() == "status"
    again, same_group = add_tile_layer(tmp_path / "antwerp.gpkg", project=project)
    assert again is layer and same_group is group and len(project.mapLayers()) == 1
    assert find_tile_layer(tmp_path / "antwerp.gpkg", project) is layer
    del layer, again


def test_recolours_within_a_second_from_a_writer_thread(tmp_path, project) -> None:
    db = make_jobdb(tmp_path / "run.gpkg")
    layer, _ = add_tile_layer(db.path, project=project)
    updater = TileLayerUpdater(layer)
    relay = Relay()
    relay.changed.connect(updater.on_status_changed)
    sequence = [statuses.QUEUED_FOR_START, statuses.CREATED, statuses.QUEUED, statuses.RUNNING, statuses.FINISHED]

    def engine() -> None:  # what the scheduler does: write the rows, then tell the listeners
        for status in sequence:
            db.update_many({fid: {"status": status} for fid in (1, 2, 3)})
            relay.changed.emit(StatusChange(status, ("x0_y0", "x0_y1", "x0_y2"), (1, 2, 3)))
            time.sleep(0.05)

    extent = layer.extent()
    worker = threading.Thread(target=engine)
    worker.start()
    seen = []
    deadline = time.monotonic() + 5
    while (worker.is_alive() or updater._pending) and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.005)
    worker.join()
    QCoreApplication.processEvents()
    assert updater.statuses == {1: "finished", 2: "finished", 3: "finished"}
    assert updater.latencies and max(updater.latencies) < 1.0
    assert sum(1 for _ in updater.latencies) <= len(sequence)  # batched: at most one repaint per round

    image = render([layer], extent)
    seen.append(centre_colour(image, extent, db, 1))
    assert seen[-1][:3] == (255, 255, 255)  # finished: unfilled
    not_started = over_white(statuses.CSS_HEX[statuses.color_of("not_started")], statuses.FILL_OPACITY)
    assert close_to(centre_colour(image, extent, db, 16), not_started)

    db.update_many({4: {"status": statuses.ERROR}})
    updater.on_status_changed(StatusChange(statuses.ERROR, ("x0_y3",), (4,)))
    assert updater.flush() == 1
    image = render([layer], extent)
    assert close_to(centre_colour(image, extent, db, 4), over_white("#8b0000", statuses.FILL_OPACITY))
    db.close()
    del layer
