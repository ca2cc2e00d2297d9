"""openEO Tile Jobs: a QGIS plugin that runs one openEO batch job per tile of a grid."""


def classFactory(iface):
    """Entry point QGIS calls; ``iface`` is None under qgis_process."""
    # First, before anything imports shapely/pyproj/rasterio: inside the QGIS executables their
    # wheels must bind the GEOS/PROJ/GDAL they ship with, not QGIS's (see gis/native_libs.py).
    from .gis.native_libs import isolate_bundled_libraries

    isolate_bundled_libraries()
    from .plugin import TileJobsPlugin

    return TileJobsPlugin(iface)
