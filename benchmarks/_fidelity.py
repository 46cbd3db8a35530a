"""What the fidelity scripts (`<engine>_vs_<tool>.py`) share, after openvino_vs_benchmark_app.py:
the model and one input, e2e's real runner process on a spec.json, the engine's own tool run as
a child of the same virtualenv, and the interleaved rounds with their paired ratios.

A script's tool side runs in the engine's environment: the script calls itself there with
`--tool SPEC.json` (`tool_side`), so the tool code sits next to the rest, and writes one JSON
object ({"ms": the tool's median latency, ...}) to the file the spec names.

Triton has no such script: its perf_analyzer comes in tritonclient[all], whose binary needs
glibc >= 2.38 (Debian 12 here has 2.36), so it runs in no environment e2e makes on this host."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import _smoke

sys.path.insert(0, str(_smoke.ROOT))
from shared.stats import median_ci  # noqa: E402

if TYPE_CHECKING:
    from shared import RunSpec

ROOT = _smoke.ROOT


def cache_dir() -> Path:
    return Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")


def arguments(doc: str, iterations: int = 100) -> argparse.ArgumentParser:
    """The flags every fidelity script takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=iterations, help="timed calls per run, on both sides")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up calls per run, on both sides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="resnet50", help="a zoo model (random weights) or package.module:factory")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    parser.add_argument("--tool", type=Path, help=argparse.SUPPRESS)  # the tool side, in the engine's environment
    return parser


def smoke(args: argparse.Namespace) -> None:
    """Two rounds of a few calls on the tiny test model: the whole path, in seconds."""
    args.rounds, args.iterations, args.warmup, args.model = 2, 5, 1, _smoke.TINY
    if hasattr(args, "seconds"):
        args.seconds = 0.2


@dataclass
class Model:
    onnx: Path
    torch_card: Path
    sha256: str
    inputs: Path  # .npz of one sample
    shapes: Dict[str, List[int]]


def prepare(model: str, folder: Path, cache: Path) -> Model:
    """In the coordinator's environment: the model's cached export, and one random input of its
    shape at batch 1 (the export's dynamic dims at 1), saved as e2e saves test inputs."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from coordinator.model import export, zoo as models
    from shared import save_samples

    art = export.prepare(models.resolve(model), "random", 0, 17, cache, log=lambda m: None)
    rng = np.random.default_rng(0)
    sample = {}
    for i in art.info.inputs:
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if any(not isinstance(d, int) for d in i.shape[1:]):
            shape = [1, 3, *(art.info.input_size or (224, 224))]
        sample[i.name] = rng.standard_normal(shape).astype(np.float32)
    save_samples(str(folder / "inputs.npz"), [sample])
    return Model(art.onnx_path, art.torch_card, art.info.sha256, folder / "inputs.npz",
                 {k: list(v.shape) for k, v in sample.items()})


def environment(engine_id: str, threads: int, cache: Path) -> Tuple[str, dict, Path]:
    """(the engine's Python, the environment both sides run in, its runner file): the engine's
    virtualenv (made on first use) through VenvLauncher, or the coordinator's own Python for an
    engine that runs on the host (the PyTorch reference), with what the host launcher adds."""
    sys.path.insert(0, str(ROOT))
    from coordinator.engines import discover
    from coordinator.launchers import VenvLauncher
    from coordinator.launchers.process import protocol_path, runner_env

    engine = discover()[engine_id]
    if VenvLauncher.environment in engine.environments:
        launcher = VenvLauncher(cache)
        launcher.prepare(engine)
        return launcher.python(engine), runner_env(threads, [protocol_path(cache)], engine.env_for(1)), engine.runner_path
    return sys.executable, runner_env(threads, [protocol_path(cache), ROOT], engine.env_for(1)), engine.runner_path


def run_spec(engine_id: str, model_path: Path, model: Model, args: argparse.Namespace,
             options: Optional[dict] = None) -> "RunSpec":
    """The spec of one run, as a bench row's (its engine cache included): fixed counts."""
    from shared import RunSpec

    return RunSpec(engine=engine_id, model_path=str(model_path), inputs_path=str(model.inputs),
                   model_sha256=model.sha256 if model_path == model.onnx else "", threads=args.threads,
                   iterations=args.iterations, min_time_s=0.0, warmup=args.warmup, save_outputs=False,
                   engine_options=options or {}, cache_dir=str(cache_dir() / "engines" / engine_id))


def e2e_run(engine_id: str, python: str, env: dict, runner: Path, model_path: Path, model: Model, folder: Path,
            args: argparse.Namespace, options: Optional[dict] = None) -> dict:
    """One run of the real runner process on `run_spec`; its result.json, which must be ok."""
    from shared.entry import RESULT, SPEC

    io = Path(tempfile.mkdtemp(dir=folder, prefix=f"e2e-{engine_id}-"))
    run_spec(engine_id, model_path, model, args, options).save(str(io / SPEC))
    done = subprocess.run([python, "-m", "shared.entry", "--runner", str(runner), "--io", str(io)],
                          cwd=io, env=env, capture_output=True, text=True)
    result = json.loads((io / RESULT).read_text()) if (io / RESULT).is_file() else {}
    if done.returncode != 0 or result.get("status") != "ok":
        sys.exit(f"the e2e {engine_id} runner failed ({done.returncode}): {result.get('reason')}\n"
                 f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return result


def tool_run(script: str, python: str, env: dict, folder: Path, spec: dict) -> dict:
    """The script's tool side (`--tool`) in the engine's environment; what it wrote."""
    work = Path(tempfile.mkdtemp(dir=folder, prefix="tool-"))
    spec = {**spec, "out": str(work / "tool.json")}
    (work / "spec.json").write_text(json.dumps(spec, default=str))
    done = subprocess.run([python, script, "--tool", str(work / "spec.json")], cwd=work, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not (work / "tool.json").is_file():
        sys.exit(f"the tool side failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads((work / "tool.json").read_text())


def tool_side(run: Callable[[dict], dict], path: Path) -> None:
    """In the engine's environment: run the tool on the spec at `path`, write what it says."""
    spec = json.loads(path.read_text())
    Path(spec["out"]).write_text(json.dumps(run(spec)))


def interleave(rounds: int, pairs: Sequence[Tuple[str, Callable[[], float], Callable[[], float]]],
               tool: str) -> Dict[str, List[Tuple[float, float]]]:
    """`rounds` rounds of (e2e, tool) per named pair, the order within each pair swapped every
    round so that drift on a shared machine hits both alike. Prints each round."""
    got: Dict[str, List[Tuple[float, float]]] = {name: [] for name, _, _ in pairs}
    for i in range(rounds):
        for name, e2e, other in pairs:
            if i % 2 == 0:
                a, b = e2e(), other()
            else:
                b, a = other(), e2e()
            got[name].append((a, b))
            print(f"round {i + 1}: {name}: e2e p50 {a:.3f} ms, {tool} {b:.3f} ms, ratio {a / b:.3f}", flush=True)
    return got


def summary(got: Dict[str, List[Tuple[float, float]]], tool: str) -> None:
    """Per pair the medians over rounds and the median of the rounds' paired ratios (robust to
    a load change mid-run) with its interval; the last line holds every pair's median ratio."""
    ratios = {}
    for name, values in got.items():
        a, b = statistics.median(x for x, _ in values), statistics.median(y for _, y in values)
        paired = [x / y for x, y in values]
        # the distribution-free interval of the median (shared.stats, as e2e's rows): a round's ratio
        # spreads by +-15% on this VM, so six rounds' median is known to about +-5%, not to its digits
        interval = median_ci(sorted(paired))
        shown = f" [{interval[0]:.3f}-{interval[1]:.3f}]" if interval else " [fewer than 6 rounds: no 95% interval]"
        ratios[name] = f"{statistics.median(paired):.3f}{shown}"
        print(f"{name}: medians over {len(values)} rounds: e2e p50 {a:.3f} ms, {tool} {b:.3f} ms; "
              f"ratio of medians {a / b:.3f}")
    print("median of the rounds' ratios e2e / {} [95% interval]: {}".format(
        tool, ", ".join(f"{name} {r}" for name, r in ratios.items())))
