"""The plugin loads in real QGIS through classFactory, and unloads leaving nothing behind."""

from __future__ import annotations

import logging

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QDockWidget, QToolBar

import openeo_tile_jobs
from openeo_tile_jobs.gis.message_log import LOG_TAG
from openeo_tile_jobs.processing.provider import PROVIDER_ID
from openeo_tile_jobs.ui.dock import DOCK_OBJECT_NAME


def _flush_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()


def _our_toolbars(iface) -> list[QToolBar]:
    return [t for t in iface.mainWindow().findChildren(QToolBar) if t.objectName() == "OpenEOTileJobsToolbar"]


def _our_docks(iface) -> list[QDockWidget]:
    return [d for d in iface.mainWindow().findChildren(QDockWidget) if d.objectName() == DOCK_OBJECT_NAME]


def test_load_toggle_unload_reload(qgis_iface, qgis_app) -> None:
    registry = QgsApplication.processingRegistry()
    for _ in range(2):  # load -> unload -> load again
        qgis_iface.addPluginToWebMenu.reset_mock()
        qgis_iface.removePluginWebMenu.reset_mock()

        plugin = openeo_tile_jobs.classFactory(qgis_iface)
        plugin.initGui()

        toolbar = _our_toolbars(qgis_iface)
        assert len(toolbar) == 1
        assert plugin.toggle_dock_action in toolbar[0].actions()
        menu_actions = [call.args[1] for call in qgis_iface.addPluginToWebMenu.call_args_list]
        assert plugin.toggle_dock_action in menu_actions
        assert registry.providerById(PROVIDER_ID) is not None

        dock = plugin.dock
        assert not dock.isVisible()
        plugin.toggle_dock_action.trigger()
        assert dock.isVisibleTo(qgis_iface.mainWindow())
        plugin.toggle_dock_action.trigger()
        assert not dock.isVisibleTo(qgis_iface.mainWindow())

        plugin.unload()
        _flush_deletes()
        assert registry.providerById(PROVIDER_ID) is None
        assert _our_toolbars(qgis_iface) == []
        assert _our_docks(qgis_iface) == []
        removed = [call.args[1] for call in qgis_iface.removePluginWebMenu.call_args_list]
        assert sorted(map(id, removed)) == sorted(map(id, menu_actions))
        assert not any(
            type(h).__name__ == "QgsMessageLogHandler" for h in logging.getLogger("openeo_tile_jobs").handlers
        )


def test_load_without_iface_registers_provider(qgis_app) -> None:
    """Under qgis_process QGIS passes iface=None: only Processing is set up."""
    plugin = openeo_tile_jobs.classFactory(None)
    plugin.initProcessing()
    plugin.initGui()
    try:
        assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is not None
    finally:
        plugin.unload()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is None


def test_logging_goes_to_message_log_tab(qgis_app) -> None:
    received: list[tuple[str, str]] = []

    def on_message(message: str, tag: str, _level) -> None:
        received.append((tag, message))

    plugin = openeo_tile_jobs.classFactory(None)
    QgsApplication.messageLog().messageReceived.connect(on_message)
    try:
        logging.getLogger("openeo_tile_jobs.core.something").warning("tile 7 failed")
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(on_message)
        plugin.unload()
    assert (LOG_TAG, "openeo_tile_jobs.core.something: tile 7 failed") in received  # QGIS shows the level
