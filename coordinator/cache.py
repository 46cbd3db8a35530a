"""What the cache holds, entry by entry, and pruning it (`e2e cache list|clear`).

An entry is one thing made once and reused: an export (`models/`), test inputs with their
reference outputs (`data/`), an engine's virtualenv (`venvs/`), a converted model or built
engine (`engines/<id>/`), TVM tuning records (`engines/tvm/*.tvm-tuning`), the protocol copy
runners import (`protocol/`), uv's cache the environments are hard-linked from (`uv/`), and
`partial` leftovers of writers that died (shared/atomic.py names them; they are never read).
Seals, locks and logs count with their entry. An entry's `shared` bytes are in files with other
hard links (uv's cache, other environments): on disk once, whatever the entries that list them.
"""
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from shared import atomic

from coordinator.engines import discover
from coordinator.errors import UsageError
from coordinator.launchers.venv import READY, VenvLauncher, broken

# fleet: the files a fleet node received for its rows (coordinator/launchers/ray/node.py), by digest
# machine: this machine's measured arithmetic peaks (coordinator/machine/peak.py)
KINDS = ("models", "data", "venvs", "uv", "engines", "tuning", "protocol", "fleet", "machine", "partial")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class Entry:
    kind: str
    name: str  # its path in the cache
    path: Path
    bytes: int
    age_s: float  # since it was made or last used
    state: str  # "whole", "partial", or what is wrong with it
    shared: int = 0  # bytes in files hard-linked elsewhere too (uv's cache, another environment)
    largest: str = ""  # an environment's largest package and its MB: what dominates it


def entries(cache: Path, check: bool = True) -> List[Entry]:
    """Every entry of the cache, by kind then name; `check` reads each seal (digests included)."""
    now = time.time()
    found = []
    for kind, path in _paths(cache):
        companions = [p for p in (Path(str(path) + atomic.SEAL), path.with_name(path.name + ".log")) if p.exists()]
        inside = [path / READY, path / atomic.SEAL] if path.is_dir() else []
        age = min(now - p.lstat().st_mtime for p in [path, *companions, *inside] if p.exists())
        sizes = [_sizes(p) for p in [path, *companions]]
        found.append(Entry(kind, path.relative_to(cache).as_posix(), path, sum(b for b, _ in sizes),
                           age, _state(kind, path) if check else "", sum(sh for _, sh in sizes),
                           _largest(path) if kind == "venvs" and check else ""))
    return sorted(found, key=lambda e: (KINDS.index(e.kind), e.name))


def clear(cache: Path, older_than_s: Optional[float] = None, kinds: Sequence[str] = ()) -> List[Entry]:
    """Remove the entries of `kinds` (all by default) unused for `older_than_s` (any age by
    default). An entry a run is making now (its lock held) is left alone."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise UsageError(f"unknown cache kind {', '.join(unknown)}; valid: {', '.join(KINDS)}")
    removed = []
    for entry in entries(cache, check=False):
        if (kinds and entry.kind not in kinds) or (older_than_s is not None and entry.age_s < older_than_s):
            continue
        with atomic.locked(str(entry.path), wait=False) as free:
            if not free and entry.kind != "partial":  # a run is making it now
                continue
            atomic.discard(str(entry.path))
            if entry.kind == "venvs":
                entry.path.with_name(entry.path.name + ".log").unlink(missing_ok=True)
        removed.append(entry)
    return removed


def parse_age(text: str) -> float:
    """`7d`, `12h`, `30m`, `90s`, `2w` as seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise UsageError(f"--older-than {text!r}: give a number and a unit, s m h d or w (7d, 12h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _paths(cache: Path) -> Iterator[tuple]:
    if (cache / "uv").is_dir():
        yield "uv", cache / "uv"
    for kind in ("models", "data", "venvs", "protocol", "machine"):
        for path in _children(cache / kind):
            if not (kind == "models" and path.name == "requests") and not (kind == "venvs" and path.suffix == ".log"):
                yield ("partial" if atomic.is_partial(path.name) else kind), path
    for engine in _children(cache / "engines"):
        for path in _children(engine):
            kind = "partial" if atomic.is_partial(path.name) else \
                "tuning" if path.name.endswith(".tvm-tuning") else "engines"
            yield kind, path
    for path in _children(cache / "fleet" / "staged"):
        yield ("partial" if atomic.is_partial(path.name) else "fleet"), path


def _children(folder: Path) -> List[Path]:
    """Entries of a cache folder, less the seals and locks that go with them."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if not p.name.endswith((atomic.SEAL, atomic.LOCK)) or atomic.is_partial(p.name))


def _state(kind: str, path: Path) -> str:
    if kind == "partial":
        return "partial (a writer died, or is writing now)"
    if kind == "venvs":  # checked against the requirements it was made from, when they are this checkout's
        launcher = VenvLauncher(path.parents[1])
        engine = next((e for e in discover().values() if e.requirements_path.is_file()
                       and launcher.env_dir(e).name == path.name), None)
        if engine is None:
            return "stale (not made for this checkout: other requirements, another Python, or another engine)"
        return broken(path, engine.requirements_path) or "whole"
    if kind == "uv":
        return "uv's own cache (it checks its entries itself)"
    if kind == "engines" and path.name.endswith(atomic.OWN_CACHE):
        return "the engine's own cache (it checks its entries itself)"
    return atomic.problem(str(path)) or "whole"


def on_disk(paths: Sequence[Path]) -> int:
    """Bytes on disk under `paths`, each hard-linked file counted once (as `du` counts)."""
    seen, total = set(), 0
    for path in paths:
        for f in _files(path):
            st = f.lstat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _files(path: Path) -> Iterator[Path]:
    if not path.is_dir() or path.is_symlink():
        yield path
        return
    for root, _, names in os.walk(path):
        for name in names:
            yield Path(root) / name


def _sizes(path: Path) -> tuple:
    """(bytes, bytes in files with other hard links)."""
    total = shared = 0
    for f in _files(path):
        st = f.lstat()
        total += st.st_size
        if st.st_nlink > 1:
            shared += st.st_size
    return total, shared


def _largest(venv: Path) -> str:
    """The environment's largest package (its top folder in site-packages) and its MB."""
    sizes = {}
    for site in venv.glob("lib/python*/site-packages"):
        for top in site.iterdir():
            if top.is_dir() and not top.name.endswith((".dist-info", "__pycache__")):
                sizes[top.name] = _sizes(top)[0]
    if not sizes:
        return ""
    name = max(sizes, key=lambda k: sizes[k])
    return f"{name} {sizes[name] / 1e6:.0f} MB"
