"""Warm rerun: how much of `e2e bench`'s wall time is the engines' own work?

Runs the same `e2e bench` twice: the first run fills the caches (export, inputs, reference
outputs, environments or images), the second is timed from the outside, as a user sees it.
From the second run's report.json it takes, per engine, what the runner spent loading
(`setup`: importing the engine, reading the inputs; `load`/`convert`/`compile`) and inside
engine calls (`run`: the first inference, the warm-up, the timed loops), and prints

    wall / (load + timed loops)          the issue's definition: warm-up counts as overhead
    wall / (load + every engine call)    warm-up and the first inference count as engine work

the second last, as the script's figure. Goal: <= 1.1.

    python benchmarks/warm_rerun.py [--model resnet50] [--engines torch,ort,openvino] [--launcher venv]
    python benchmarks/warm_rerun.py --smoke   # the tiny model on torch and ort, a few calls
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _smoke


def bench(args: argparse.Namespace, out: Path) -> float:
    argv = [sys.executable, "-c", "from coordinator.cli.app import main; main()", "bench", "--model", args.model,
            "--engines", args.engines, "--launcher", args.launcher, "--weights", args.weights,
            "--warmup", str(args.warmup), "--iterations", str(args.iterations), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=_smoke.env())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"e2e bench failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--engines", default="torch,ort,openvino")
    parser.add_argument("--launcher", default="venv", help="venv, docker or auto")
    parser.add_argument("--weights", default="random", help="as e2e bench (random: no download is tried)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.model, args.engines, args.warmup, args.iterations = _smoke.TINY, "torch,ort", 1, 5

    with tempfile.TemporaryDirectory() as tmp:
        print(f"first run (fills the caches): {bench(args, Path(tmp) / 'cold'):.1f} s")
        wall = bench(args, Path(tmp) / "warm")
        report = json.loads((Path(tmp) / "warm" / "report.json").read_text())

    load = loops = calls = 0.0
    print(f"{'engine':<10} {'status':<8} {'setup s':>8} {'load s':>8} {'loops s':>8} {'calls s':>8}")
    for r in report["results"]:
        st = r["stage_seconds"]
        row_load = st.get("setup", 0) + sum(st.get(k, 0) for k in ("load", "convert", "compile"))
        lat = r["latency_ms"]
        row_loops = lat["mean"] * lat["count"] / 1e3 if lat else 0.0
        load, loops, calls = load + row_load, loops + row_loops, calls + st.get("run", 0)
        print(f"{r['engine']:<10} {r['status']:<8} {st.get('setup', 0):>8.2f} {row_load - st.get('setup', 0):>8.2f} "
              f"{row_loops:>8.2f} {st.get('run', 0):>8.2f}")
    phases = report["setup"]["phase_seconds"]
    print(f"warm rerun wall {wall:.2f} s (export {phases['export_s']:.2f} s, inputs {phases['inputs_s']:.2f} s); "
          f"engines: load {load:.2f} s, timed loops {loops:.2f} s, every engine call {calls:.2f} s")
    print(f"wall / (load + timed loops) = {wall / (load + loops):.3f}")
    print(f"wall / (load + every engine call) = {wall / (load + calls):.3f}")


if __name__ == "__main__":
    main()
