"""Launchers decide *where* a runner runs; the runner decides *how*; the protocol is shared."""
from .docker import DockerLauncher
from .local import EnvironmentFailed, HostLauncher, VenvLauncher

__all__ = ["DockerLauncher", "EnvironmentFailed", "HostLauncher", "VenvLauncher"]
