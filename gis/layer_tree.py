"""The layer-tree group of a run: the tile layer on top, a "Results" subgroup below it.

Groups and layers carry custom properties (saved in the project file) that tie them to
their run's job database, so a reopened project finds them again.
"""

from __future__ import annotations

import os

from qgis.core import QgsLayerTreeGroup, QgsProject

#: Custom property keys, saved in the .qgz.
PROP_RUN = "openeo_tile_jobs/run"  # absolute path of the run's job database GeoPackage
PROP_KIND = "openeo_tile_jobs/kind"  # "tiles", "result" or "mosaic"
PROP_TILE = "openeo_tile_jobs/tile_id"
RESULTS_GROUP_NAME = "Results"


def run_key(path: str | os.PathLike) -> str:
    """Canonical identity of a run: the absolute path of its GeoPackage."""
    return os.path.abspath(os.fspath(path))


def find_run_group(run: str | os.PathLike, project: QgsProject | None = None) -> QgsLayerTreeGroup | None:
    key = run_key(run)
    root = (project or QgsProject.instance()).layerTreeRoot()
    for group in root.findGroups(True):
        if group.customProperty(PROP_RUN) == key:
            return group
    return None


def run_group(run: str | os.PathLike, name: str, project: QgsProject | None = None) -> QgsLayerTreeGroup:
    """The run's group (created at the top of the layer tree if missing)."""
    group = find_run_group(run, project)
    if group is None:
        root = (project or QgsProject.instance()).layerTreeRoot()
        group = root.insertGroup(0, name)
        group.setCustomProperty(PROP_RUN, run_key(run))
    return group


def results_group(group: QgsLayerTreeGroup) -> QgsLayerTreeGroup:
    """The "Results" subgroup (created last in the run group, so it draws below the tiles)."""
    for child in group.children():
        if isinstance(child, QgsLayerTreeGroup) and child.customProperty(PROP_KIND) == "results":
            return child
    results = group.addGroup(RESULTS_GROUP_NAME)
    results.setCustomProperty(PROP_KIND, "results")
    return results
