"""`e2e images`: build the runner images from docker-bake.hcl with docker-py's classic builder
(buildx is not always there), and list them."""
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from shared.errors import E2EError, one_line

from coordinator.images import bake
from coordinator.engines import RUNNERS_DIR, discover
from coordinator.errors import UsageError

PROJECT_ROOT = RUNNERS_DIR.parent
BAKE_FILE = PROJECT_ROOT / "docker-bake.hcl"
CA_IN_CONTEXT = "docker/certs/extra-ca.pem"
SOURCES_IN_CONTEXT = "docker/sources"  # where --sources DIR's files go, for targets with a SOURCES arg
SOURCE_LABEL = "e2e.source"  # the image label that says which e2e code it was built from


class DockerUnavailable(E2EError):
    status = "skipped"


def client() -> Any:
    """A docker-py client whose daemon answered, or DockerUnavailable saying why not."""
    import docker

    try:
        c = docker.from_env(timeout=600)
        c.ping()
        return c
    except Exception as e:
        raise DockerUnavailable(f"no Docker daemon answers ({one_line(e, 160)}); "
                                "start dockerd or use --launcher venv") from None


def load_bake(overrides: Optional[Dict[str, str]] = None) -> bake.BakeFile:
    """The bake file, its variables set from the environment (as bake does) and `overrides`."""
    if not BAKE_FILE.is_file():
        raise UsageError(f"{BAKE_FILE} not found: `e2e images` needs a source checkout (pip install -e .)")
    return bake.load(BAKE_FILE, {**os.environ, **(overrides or {})})


def source_digest(target: str) -> str:
    """What a runner image's e2e code is made of: the protocol (`shared/`) and the runner's
    folder. An image labelled with another digest would run other code than this checkout's."""
    digest = hashlib.sha256()
    for folder in (PROJECT_ROOT / "shared", RUNNERS_DIR / target):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if folder.is_dir() else []
        for path in files:
            digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def runner_of(target: bake.Target) -> str:
    """The runner whose code an image carries: the folder of its Dockerfile under runners/ (a variant
    target such as openppl-cuda builds runners/openppl), else the target's name."""
    parts = Path(target.dockerfile).parts
    return parts[1] if len(parts) > 2 and parts[0] == "runners" else target.name


def image_tag(engine_id: str) -> Optional[str]:
    """The image an engine runs in: the first tag of its bake target."""
    target = load_bake().targets.get(engine_id)
    return target.tags[0] if target and target.tags else None


@dataclass
class BuildOutcome:
    target: str
    tag: str
    ok: bool
    seconds: float
    message: str  # the error, or the smoke check's last line


def build(names: List[str], ca_cert: Optional[Path], log: Callable[[str], None],
          on_line: Callable[[str, str], None] = lambda target, line: None,
          overrides: Optional[Dict[str, str]] = None, sources: Optional[Path] = None) -> List[BuildOutcome]:
    """Build the targets (or groups) `names`, dependencies first. `sources`: a folder of source
    archives for the targets that build from source (those with a SOURCES build arg)."""
    import time

    bakefile = load_bake(overrides)
    ca = ca_cert or _absolute_ca(bakefile.variables.get("EXTRA_CA_CERT", ""))
    if ca is not None and not ca.is_file():
        raise UsageError(f"--ca-cert: no such file: {ca}")
    targets = bakefile.expand(names)
    if sources is not None:
        _check_sources(sources, targets)
    docker = client()
    outcomes: List[BuildOutcome] = []
    failed: set = set()
    for target in targets:
        if failed & set(target.depends):
            outcomes.append(BuildOutcome(target.name, target.tags[0], False, 0.0,
                                         f"not built: {', '.join(failed & set(target.depends))} failed"))
            failed.add(target.name)
            continue
        args = dict(target.args)
        if ca is not None:
            args["EXTRA_CA_CERT"] = CA_IN_CONTEXT
        given = sources if sources is not None and "SOURCES" in args else None
        if given is not None:
            args["SOURCES"] = SOURCES_IN_CONTEXT
        start = time.perf_counter()
        log(f"Building {target.tags[0]} ({target.dockerfile})...")
        ok, message = _build_one(docker, target, args, ca, given, lambda line, name=target.name: on_line(name, line))
        outcomes.append(BuildOutcome(target.name, target.tags[0], ok, time.perf_counter() - start, message))
        if not ok:
            failed.add(target.name)
    return outcomes


def _check_sources(sources: Path, targets: List[bake.Target]) -> None:
    if not sources.is_dir():
        raise UsageError(f"--sources: no such folder: {sources}")
    if not any(p.is_file() for p in sources.iterdir()):
        raise UsageError(f"--sources: {sources} holds no files")
    if not any("SOURCES" in t.args for t in targets):
        raise UsageError(f"--sources: none of {', '.join(t.name for t in targets)} builds from source archives "
                         "(no SOURCES build arg in docker-bake.hcl)")


def _absolute_ca(value: str) -> Optional[Path]:
    """EXTRA_CA_CERT may name a host file too (an absolute path): then it is copied in."""
    return Path(value) if value and os.path.isabs(value) else None


def _build_one(docker: Any, target: bake.Target, args: Dict[str, str], ca: Optional[Path],
               sources: Optional[Path], on_line: Callable[[str], None]) -> tuple:
    context = _context_tar(PROJECT_ROOT / target.context, ca, sources)
    last, image_id = "", None
    try:
        for chunk in docker.api.build(fileobj=context, custom_context=True, dockerfile=target.dockerfile,
                                      tag=target.tags[0], buildargs=args,
                                      labels={**target.labels, SOURCE_LABEL: source_digest(runner_of(target))},
                                      network_mode="host", rm=True, forcerm=True, decode=True):
            if "error" in chunk:
                return False, _explain(" ".join(chunk["error"].split()), target)
            line = chunk.get("stream", "").strip()
            if line:
                last = line
                on_line(line)
            image_id = chunk.get("aux", {}).get("ID", image_id)
    except Exception as e:  # the daemon went away, a context too large...
        return False, one_line(e)
    for tag in target.tags[1:]:
        repo, _, version = tag.rpartition(":")
        docker.api.tag(image_id or target.tags[0], repo, version)
    return True, last


def _explain(error: str, target: bake.Target) -> str:
    if "pull access denied" in error or "manifest unknown" in error or "dial tcp" in error or "lookup" in error:
        bases = ", ".join(f"{k}={v}" for k, v in target.args.items() if k.endswith("BASE"))
        return (f"{error[:200]} — the base image cannot be pulled ({bases}); without a registry, make a "
                "local one with docker/offline-base.sh and set PYTHON_BASE to it")
    return error[:400]


def _context_tar(root: Path, ca: Optional[Path], sources: Optional[Path] = None) -> io.BytesIO:
    """The build context: `root` filtered by its .dockerignore, plus the extra CA and the files of
    the sources folder (in place of the checkout's docker/sources/) if given."""
    from docker.utils.build import exclude_paths

    ignore = root / ".dockerignore"
    patterns = [p.strip() for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")] \
        if ignore.is_file() else []
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel in sorted(exclude_paths(str(root), patterns)):
            if sources is not None and Path(rel).parent.as_posix() == SOURCES_IN_CONTEXT:
                continue
            tar.add(str(root / rel), arcname=rel, recursive=False)
        if ca is not None:
            tar.add(str(ca), arcname=CA_IN_CONTEXT)
        if sources is not None:
            for path in sorted(p for p in sources.iterdir() if p.is_file()):
                tar.add(str(path), arcname=f"{SOURCES_IN_CONTEXT}/{path.name}")
    buffer.seek(0)
    return buffer


def list_images() -> List[Dict[str, Any]]:
    """Every image target: tag, whether it is built, its size, the pinned engine version."""
    bakefile = load_bake()
    try:
        docker: Any = client()
    except DockerUnavailable:
        docker = None
    engines = discover()
    rows = []
    for name, target in bakefile.targets.items():
        if name.startswith("_") or not target.tags:
            continue
        row = {"target": name, "tag": target.tags[0], "built": "no daemon" if docker is None else "no",
               "size_mb": None, "created": "", "pinned": _pinned(target, engines.get(name))}
        if docker is not None:
            try:
                attrs = docker.images.get(target.tags[0]).attrs
                current = (attrs["Config"].get("Labels") or {}).get(SOURCE_LABEL) == source_digest(runner_of(target))
                row.update(built="yes" if current else "stale", size_mb=round(attrs["Size"] / 2**20),
                           created=attrs["Created"][:19])
            except Exception:
                pass
        rows.append(row)
    return rows


def _pinned(target: bake.Target, engine: Any) -> str:
    """A source-built engine's tag (a *_TAG build arg), else the first exact pin of its
    requirements (the engine itself, by convention), else the base image."""
    tags = [f"{k}={v}" for k, v in target.args.items() if k.endswith("_TAG")]
    if tags or engine is None or not engine.requirements_path.is_file():
        return ", ".join(tags) or next((v for k, v in target.args.items() if k.endswith("BASE")), "")
    for line in engine.requirements_path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            return line.strip()
    return ""
