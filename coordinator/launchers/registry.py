"""Every launcher, found by scanning this package (no list to edit: a module or a folder of
modules is one launcher), and the one policy that picks an engine's launcher among this machine's,
those using an environment its manifest declares: `e2e bench`, `e2e engines`, the config and each
fleet node all use these."""
import importlib
import inspect
import pkgutil
import sys
from functools import lru_cache
from typing import Dict, List, Mapping, Optional, Tuple, Type

from coordinator.engines import ENVIRONMENTS, Engine
from coordinator.errors import UsageError
from coordinator.launchers.base import NODES, LaunchSettings, Launcher

AUTO = "auto"


@lru_cache(maxsize=None)
def launcher_classes() -> Dict[str, Type[Launcher]]:
    """Each `Launcher` subclass defined in a module of this package or of a folder in it (one
    that sets its own `name`), by name, in the order `--launcher auto` tries them."""
    found: Dict[str, Type[Launcher]] = {}
    # The package's own search path (its folder): a module or a folder put there is a launcher.
    for info in pkgutil.walk_packages(sys.modules[__package__].__path__, prefix=f"{__package__}."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Launcher) and cls.__module__ == module.__name__ and "name" in vars(cls):
                _check_class(cls, found)
                found[cls.name] = cls
    return dict(sorted(found.items(), key=lambda kv: (kv[1].preference, kv[0])))


def _check_class(cls: Type[Launcher], found: Mapping[str, Type[Launcher]]) -> None:
    if cls.name in found:
        raise TypeError(f"two launchers are named {cls.name!r}: {found[cls.name]} and {cls}")
    if getattr(cls, "environment", None) not in (*ENVIRONMENTS, NODES):
        raise TypeError(f"{cls} must say which environment it runs runners in: `environment = ...`, "
                        f"one of {', '.join(ENVIRONMENTS)} (coordinator/engines.py), or NODES for a "
                        f"launcher of other machines (coordinator/launchers/base.py)")
    if (cls.environment == NODES) == (cls.selected_by == "--launcher"):
        raise TypeError(f"{cls}: a launcher of other machines (environment = NODES), and only it, names "
                        f"the option that picks those machines: `selected_by = \"--hosts\"`")


def _here() -> Dict[str, Type[Launcher]]:
    """The launchers of this machine, in `--launcher auto`'s order."""
    return {name: cls for name, cls in launcher_classes().items() if cls.environment != NODES}


def names() -> List[str]:
    """Every launcher's name: the values `--launcher` takes besides `auto` (`check` then refuses
    a launcher of other machines, saying which option picks it)."""
    return list(launcher_classes())


def check(requested: str) -> None:
    """Refuse `--launcher` naming a launcher of other machines (Ray), in one line saying which
    option picks it.

    `--launcher` picks the environment a row runs in on a machine, `--hosts` picks the machines:
    on a fleet node `--launcher` is the node's own launcher. So `--launcher ray` would mean Ray
    within Ray, or be a second spelling of `--hosts` with the nodes' launcher left unsaid; one
    option per question keeps each answer whole, and a user who typed it learns the other."""
    cls = launcher_classes().get(requested)
    if cls is not None and cls.environment == NODES:
        raise UsageError(f"--launcher {requested}: the {requested} launcher runs each row on another machine with "
                         f"that machine's own launcher; pick the machines with {cls.selected_by} and their "
                         f"launcher with --launcher ({', '.join((AUTO, *_here()))})")


def create_all(settings: LaunchSettings) -> Dict[str, Launcher]:
    """One of each launcher of this machine, in `--launcher auto`'s order (what `choose`
    expects); a launcher of other machines is made per machine by its option (`selected_by`)."""
    return {name: cls.create(settings) for name, cls in _here().items()}


def choose(engine: Engine, requested: str, device: str,
           launchers: Mapping[str, Launcher]) -> Tuple[Optional[Launcher], Optional[str]]:
    """The launcher `engine` runs with, and why it cannot run here (None when it can).

    Every launcher whose `environment` the engine's manifest declares is considered: a new
    launcher using an existing kind of environment needs no manifest edit. An engine that
    declares a pinned launcher's environment (the host's, for the PyTorch reference) runs on it
    whatever is asked. `auto` takes the first available by preference (`launchers` is in that
    order); a named launcher is taken when it uses one of the engine's environments, else the
    reason says what to do instead. A launcher of other machines named is a usage error (`check`)."""
    if requested != AUTO:
        check(requested)
    usable = [launcher for launcher in launchers.values() if launcher.environment in engine.environments]
    if not usable:
        return None, (f"no launcher here uses the environments {engine.folder / 'manifest.yaml'} declares "
                      f"({', '.join(engine.environments)}); launchers: "
                      + ", ".join(f"{name} ({launcher.environment})" for name, launcher in launchers.items()))
    pinned = [launcher for launcher in usable if launcher.pinned]
    if pinned:
        return pinned[0], pinned[0].unavailable(engine, device)
    if requested != AUTO:
        if requested not in launchers:
            return None, f"unknown launcher {requested!r}; valid: {AUTO}, {', '.join(launchers)}"
        chosen = launchers[requested]
        reason = chosen.unavailable(engine, device)
        if reason is None and chosen.environment not in engine.environments:  # the launcher's own words first
            note = f" ({engine.note})" if engine.note else ""
            reason = (f"{engine.name} does not run with the {requested} launcher{note}: its environments are "
                      f"{', '.join(engine.environments)}, not {chosen.environment}; rerun with --launcher "
                      f"{AUTO} or {usable[0].name}")
        return chosen, reason
    reasons = []
    for launcher in usable:
        why = launcher.unavailable(engine, device)
        if why is None:
            return launcher, None
        reasons.append((launcher.name, why))
    if len(reasons) == 1:
        return usable[0], reasons[0][1]
    return usable[-1], "; ".join(f"{name}: {why}" for name, why in reasons)
