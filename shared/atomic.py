"""Cache entries that are whole or absent, whatever runs beside them or dies while writing.

Every run on a machine shares one cache: two `e2e bench` at once may make the same entry, a
run may be killed (SIGKILL included) half way through writing one, and a disk may be full or
a file damaged afterwards. So every entry (a file or a folder) is

- made once: `ensure` holds an inter-process lock (`flock` on `<entry>.lock`) while it makes
  the entry, and looks again once it holds it, so a second run waits and then uses the
  first one's entry instead of making (or deleting) it a second time;
- published whole: made under a temporary name in the same folder, flushed to disk, then
  renamed into place (a rename is atomic), so no reader ever sees half of it;
- sealed: a record of every file's size and sha256 (`.e2e-seal` inside a folder, beside a
  file as `<file>.e2e-seal`), written last. A reader checks it (sizes always, digests of
  files up to `DIGEST_LIMIT`, where it is cheap): an entry without its seal is one whose
  writer died, an entry that disagrees with it was damaged since; `ensure` says so in one
  line and makes it again.

Pure Python >= 3.8 and POSIX: runners use it inside their environments too.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator, Optional

from . import faults

SEAL = ".e2e-seal"
LOCK = ".lock"
PARTIAL = ".partial-"  # in the names of entries being made: `.<name>.partial-<pid>-<random>`
DIGEST_LIMIT = 64 << 20  # bytes; larger files are checked by size (hashing 167 MB took 0.3 s here)
ABSENT = "absent"
# A folder an engine keeps and checks itself (Inductor's cache: its own atomic writes and keys),
# never sealed: `e2e cache list` says so instead of calling it damaged.
OWN_CACHE = ".own-cache"


def write_file(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write `path` whole or not at all: `write(f)` fills a temporary file in the same folder,
    which is flushed to disk and renamed over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + PARTIAL)
    try:
        text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}  # the same bytes on every machine
        with os.fdopen(fd, mode, **text) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; runner containers read the cache as another user
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    write_file(path, lambda f: f.write(text), mode="w")


@contextlib.contextmanager
def locked(path: str, wait: bool = True) -> Iterator[bool]:
    """An exclusive inter-process lock for the entry `path`, released when the holder exits
    however it exits (the kernel drops a dead process's flock). Yields whether it is held:
    always when `wait`, else only if no other process held it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + LOCK, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def used(path: str) -> None:
    """Note that the entry was just used (its seal's time), for `e2e cache clear --older-than`."""
    try:
        os.utime(_seal_path(path))
    except OSError:  # a read-only cache (a container's mount) is still a cache
        pass


def seal(path: str) -> None:
    """Record the size and digest of every file of the entry `path`, last."""
    files = {rel: [os.path.getsize(full), _sha256(full)] for rel, full in _files(path)}
    write_text(_seal_path(path), json.dumps({"format": 1, "files": files}, indent=1, sort_keys=True))


def problem(path: str) -> Optional[str]:
    """None when the entry is whole (as sealed); else what is wrong with it, ABSENT when there
    is nothing at `path`."""
    if not os.path.lexists(path):
        return ABSENT
    try:
        with open(_seal_path(path)) as f:
            files = {str(rel): (int(size), str(digest)) for rel, (size, digest) in json.load(f)["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "not sealed (its writer was interrupted, or an older e2e made it)"
    for rel, (size, digest) in sorted(files.items()):
        full = os.path.join(path, rel) if os.path.isdir(path) else path
        try:
            actual = os.path.getsize(full)
        except OSError:
            return "missing {}".format(rel)
        if actual != size:
            return "damaged: {} has {} bytes, {} when it was written".format(rel, actual, size)
        if size <= DIGEST_LIMIT and _sha256(full) != digest:
            return "damaged: {} differs from what was written (sha256)".format(rel)
    return None


def ensure(path: str, make: Callable[[str], None], what: str, log: Callable[[str], None] = print,
           phase: str = "") -> str:
    """Make the entry `path` unless it is there whole: `make(tmp)` writes a file or a folder
    at `tmp`, which is sealed and renamed to `path`. Returns "hit", "made", or "remade: <why>"
    (said in one line through `log` too) when what was there was not whole. `phase` names the
    step for the kill-at fault hook (shared/faults.py)."""
    if problem(path) is None:
        used(path)
        return "hit"
    with locked(path):
        why = problem(path)  # another run may have made it while this one waited
        if why is None:
            return "hit"
        if why != ABSENT:
            log("{} in {} is {}: making it again".format(what, path, why))
        _remove_partials(path)  # we hold the lock: any partial of this entry is a dead writer's
        directory, name = os.path.split(os.path.abspath(path))
        tmp = tempfile.mktemp(dir=directory, prefix="." + name + PARTIAL + "{}-".format(os.getpid()))
        try:
            make(tmp)
            if os.path.isdir(tmp):
                seal(tmp)  # inside: it moves with the folder
            _fsync_tree(tmp)
            faults.kill_at(phase)  # the hook: made but not published
            discard(path)
            os.replace(tmp, path)
            if not os.path.isdir(path):
                seal(path)  # beside: between the rename and this, readers find it unsealed and wait for the lock
        except BaseException as e:
            discard(tmp)
            if isinstance(e, OSError) and e.filename is None:
                e.filename = path  # a full disk names the entry it could not write
            raise
    return "made" if why == ABSENT else "remade: " + why


def discard(path: str) -> None:
    """Remove a file or folder so that no reader sees it half removed: renamed away first."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        directory, name = os.path.split(os.path.abspath(path))
        trash = tempfile.mkdtemp(dir=directory, prefix="." + name + PARTIAL + "trash-")
        os.replace(path, os.path.join(trash, name))
        shutil.rmtree(trash, ignore_errors=True)
    else:
        _remove(path)
    _remove(path + SEAL)  # a file's seal (a folder's went with it)


def is_partial(name: str) -> bool:
    """Whether a cache file name is an entry being made (or a dead writer's leftover)."""
    return PARTIAL in name


def _remove_partials(path: str) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    prefix = "." + name + PARTIAL
    for other in os.listdir(directory):
        if other.startswith(prefix):
            discard(os.path.join(directory, other))


def _seal_path(path: str) -> str:
    return os.path.join(path, SEAL) if os.path.isdir(path) else path + SEAL


def _files(path: str) -> Iterator[Any]:
    if not os.path.isdir(path):
        yield os.path.basename(path), path
        return
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if rel != SEAL and os.path.isfile(full):
                yield rel, full


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(path: str) -> None:
    """Flush what `make` wrote, so a power cut after the rename finds the data the seal names."""
    targets = [full for _, full in _files(path)] if os.path.isdir(path) else [path]
    for full in targets:
        fd = os.open(full, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
