"""OpenVINO's throughput in e2e against `benchmark_app -hint throughput`: does the throughput
scenario reach the engine's own figure?

Prepares resnet50 (random weights) and one input, then runs, interleaved, several rounds of
  (a) e2e's real runner process (`python -m shared.entry --runner runners/openvino/runner.py`) on
      a spec.json with scenario "throughput" and concurrency 0 (the engine's choice: the THROUGHPUT
      hint's streams, OPTIMAL_NUMBER_OF_INFER_REQUESTS requests in an AsyncInferQueue) for T
      seconds: result.json's throughput_per_s, and
  (b) `benchmark_app -m model.onnx -d CPU -hint throughput -shape [B,3,224,224]
      -infer_precision f32 -ip f32 -t T`: the throughput of its JSON report (benchmark_app takes
      no -nthreads with a hint: it uses the machine's cores, so --threads defaults to them),
both from the openvino runner's virtualenv with the runner's environment, the order swapped every
round so that drift on a shared machine hits both alike. Prints each round with the streams and
requests each used and the load average, then, as its last line, the median of the rounds'
ratios (e2e over benchmark_app; robust to a load change mid-run). Goal: within 5% of 1.

    python benchmarks/openvino_throughput_vs_benchmark_app.py [--rounds 4] [--seconds 15] [--batch 1]
    python benchmarks/openvino_throughput_vs_benchmark_app.py --smoke   # two 1 s rounds
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

import _smoke

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.openvino_vs_benchmark_app import prepare  # noqa: E402  (the same model and input)


def e2e_throughput(python: str, env: dict, model: Path, folder: Path, args: argparse.Namespace) -> Tuple[float, str]:
    """One run of the real runner process in the throughput scenario: samples/s and its settings."""
    from shared import RunSpec
    from shared.entry import RESULT, SPEC

    io = Path(tempfile.mkdtemp(dir=folder, prefix="e2e-"))
    RunSpec(engine="openvino", model_path=str(model), inputs_path=str(folder / "inputs.npz"), threads=args.threads,
            scenario="throughput", concurrency=0, batch_size=args.batch, iterations=None, min_time_s=args.seconds,
            max_time_s=args.seconds, warmup=5, save_outputs=False, cache_dir=str(folder / "cache")).save(str(io / SPEC))
    done = subprocess.run([python, "-m", "shared.entry", "--runner", str(ROOT / "runners" / "openvino" / "runner.py"),
                           "--io", str(io)], cwd=io, env=env, capture_output=True, text=True)
    result = json.loads((io / RESULT).read_text()) if (io / RESULT).is_file() else {}
    if done.returncode != 0 or result.get("status") != "ok":
        sys.exit(f"the e2e runner failed ({done.returncode}): {result.get('reason')}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    s = result["settings"]
    return float(result["throughput_per_s"]), f"{s['num_streams']} streams, {s['requests_in_flight']} requests"


def benchmark_app_throughput(tool: str, env: dict, model: Path, folder: Path, args: argparse.Namespace) -> Tuple[float, str]:
    """One run of benchmark_app with the THROUGHPUT hint: its samples/s, and its streams and requests."""
    report = Path(tempfile.mkdtemp(dir=folder, prefix="ba-"))
    argv = [tool, "-m", str(model), "-d", "CPU", "-hint", "throughput",
            "-shape", f"[{args.batch},3,224,224]", "-t", str(args.seconds), "-infer_precision", "f32", "-ip", "f32",
            "-report_type", "no_counters", "-report_folder", str(report), "-json_stats"]
    done = subprocess.run(argv, cwd=report, env=env, capture_output=True, text=True)
    path = report / "benchmark_report.json"
    if done.returncode != 0 or not path.is_file():
        sys.exit(f"benchmark_app failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    streams = next((line.split(":")[-1].strip() for line in done.stdout.splitlines() if "NUM_STREAMS" in line), "?")
    nireq = next((line.split(":")[-1].strip() for line in done.stdout.splitlines()
                  if "OPTIMAL_NUMBER_OF_INFER_REQUESTS" in line), "?")
    return float(json.loads(path.read_text())["execution_results"]["throughput"]), f"{streams} streams, {nireq} requests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=15, help="timed seconds per run, both tools")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="e2e's budget; benchmark_app always uses the machine's cores with a hint")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 2, 1
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
    tool_fps: List[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = prepare(folder, cache)
        if args.batch > 1:  # the runner stacks the test inputs B at a time itself
            from shared import load_samples, save_samples

            save_samples(str(folder / "inputs.npz"), load_samples(str(folder / "inputs.npz")) * args.batch)
        for i in range(args.rounds):
            runs = [("e2e", e2e, e2e_throughput), ("benchmark_app", tool_fps, benchmark_app_throughput)]
            how = {}
            for name, values, run in runs if i % 2 == 0 else runs[::-1]:
                value, how[name] = run(python if run is e2e_throughput else tool, env, model, folder, args)
                values.append(value)
            load = os.getloadavg()[0]
            print(f"round {i + 1}: e2e {e2e[-1]:.2f} samples/s ({how['e2e']}), benchmark_app {tool_fps[-1]:.2f} "
                  f"samples/s ({how['benchmark_app']}), ratio {e2e[-1] / tool_fps[-1]:.3f}; load average "
                  f"{load:.1f} on {os.cpu_count()} CPUs", flush=True)
    paired = statistics.median(x / y for x, y in zip(e2e, tool_fps))
    print(f"medians over {args.rounds} rounds: e2e {statistics.median(e2e):.2f} samples/s, benchmark_app "
          f"{statistics.median(tool_fps):.2f} samples/s (batch {args.batch}, {args.threads} threads)")
    print(f"e2e openvino throughput / benchmark_app -hint throughput (median of the rounds' ratios): {paired:.3f}")


if __name__ == "__main__":
    main()
