"""The openEO API routes, one module per area; each has ``register(app, services)``."""
