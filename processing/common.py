"""What the provider's algorithms share: a base class, the layer post-processors, the Local demo backend."""

from __future__ import annotations

import os
from typing import Any, Optional

from qgis.core import (
    QgsLayerTreeLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..gis.layer_tree import PROP_KIND, PROP_RUN, results_group, run_group, run_key

GROUP_ID = "tile_jobs"


def tr(text: str) -> str:
    return QCoreApplication.translate("TileJobsProcessing", text)


class TileJobsAlgorithm(QgsProcessingAlgorithm):
    """Base: name, group and a fresh instance per run, as Processing wants."""

    NAME = ""
    DISPLAY_NAME = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return tr("openEO tile jobs")

    def groupId(self) -> str:
        return GROUP_ID

    def shortHelpString(self) -> str:
        return tr(self.HELP)

    def createInstance(self):
        return type(self)()


# Post-processors must outlive processAlgorithm(): Processing calls them after it returned.
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


class _TileLayerPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Gives a loaded tile layer the status style and puts it at the top of its run group."""

    def __init__(self, path: str, labels: bool = False) -> None:
        super().__init__()
        self.path = path
        self.labels = labels

    def postProcessLayer(self, layer, context: QgsProcessingContext, feedback) -> None:
        from ..gis.tile_style import apply_tile_style

        if not isinstance(layer, QgsVectorLayer):
            return
        apply_tile_style(layer, labels=self.labels)
        layer.setCustomProperty(PROP_RUN, run_key(self.path))
        layer.setCustomProperty(PROP_KIND, "tiles")
        _move_into(layer, run_group(self.path, os.path.splitext(os.path.basename(self.path))[0], context.project()), 0)


class _ResultLayerPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Gives a loaded result raster the fixed rendering and puts it in the run's "Results" group."""

    def __init__(self, path: str, kind: str, tile_id: Optional[str] = None) -> None:
        super().__init__()
        self.path = path
        self.kind = kind
        self.tile_id = tile_id

    def postProcessLayer(self, layer, context: QgsProcessingContext, feedback) -> None:
        from ..gis.layer_tree import PROP_TILE
        from ..gis.result_layers import style_result_layer

        if not isinstance(layer, QgsRasterLayer):
            return
        style_result_layer(layer)
        layer.setCustomProperty(PROP_RUN, run_key(self.path))
        layer.setCustomProperty(PROP_KIND, self.kind)
        if self.tile_id is not None:
            layer.setCustomProperty(PROP_TILE, self.tile_id)
        group = run_group(self.path, os.path.splitext(os.path.basename(self.path))[0], context.project())
        _move_into(layer, results_group(group), -1)


def _move_into(layer, group, index: int) -> None:
    project = layer.project() or QgsProject.instance()
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    if node is None or node.parent() is group:
        return
    clone = QgsLayerTreeLayer(layer)
    if index < 0:
        group.addChildNode(clone)
    else:
        group.insertChildNode(index, clone)
    node.parent().removeChildNode(node)


def load_on_completion(
    context: QgsProcessingContext, uri: str, name: str, processor: QgsProcessingLayerPostProcessorInterface, kind: str
) -> None:
    details = QgsProcessingContext.LayerDetails(name, context.project(), name)
    details.forceName = True
    details.setPostProcessor(processor)
    _KEEP.append(processor)
    if len(_KEEP) > 10_000:  # processors of long-finished runs
        del _KEEP[: len(_KEEP) // 2]
    context.addLayerToLoadOnCompletion(uri, details)


def tile_post_processor(path: str, labels: bool = False) -> _TileLayerPostProcessor:
    return _TileLayerPostProcessor(path, labels)


def result_post_processor(path: str, kind: str, tile_id: Optional[str] = None) -> _ResultLayerPostProcessor:
    return _ResultLayerPostProcessor(path, kind, tile_id)


def start_local_backend(data_dir: str, feedback: Any = None, **config: Any):
    """The Local demo backend in this process (``qgis_process``, the toolbox); the caller stops it.

    ``config``: :class:`local_backend.BackendConfig` settings (e.g. ``pixel_size``).
    """
    from ..local_backend import LocalBackend, missing_requirements

    missing = missing_requirements()
    if missing:
        raise RuntimeError(
            tr("The Local demo backend needs these Python packages: {packages}").format(packages=", ".join(missing))
        )
    backend = LocalBackend(data_dir=data_dir, port=0, **config).start()
    if feedback is not None:
        feedback.pushInfo(tr("Local demo backend started at {url}").format(url=backend.url))
    return backend
