"""Tile previews on the map: a "Preview" group at the top of the run's group, one layer per tile.

The group is made once per run and found again by its custom property (also in a reopened
project); a new preview of a tile replaces the older one. Layers are styled like the run's
result layers (:func:`gis.result_layers.style_result_layer`). Main thread only.
"""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import QgsLayerTreeGroup, QgsLayerTreeLayer, QgsProject, QgsRasterLayer

from .layer_tree import PROP_KIND, PROP_RUN, PROP_TILE, find_run_group, run_group, run_key
from .result_layers import DEFAULT_RAMP, open_raster, style_result_layer

PREVIEW_GROUP_NAME = "Preview"
KIND_PREVIEW = "preview"
KIND_PREVIEW_GROUP = "preview_group"


def find_preview_group(run: str | os.PathLike, project: Optional[QgsProject] = None) -> Optional[QgsLayerTreeGroup]:
    """The run's "Preview" group, if it has one."""
    parent = find_run_group(run, project)
    for child in parent.children() if parent is not None else []:
        if isinstance(child, QgsLayerTreeGroup) and child.customProperty(PROP_KIND) == KIND_PREVIEW_GROUP:
            return child
    return None


def preview_group(run: str | os.PathLike, project: Optional[QgsProject] = None) -> QgsLayerTreeGroup:
    """The run's "Preview" group (made once), first in its group so previews draw above the tiles' fill."""
    project = project or QgsProject.instance()
    found = find_preview_group(run, project)
    if found is not None:
        return found
    parent = run_group(run, os.path.splitext(os.path.basename(run_key(run)))[0], project)
    group = parent.insertGroup(0, PREVIEW_GROUP_NAME)
    group.setCustomProperty(PROP_KIND, KIND_PREVIEW_GROUP)
    return group


def preview_layers(run: str | os.PathLike, tile_id: Optional[str] = None, project: Optional[QgsProject] = None):
    """The run's preview layers (of one tile when ``tile_id`` is given)."""
    group, found = find_preview_group(run, project), []
    for node in group.findLayers() if group is not None else []:
        layer = node.layer()
        if isinstance(layer, QgsRasterLayer) and layer.customProperty(PROP_KIND) == KIND_PREVIEW:
            if tile_id is None or layer.customProperty(PROP_TILE) == str(tile_id):
                found.append(layer)
    return found


def remove_previews(run: str | os.PathLike, tile_id: str, project: Optional[QgsProject] = None) -> int:
    """Remove the older preview layers of ``tile_id``; returns how many."""
    project = project or QgsProject.instance()
    ids = [layer.id() for layer in preview_layers(run, tile_id, project)]
    if ids:
        project.removeMapLayers(ids)
    return len(ids)


def show_preview(
    run: str | os.PathLike,
    tile_id: str,
    path: str | os.PathLike,
    project: Optional[QgsProject] = None,
    ramp: Optional[str] = DEFAULT_RAMP,
) -> Optional[QgsRasterLayer]:
    """Add the preview GeoTIFF of ``tile_id`` (replacing an older one); None when GDAL cannot read it."""
    project = project or QgsProject.instance()
    layer = open_raster(path, f"Preview {tile_id}")
    if not layer.isValid():
        return None
    remove_previews(run, tile_id, project)
    style_result_layer(layer, None, ramp)
    layer.setCustomProperty(PROP_RUN, run_key(run))
    layer.setCustomProperty(PROP_KIND, KIND_PREVIEW)
    layer.setCustomProperty(PROP_TILE, str(tile_id))
    project.addMapLayer(layer, False)
    node = QgsLayerTreeLayer(layer)
    node.setExpanded(False)
    preview_group(run, project).insertChildNode(0, node)
    return layer
