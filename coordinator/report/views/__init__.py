"""The report's views: the files of a run directory, each made from the typed report.

A view is one module of this package declaring `FILE` (its file name in the run directory) and
`render(report, run_dir) -> str`; adding a view is adding a module. Modules named `_*` are
helpers, not views. `report.json` (the data) is written after every row; the other views at the
end of a bench and by `e2e report`, which remakes them from report.json alone.
"""
import functools
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Dict

from shared import atomic

from coordinator.report.document import Report

SOURCE = "report.json"  # the view every other one could be remade from


@functools.lru_cache(maxsize=None)
def registry() -> Dict[str, ModuleType]:
    """File name -> view module, in module-name order."""
    views: Dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        file = getattr(module, "FILE", None)
        if not isinstance(file, str) or not callable(getattr(module, "render", None)):
            raise TypeError(f"{module.__name__}: a view declares FILE and render(report, run_dir)")
        if file in views:
            raise TypeError(f"{views[file].__name__} and {module.__name__} both write {file}")
        views[file] = module
    return views


def write_report(report: Report, run_dir: Path, views: bool = True) -> None:
    """report.json, then with `views` every other view. Each file is replaced whole (rename),
    so a reader never sees half of one, and report.json is saved before a view can fail."""
    chosen = registry() if views else {SOURCE: registry()[SOURCE]}
    for file in sorted(chosen, key=lambda f: f != SOURCE):
        _replace(run_dir / file, chosen[file].render(report, run_dir))


def _replace(path: Path, text: str) -> None:
    atomic.write_file(str(path), lambda f: f.write(text), mode="w")
