"""Engines are folders: `runners/<id>/` with a manifest. Discovered by scanning, never listed."""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

import runners

from coordinator.errors import UsageError
from shared.environment import BINDING_VARIABLES

RUNNERS_DIR = Path(runners.__file__).parent
REFERENCE = "torch"  # the engine whose outputs are the reference; listed first
CONSUMES = ("onnx", "torch")  # the ONNX export, or the PyTorch model itself (the model card)
ANY_OPSET = (1, 99)
NEVER = "never"  # a manifest's `verified` for an engine that e2e's tests have never run
# What a manifest's `environments` may name (a launcher says which one it uses: its `environment`):
# host: the coordinator's own Python (the reference); venv: an environment made from the folder's
# requirements.txt; docker: the image of its Dockerfile and bake target.
ENVIRONMENTS = ("host", "venv", "docker")


@dataclass(frozen=True)
class Engine:
    id: str  # folder name = CLI value = bake target = image tag suffix
    name: str
    folder: Path
    devices: Tuple[str, ...]
    precisions: Tuple[str, ...]
    # the environments the engine can be built in (ENVIRONMENTS); every launcher that uses one may run it
    environments: Tuple[str, ...]
    note: str = ""  # why the engine needs what it needs, shown in skip reasons
    consumes: str = "onnx"  # onnx: the export; torch: the PyTorch model card + state dict
    opsets: Tuple[int, int] = ANY_OPSET  # the ONNX opsets it loads, inclusive
    # --tune: engine option -> the values searched (coordinator/run/tuning.py), as the manifest lists them
    tuning: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    # the device kinds e2e's test suite has run the engine on; () (`verified: never`, or no key):
    # written but never run, so its rows are untested code (a GPU engine on machines without a GPU)
    verified: Tuple[str, ...] = ()
    # environment variables its runner process starts with, where the user's environment does not set
    # them (how the engine's own experts configure it: PyTorch's OpenMP threads bound to cores, its
    # freed memory kept by the allocator)
    env: Tuple[Tuple[str, str], ...] = ()

    def env_for(self, concurrency: int) -> Tuple[Tuple[str, str], ...]:
        """The manifest's `env` for a runner with `concurrency` requests in flight: without the
        thread binding above one. OpenMP's binding pins the importing thread to the first core,
        and every thread started after it inherits that core (measured: `os.sched_getaffinity` is
        {0} in a new thread), so concurrent requests, each with its own threads, would share one
        core."""
        return self.env if concurrency <= 1 else tuple((k, v) for k, v in self.env if k not in BINDING_VARIABLES)

    def opset_for(self, wanted: int) -> int:
        """The opset this engine gets: the one asked for when it loads it, else the nearest it loads."""
        low, high = self.opsets
        return min(max(wanted, low), high)

    @property
    def verified_text(self) -> str:
        """The manifest's `verified` as the views show it: "never", "cpu", "cpu, cuda"."""
        return ", ".join(self.verified) or NEVER

    @property
    def runner_path(self) -> Path:
        return self.folder / "runner.py"

    @property
    def requirements_path(self) -> Path:
        return self.folder / "requirements.txt"

    @property
    def image(self) -> str:
        return f"e2e-{self.id}"


def _load(folder: Path) -> Engine:
    manifest = folder / "manifest.yaml"
    try:
        data = yaml.safe_load(manifest.read_text()) or {}
        if "launchers" in data:  # the key before issue 27: its launcher names were these environments' names
            listed = data["launchers"] if isinstance(data["launchers"], list) else [data["launchers"]]
            raise UsageError(f"{manifest}: the `launchers` key is gone: replace it with `environments: "
                             f"[{', '.join(map(str, listed))}]`, the environments the engine can be built in "
                             f"(some of {', '.join(ENVIRONMENTS)}); every launcher using one of them may run it")
        engine = Engine(
            id=folder.name, name=str(data.pop("name")), folder=folder,
            devices=tuple(data.pop("devices")), precisions=tuple(data.pop("precisions")),
            environments=tuple(data.pop("environments")), note=str(data.pop("note", "")),
            consumes=str(data.pop("consumes", "onnx")), opsets=tuple(data.pop("opsets", ANY_OPSET)),
            tuning=tuple((str(k), tuple(v)) for k, v in (data.pop("tuning", None) or {}).items()),
            verified=_verified(data.pop("verified", NEVER)),
            env=tuple((str(k), str(v)) for k, v in (data.pop("env", None) or {}).items()),
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise UsageError(f"{manifest}: invalid manifest ({e})") from None
    if data:
        raise UsageError(f"{manifest}: unknown key(s) {', '.join(sorted(data))}")
    if not engine.environments or not set(engine.environments) <= set(ENVIRONMENTS):
        raise UsageError(f"{manifest}: environments must be some of {', '.join(ENVIRONMENTS)}, "
                         f"got {list(engine.environments)}")
    if engine.consumes not in CONSUMES:
        raise UsageError(f"{manifest}: consumes must be one of {', '.join(CONSUMES)}, got {engine.consumes!r}")
    if len(engine.opsets) != 2 or not all(isinstance(v, int) for v in engine.opsets) or engine.opsets[0] > engine.opsets[1]:
        raise UsageError(f"{manifest}: opsets must be [lowest, highest], got {list(engine.opsets)}")
    if not set(engine.verified) <= set(engine.devices):
        raise UsageError(f"{manifest}: verified must be {NEVER} or some of its devices "
                         f"({', '.join(engine.devices)}), got {', '.join(engine.verified)}")
    return engine


def _verified(value: Any) -> Tuple[str, ...]:
    """`verified: never`, `verified: cpu` or `verified: [cpu, cuda]` as the device kinds."""
    kinds = [value] if isinstance(value, str) else list(value)
    return () if kinds == [NEVER] else tuple(str(k) for k in kinds)


@lru_cache(maxsize=None)
def discover() -> Dict[str, Engine]:
    """Every runner folder, the reference first, then by id."""
    folders = sorted(p.parent for p in RUNNERS_DIR.glob("*/manifest.yaml"))
    engines = {f.name: _load(f) for f in folders}
    return dict(sorted(engines.items(), key=lambda kv: (kv[0] != REFERENCE, kv[0])))


def select(names: str) -> List[Engine]:
    """`all` or a comma-separated list of engine ids."""
    engines = discover()
    wanted = list(engines) if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in engines]
    if unknown or not wanted:
        raise UsageError(f"unknown engine {', '.join(unknown) or repr(names)}; "
                         f"valid: all, {', '.join(engines)}")
    return [engines[n] for n in dict.fromkeys(wanted)]


def skip_reason(engine: Engine, device: str, precision: str) -> Optional[str]:
    """Why this engine cannot run at this device and precision here, before launching it."""
    from coordinator.machine.host import nvidia_gpus

    kind = "cpu" if device == "cpu" else "cuda"
    if kind not in engine.devices:
        hint = " on a machine with an NVIDIA GPU" if kind == "cpu" else ""
        return (f"{engine.name} does not run on {kind} (it runs on: {', '.join(engine.devices)}); "
                f"rerun with --device {engine.devices[0]}{hint}")
    if kind == "cuda" and not nvidia_gpus():
        return "no NVIDIA GPU is visible here (NVML found none); run on a GPU machine or use --device cpu"
    if precision not in engine.precisions:
        return f"{engine.name} does not offer {precision} (it offers: {', '.join(engine.precisions)})"
    return None
