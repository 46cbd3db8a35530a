"""Launchers decide *where* a runner runs; the runner decides *how*; the protocol is shared."""
from .local import EnvironmentFailed, HostLauncher, VenvLauncher

__all__ = ["EnvironmentFailed", "HostLauncher", "VenvLauncher"]
