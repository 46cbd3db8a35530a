"""Launchers decide *where* a runner runs; the runner decides *how*; the protocol is shared.

A launcher is one module here defining a `Launcher` subclass: the registry finds it."""
from .base import EnvironmentFailed, LaunchSettings, Launcher
from .docker import DockerLauncher
from .host import HostLauncher
from .registry import AUTO, choose, create_all, launcher_classes, names
from .venv import VenvLauncher

__all__ = ["AUTO", "DockerLauncher", "EnvironmentFailed", "HostLauncher", "LaunchSettings", "Launcher",
           "VenvLauncher", "choose", "create_all", "launcher_classes", "names"]
