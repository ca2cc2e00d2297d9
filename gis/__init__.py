"""QGIS glue of openEO Tile Jobs: qgis.core only, no widgets."""
