"""The main job as a user runs it: `e2e bench --model faster_rcnn --engines all`, verbatim, from a
fresh working directory, timed from the outside.

With warm environments (the export, the engine environments or images made once): when the
first run had to make any of them, it is run again and the second run is the figure. Prints
each row with its median, the median's 95% interval and why its loop stopped, then, last, the
wall time. With --twice, the warm run is made twice and each row's speed-up over torch (paired
within rounds) is compared between the two, the largest change last. Goal on a 2-core machine
(issue 26): each warm run <= 8 minutes, every ratio within +-3% between the runs.

    python benchmarks/main_job.py [--twice] [--keep DIR] [-- extra e2e bench options]
    python benchmarks/main_job.py --smoke     # the tiny model on torch and ort, a short budget
"""
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import _smoke
from rank_stability import compare, figures

COMMAND = ["bench", "--model", "faster_rcnn", "--engines", "all"]  # the README's first command
COLD_S = 15.0  # seconds of export or environment making that say a run was not warm (a warm run without
# network still spends ~6 s importing torch and failing to download the pretrained weights)


SMOKE = ["bench", "--model", _smoke.TINY, "--engines", "torch,ort", "--weights", "random", "--rounds-budget", "1",
         "--slice-time", "0.05"]


def run(command: list, extra: list, keep: Optional[Path] = None) -> tuple:
    """One run in a fresh working directory: (wall seconds, report.json as a dict, exit code); its
    run folder is copied under `keep` when given."""
    beside = Path(sys.executable).parent / "e2e"  # this interpreter's environment, activated or not
    e2e = str(beside) if beside.is_file() else shutil.which("e2e") or sys.exit("e2e is not installed: pip install -e .")
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        code = subprocess.run([e2e, *command, *extra], cwd=cwd, stdout=subprocess.DEVNULL, env=_smoke.env()).returncode
        wall = time.perf_counter() - start
        reports = list(Path(cwd).glob("runs/*/report.json"))
        if not reports:
            sys.exit(f"e2e bench exited {code} without a report")
        if keep is not None:
            shutil.copytree(reports[0].parent, keep / reports[0].parent.name, dirs_exist_ok=True)
        return wall, json.loads(reports[0].read_text()), code


def main() -> None:
    args = sys.argv[1:]
    twice = "--twice" in args
    args = [a for a in args if a != "--twice"]
    keep = None
    if "--keep" in args:
        at = args.index("--keep")
        if at + 1 >= len(args):
            sys.exit("--keep needs a folder")
        keep = Path(args[at + 1]).resolve()
        keep.mkdir(parents=True, exist_ok=True)
        del args[at:at + 2]
    smoke = args[:1] == ["--smoke"]
    command = SMOKE if smoke else COMMAND
    extra = args[1:] if args[:1] in (["--"], ["--smoke"]) else args
    wall, report, code = run(command, extra, keep)
    phases = report["setup"]["phase_seconds"]
    if phases["export_s"] > COLD_S or phases["environments_s"] > COLD_S:
        print(f"first run was cold (export {phases['export_s']:.0f} s, environments "
              f"{phases['environments_s']:.0f} s, wall {wall:.0f} s): running again", flush=True)
        wall, report, code = run(command, extra, keep)
    show(report, wall, code)
    if twice:
        wall2, report2, code2 = run(command, extra, keep)
        show(report2, wall2, code2)
        compare(figures(report), figures(report2))


def show(report: dict, wall: float, code: int) -> None:
    ratios = figures(report)
    for r in report["results"]:
        lat, m = r["latency_ms"], r["measurement"]
        if lat is None:
            print(f"{r['engine']:<9} {r['status']:<11} {r['reason'][:100]}")
            continue
        ci = lat["p50_ci95"]
        half = (ci[1] - ci[0]) / 2 / lat["p50"] if ci else None
        imprecise = bool(m["target_ci"]) and (half is None or half > m["target_ci"])
        flags = " ".join(f for f, on in (("NOISY", r["noisy"]), ("IMPRECISE", imprecise)) if on)
        interval = f"±{half:.1%} (95% CI {ci[0]:.1f}..{ci[1]:.1f})" if ci else "±? (too few calls)"
        ratio = ratios.get(r["engine"])
        vs = f"  vs torch {ratio[0]:.3f}x [{ratio[1]:.3f}-{ratio[2]:.3f}]" if ratio and r["engine"] != "torch" else ""
        print(f"{r['engine']:<9} {r['status']:<11} p50 {lat['p50']:9.1f} ms {interval}  "
              f"{lat['count']} calls in {m['timed_s']:.1f} s, {m['stop']} {flags}{vs}")
    print(f"exit status {code}")
    print(f"main job wall time: {wall:.0f} s ({wall / 60:.1f} min; goal <= 8 min)")


if __name__ == "__main__":
    main()
