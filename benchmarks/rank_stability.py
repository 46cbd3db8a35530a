"""Rank stability: do two runs of the same `e2e bench` agree on how the engines compare?

Runs the same bench twice, back to back (resnet50 on the CPU engines, default options), and
prints, per engine, its speed-up over torch in each run with run 1's 95% interval, whether that
interval covers run 2's figure, and, as its last line, the largest |ratio2 / ratio1 - 1|.
Goal on a 2-core shared VM: every ratio within +-3% between the runs, every interval covering.

    python benchmarks/rank_stability.py [--schedule interleaved|sequential] [--model resnet50]
                                        [--engines torch,ort,...] [--keep DIR] [-- extra e2e bench options]
    python benchmarks/rank_stability.py --smoke   # the tiny model on torch and ort, a short budget

Interleaved runs give each engine's paired ratio and its interval over rounds. A sequential
run has no paired ratio: the ratio of the two p50s, its interval from theirs (reference low /
row high to reference high / row low).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import _smoke

ENGINES = "torch,ort,openvino,torchscript,mnn,ncnn,litert,inductor"
Figure = Tuple[float, float, float]  # speed-up over torch, and its interval


def bench(args: argparse.Namespace, out: Path) -> float:
    argv = [sys.executable, "-c", "from coordinator.cli.app import main; main()", "bench", "--model", args.model,
            "--engines", args.engines, "--weights", "random", "--schedule", args.schedule, "--out", str(out),
            *args.extra]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=_smoke.env())
    if done.returncode != 0:
        sys.exit(f"e2e bench failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def figures(report: dict) -> Dict[str, Figure]:
    """Each ok row's speed-up over torch with its interval."""
    rows = {r["engine"]: r for r in report["results"] if r["status"] == "ok" and r["latency_ms"]}
    out: Dict[str, Figure] = {}
    ref = rows.get("torch")
    for engine, r in rows.items():
        rounds = r.get("rounds")
        if rounds and rounds.get("vs_reference"):
            e = rounds["vs_reference"]
            out[engine] = (e["value"], e["low"], e["high"])
        elif ref is not None:
            a, b = ref["latency_ms"], r["latency_ms"]
            lo_a, hi_a = a["p50_ci95"] or [a["p50"]] * 2
            lo_b, hi_b = b["p50_ci95"] or [b["p50"]] * 2
            out[engine] = (a["p50"] / b["p50"], lo_a / hi_b, hi_a / lo_b)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedule", default="interleaved", choices=("interleaved", "sequential"))
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--engines", default=ENGINES)
    parser.add_argument("--keep", type=Path, help="keep the two run directories here (default: removed)")
    parser.add_argument("extra", nargs="*", help="more `e2e bench` options, after --")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.model, args.engines = _smoke.TINY, "torch,ort"
        args.extra += ["--rounds-budget", "1", "--slice-time", "0.05"]
    runs, walls = [], []
    with tempfile.TemporaryDirectory(prefix="e2e-rank-") as tmp:
        root = args.keep or Path(tmp)
        for k in (1, 2):
            walls.append(bench(args, root / f"run{k}"))
            runs.append(figures(json.loads((root / f"run{k}" / "report.json").read_text())))
    one, two = runs
    print(f"{args.model}, --schedule {args.schedule}: run 1 {walls[0]:.0f} s, run 2 {walls[1]:.0f} s")
    compare(one, two)


def compare(one: Dict[str, Figure], two: Dict[str, Figure]) -> None:
    """Each engine's speed-up over torch in both runs, whether each run's interval covers the
    other's figure, and, last, the largest change."""
    print(f"{'engine':<12} {'run 1 vs torch [95%]':<26} {'run 2 vs torch [95%]':<26} {'covers':<7} ratio2/ratio1")
    worst: Optional[float] = None
    for engine in sorted(set(one) & set(two) - {"torch"}):
        (a, a_lo, a_hi), (b, b_lo, b_hi) = one[engine], two[engine]
        change = b / a - 1
        worst = abs(change) if worst is None else max(worst, abs(change))
        covers = "yes" if a_lo <= b <= a_hi and b_lo <= a <= b_hi else "NO"
        print(f"{engine:<12} {a:6.3f}x [{a_lo:.3f}–{a_hi:.3f}]{'':<4} {b:6.3f}x [{b_lo:.3f}–{b_hi:.3f}]{'':<4} "
              f"{covers:<7} {change:+.2%}")
    missing = sorted(set(one) ^ set(two))
    if missing:
        print(f"ok in one run only: {', '.join(missing)}")
    print(f"largest |ratio2/ratio1 - 1|: {worst:.2%}" if worst is not None else "no engine to compare")

if __name__ == "__main__":
    main()
