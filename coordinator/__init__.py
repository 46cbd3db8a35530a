"""The `e2e` coordinator: everything that runs on the host. It never imports an engine."""
__version__ = "0.1.0"
