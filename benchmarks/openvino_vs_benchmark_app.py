"""OpenVINO in e2e against OpenVINO's own benchmark_app: does the runner reach the engine's speed?

Prepares resnet50 (random weights) and one input, then runs, interleaved, several rounds of
  (a) e2e's real runner process: `python -m shared.entry --runner runners/openvino/runner.py`
      on a spec.json with a fixed iteration count (result.json's latency_ms.p50), and
  (b) `benchmark_app -m model.onnx -d CPU -hint none -nstreams 1 -nthreads 2 -nireq 1 -api sync
      -shape [1,3,224,224] -infer_precision f32 -ip f32 -t T` (its median latency, from its JSON
      report),
both from the openvino runner's virtualenv (made on first use) with the runner's environment, the
order swapped every round so that drift on a shared machine hits both alike. Prints each round,
then the median of the rounds' ratios (robust to a load change mid-run) and, as its last line,
the ratio of the medians over rounds. Goal: <= 1.03. `--runner FILE` measures another version.

    python benchmarks/openvino_vs_benchmark_app.py [--rounds 6] [--iterations 100] [--threads 2]
    python benchmarks/openvino_vs_benchmark_app.py --smoke   # two short rounds

`-ip f32`: without it benchmark_app feeds image inputs as u8 (a Convert it adds in front of the
graph), so the two would not run the same model; e2e feeds the model's own f32 input.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import _smoke

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (1, 3, 224, 224)


def prepare(folder: Path, cache: Path) -> Path:
    """In the coordinator's environment: resnet50's ONNX file (cached export) and one input."""
    import numpy as np

    from coordinator.model import export, zoo as models
    from shared import save_samples

    resnet = export.prepare(models.resolve("resnet50"), "random", 0, 17, cache, log=lambda m: None)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    save_samples(str(folder / "inputs.npz"), [{"input": x}])
    return Path(resnet.onnx_path)


def e2e_p50(python: str, env: dict, model: Path, folder: Path, args: argparse.Namespace) -> float:
    """One run of the real runner process, as a bench row runs it; its p50 in ms."""
    from shared import RunSpec
    from shared.entry import RESULT, SPEC

    io = Path(tempfile.mkdtemp(dir=folder, prefix="e2e-"))
    RunSpec(engine="openvino", model_path=str(model), inputs_path=str(folder / "inputs.npz"), threads=args.threads,
            iterations=args.iterations, min_time_s=0.0, warmup=args.warmup, save_outputs=False,
            cache_dir=str(folder / "cache")).save(str(io / SPEC))
    done = subprocess.run([python, "-m", "shared.entry", "--runner", str(args.runner), "--io", str(io)],
                          cwd=io, env=env, capture_output=True, text=True)
    result = json.loads((io / RESULT).read_text()) if (io / RESULT).is_file() else {}
    if done.returncode != 0 or result.get("status") != "ok":
        sys.exit(f"the e2e runner failed ({done.returncode}): {result.get('reason')}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(result["latency_ms"]["p50"])


def benchmark_app_median(tool: str, env: dict, model: Path, folder: Path, args: argparse.Namespace) -> float:
    """One run of benchmark_app; the median latency of its JSON report in ms."""
    report = Path(tempfile.mkdtemp(dir=folder, prefix="ba-"))
    argv = [tool, "-m", str(model), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads", str(args.threads),
            "-nireq", "1", "-api", "sync", "-shape", "[{}]".format(",".join(map(str, SHAPE))), "-t", str(args.seconds),
            "-report_type", "no_counters", "-report_folder", str(report), "-json_stats"]
    argv += ["-infer_precision", "f32"]  # as e2e sets it: on CPUs with bf16 the plugin's default is bf16
    if not args.u8:
        argv += ["-ip", "f32"]
    done = subprocess.run(argv, cwd=report, env=env, capture_output=True, text=True)
    path = report / "benchmark_report.json"
    if done.returncode != 0 or not path.is_file():
        sys.exit(f"benchmark_app failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(json.loads(path.read_text())["execution_results"]["latency (ms)"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=100, help="e2e timed calls per run")
    parser.add_argument("--warmup", type=int, default=5, help="e2e warm-up calls per run")
    parser.add_argument("--seconds", type=int, default=10, help="benchmark_app -t")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runner", type=Path, default=ROOT / "runners" / "openvino" / "runner.py",
                        help="the runner file to measure (another version of it, to compare)")
    parser.add_argument("--u8", action="store_true", help="let benchmark_app feed u8 (its default), not f32")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.iterations, args.warmup, args.seconds = 2, 5, 1, 1
    sys.path.insert(0, str(ROOT))
    from coordinator.engines import discover
    from coordinator.launchers import VenvLauncher
    from coordinator.launchers.process import protocol_path, runner_env

    cache = Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")
    launcher = VenvLauncher(cache)
    engine = discover()["openvino"]
    launcher.prepare(engine)
    python = launcher.python(engine)
    tool = str(Path(python).parent / "benchmark_app")
    env = runner_env(args.threads, [protocol_path(cache)])  # the same environment for both
    e2e: List[float] = []
    tool_ms: List[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = prepare(folder, cache)
        for i in range(args.rounds):
            runs = [("e2e", e2e, e2e_p50), ("benchmark_app", tool_ms, benchmark_app_median)]
            for _name, values, run in runs if i % 2 == 0 else runs[::-1]:
                values.append(run(python if run is e2e_p50 else tool, env, model, folder, args))
            print(f"round {i + 1}: e2e p50 {e2e[-1]:.2f} ms, benchmark_app median {tool_ms[-1]:.2f} ms, "
                  f"ratio {e2e[-1] / tool_ms[-1]:.3f}", flush=True)
    a, b = statistics.median(e2e), statistics.median(tool_ms)
    paired = statistics.median(x / y for x, y in zip(e2e, tool_ms))  # robust to a load change mid-run
    print(f"medians over {args.rounds} rounds: e2e p50 {a:.2f} ms, benchmark_app {b:.2f} ms; "
          f"median of the rounds' ratios {paired:.3f}")
    print(f"e2e openvino p50 / benchmark_app median: {a / b:.3f}")


if __name__ == "__main__":
    main()
