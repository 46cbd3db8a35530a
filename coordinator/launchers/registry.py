"""Every launcher, found by scanning this package (no list to edit), and the one policy that
picks an engine's launcher: `e2e bench`, `e2e engines` and the config all use these."""
import importlib
import inspect
import pkgutil
import sys
from functools import lru_cache
from typing import Dict, List, Mapping, Optional, Tuple, Type

from ..engines import Engine
from .base import LaunchSettings, Launcher

AUTO = "auto"


@lru_cache(maxsize=None)
def launcher_classes() -> Dict[str, Type[Launcher]]:
    """Each `Launcher` subclass defined in a module of this package (one that sets its own
    `name`), by name, in the order `--launcher auto` tries them."""
    found: Dict[str, Type[Launcher]] = {}
    # The package's own search path (its folder): a module put there is a launcher.
    for info in pkgutil.iter_modules(sys.modules[__package__].__path__):
        module = importlib.import_module(f"{__package__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Launcher) and cls.__module__ == module.__name__ and "name" in vars(cls):
                if cls.name in found:
                    raise TypeError(f"two launchers are named {cls.name!r}: {found[cls.name]} and {cls}")
                found[cls.name] = cls
    return dict(sorted(found.items(), key=lambda kv: (kv[1].preference, kv[0])))


def names() -> List[str]:
    """The values `--launcher` takes besides `auto`."""
    return list(launcher_classes())


def create_all(settings: LaunchSettings) -> Dict[str, Launcher]:
    """One of each launcher, in `--launcher auto`'s order (what `choose` expects)."""
    return {name: cls.create(settings) for name, cls in launcher_classes().items()}


def choose(engine: Engine, requested: str, device: str,
           launchers: Mapping[str, Launcher]) -> Tuple[Optional[Launcher], Optional[str]]:
    """The launcher `engine` runs with, and why it cannot run here (None when it can).

    Only the launchers the engine's manifest lists are considered. An engine that lists a
    pinned launcher (the host, for the PyTorch reference) runs on it whatever is asked.
    `auto` takes the first available by preference (`launchers` is in that order); a named
    launcher is taken when the engine lists it, else the reason says what to do instead."""
    unknown = [name for name in engine.launchers if name not in launchers]
    if unknown:
        return None, (f"{engine.folder / 'manifest.yaml'} lists unknown launcher(s) {', '.join(unknown)}; "
                      f"known: {', '.join(launchers)}")
    listed = [launcher for name, launcher in launchers.items() if name in engine.launchers]
    if not listed:
        return None, f"{engine.folder / 'manifest.yaml'} lists no launcher"
    pinned = [launcher for launcher in listed if launcher.pinned]
    if pinned:
        return pinned[0], pinned[0].unavailable(engine, device)
    if requested != AUTO:
        if requested not in launchers:
            return None, f"unknown launcher {requested!r}; valid: {AUTO}, {', '.join(launchers)}"
        chosen = launchers[requested]
        reason = chosen.unavailable(engine, device)
        if reason is None and requested not in engine.launchers:  # the launcher's own words first
            note = f" ({engine.note})" if engine.note else ""
            reason = (f"{engine.name} does not run with the {requested} launcher{note}: it runs with "
                      f"{', '.join(engine.launchers)}; rerun with --launcher {AUTO} or {listed[0].name}")
        return chosen, reason
    reasons = []
    for launcher in listed:
        why = launcher.unavailable(engine, device)
        if why is None:
            return launcher, None
        reasons.append((launcher.name, why))
    if len(reasons) == 1:
        return listed[0], reasons[0][1]
    return listed[-1], "; ".join(f"{name}: {why}" for name, why in reasons)
