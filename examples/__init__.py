"""Example models for e2e, importable from the clone's root (`PYTHONPATH=.`)."""
