"""Launchers decide *where* a runner runs; the runner decides *how*; the protocol is shared.

A launcher is one module here, or a folder of modules (`ray/`), defining a `Launcher` subclass:
the registry finds it."""
from coordinator.launchers.base import NODES, EnvironmentFailed, LaunchSettings, Launcher
from coordinator.launchers.docker import DockerLauncher
from coordinator.launchers.host import HostLauncher
from coordinator.launchers.registry import AUTO, check, choose, create_all, launcher_classes, names
from coordinator.launchers.venv import VenvLauncher

__all__ = ["AUTO", "NODES", "DockerLauncher", "EnvironmentFailed", "HostLauncher", "LaunchSettings", "Launcher",
           "VenvLauncher", "check", "choose", "create_all", "launcher_classes", "names"]
