"""The openEO API routes, one module per area; each is a Flask blueprint ``bp``."""
