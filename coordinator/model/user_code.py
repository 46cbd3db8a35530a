"""Calling the user's own code (a model factory, an inputs function, the model's forward, the
exporters on the model) so that whatever it raises ends in one line: what failed, the user's
exception type and message, and the last frame in the user's file. `--debug` shows the whole
traceback (the exception is chained)."""
import contextlib
import importlib.util
import os
import re
import sysconfig
import traceback
from pathlib import Path
from typing import Any, Iterator, List, Optional

from coordinator.errors import UsageError

# A module the zoo or an option needs, that an extra of e2e installs (pyproject.toml).
EXTRAS = {"ultralytics": "yolo", "transformers": "transformers", "ray": "fleet"}
_E2E = str(Path(__file__).resolve().parents[2])  # the folder holding coordinator/
_LIBRARIES = tuple(str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                                    sysconfig.get_paths()["platlib"]})


class UserCodeError(UsageError):
    """The user's code (or the model it builds) raised: one line at the CLI, the cause chained."""


def top_spec(module: str) -> Optional[Any]:
    """The import spec of a module's top-level package, found without importing it (a warm rerun
    stays free of torch); None when it cannot be found."""
    try:
        return importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return None


def module_root(module: str) -> Optional[str]:
    """The folder of a module's top-level package (found, not imported): frames in it are the
    user's."""
    spec = top_spec(module)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return str(Path(list(spec.submodule_search_locations)[0]).resolve())
    return str(Path(spec.origin).resolve()) if spec.origin and spec.origin not in ("built-in", "frozen") else None


def where(tb: object, roots: List[str]) -> str:
    """`file:line in function` of the last frame in one of `roots` (the user's modules), else of
    the last frame outside the libraries and e2e; "" when there is none."""
    frames = traceback.extract_tb(tb)  # type: ignore[arg-type]
    files = {f.filename: str(Path(f.filename).resolve()) for f in frames}
    mine = [f for f in frames if any(files[f.filename] == r or files[f.filename].startswith(r + os.sep)
                                     for r in roots)]
    mine = mine or [f for f in frames if not files[f.filename].startswith((*_LIBRARIES, _E2E))
                    and not f.filename.startswith("<")]
    if not mine:
        return ""
    path = Path(files[mine[-1].filename])
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path  # short where it can be
    return f"{shown}:{mine[-1].lineno} in {mine[-1].name}"


def describe(e: BaseException) -> str:
    """`Type: first line of the message`, squeezed and cut to one readable line."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # the dynamo exporter colours its messages
    lines = [line.strip() for line in plain.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def extra_hint(e: BaseException) -> str:
    """For a missing module an extra of e2e installs: `; pip install 'e2e[extra]'`."""
    name = getattr(e, "name", None) or ""
    extra = EXTRAS.get(name.split(".")[0]) if isinstance(e, ModuleNotFoundError) else None
    return f"; pip install 'e2e[{extra}]'" if extra else ""


def one_line(what: str, e: BaseException, roots: List[str], hint: str = "") -> str:
    at = where(e.__traceback__, roots)
    return f"{what} failed: {describe(e)}{f' (at {at})' if at else ''}{extra_hint(e)}{f'; {hint}' if hint else ''}"


@contextlib.contextmanager
def calling(what: str, *modules: str, hint: str = "") -> Iterator[None]:
    """Run the user's code; anything it raises becomes a UserCodeError of one line. `modules`
    name the user's modules (package.module), whose files are the frames to point at."""
    try:
        yield
    except UsageError:
        raise
    except Exception as e:
        roots = [r for r in map(module_root, modules) if r]
        raise UserCodeError(one_line(what, e, roots, hint)).with_traceback(None) from e

