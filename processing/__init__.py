"""The Processing provider of openEO Tile Jobs and its algorithms."""
