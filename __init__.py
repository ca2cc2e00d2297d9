"""openEO Tile Jobs: a QGIS plugin that runs one openEO batch job per tile of a grid."""


def classFactory(iface):
    """Entry point QGIS calls; ``iface`` is None under qgis_process."""
    from .plugin import TileJobsPlugin

    return TileJobsPlugin(iface)
