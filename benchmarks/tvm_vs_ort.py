"""TVM against ONNX Runtime on resnet50: the ratio of their p50 latencies, as e2e measures them.

Runs `e2e bench --model resnet50 --engines ort,tvm` (one run, so both rows see the same
machine state) and prints the TVM/ORT ratio of p50s as its last line. TVM is MetaSchedule-tuned
with `-o tvm.trials=N` first (the issue's budget: at most 10 minutes of tuning; the default N
takes about that on a 2-core CPU); the records are cached, so a second run only measures.
`--trials 0` measures the untuned build.

    python benchmarks/tvm_vs_ort.py [--trials 650] [--timeout 7200] [--launcher venv] [--iterations 10]
    python benchmarks/tvm_vs_ort.py --smoke   # the tiny model, untuned, a few calls
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _smoke

TRIALS = 650  # about 10 minutes of tuning for resnet50 on a 2-core CPU (0.9 s a trial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launcher", default="venv")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--trials", type=int, default=TRIALS, help="MetaSchedule trials; 0: untuned")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds for each row, tuning included")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.model, args.trials, args.warmup, args.iterations = _smoke.TINY, 0, 1, 3
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        done = subprocess.run([sys.executable, "-c", "from coordinator.cli.app import main; main()", "bench",
                               "--model", args.model, "--engines", "ort,tvm", "--weights", "random", "--device", "cpu",
                               "--launcher", args.launcher, "--warmup", str(args.warmup),
                               "--iterations", str(args.iterations), "--timeout", str(args.timeout), "-o", f"tvm.trials={args.trials}",
                               "--out", str(out)], capture_output=True, text=True, env=_smoke.env())
        if done.returncode != 0:
            sys.exit(f"e2e bench failed ({done.returncode}):\n{done.stderr[-2000:]}")
        rows = {r["engine"]: r for r in json.loads((out / "report.json").read_text())["results"]}
    tuning = rows["tvm"]["settings"].get("tuning")
    if tuning:
        print(f"tvm tuning: {tuning['measured']} candidates measured over {tuning['tasks']} kernels in "
              f"{tuning['seconds'] / 60:.1f} min (records {tuning['records']})")
    for engine in ("ort", "tvm"):
        r = rows[engine]
        if r["status"] != "ok":
            sys.exit(f"{engine} did not run: {r['status']}: {r['reason']}")
        print(f"{engine:<4} p50 {r['latency_ms']['p50']:9.2f} ms  CV {r['latency_ms']['cv']:.1%}  settings "
              f"{json.dumps({k: r['settings'][k] for k in sorted(r['settings']) if k != 'input_shapes'})}")
    print(f"tvm / ort p50 = {rows['tvm']['latency_ms']['p50'] / rows['ort']['latency_ms']['p50']:.2f}")


if __name__ == "__main__":
    main()
