"""Widgets of openEO Tile Jobs: the dock panel, dialogs and map tools."""
