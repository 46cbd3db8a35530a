"""The first run on a fresh machine, as a new user meets it: a fresh clone, a fresh virtualenv,
`pip install -e .`, then the README's first command verbatim, from an empty cache.

Prints the wall time split into install (`pip install -e .`), environments (the engine
virtualenvs: the wall time they took, made side by side while the model exported, and the part
the bench waited for them after its export), export (ONNX export and test inputs), rows (the
rest: loading, timing, the report), then the cache's size on disk (`du`, hard links counted
once) with its engine environments apart. Goal on a 2-core machine: environments <= 3 minutes,
the whole first run <= 15 minutes, engine environments <= 10 GB on disk.

    python benchmarks/first_run.py [--engines all] [--keep DIR] [-- extra e2e bench options]
    python benchmarks/first_run.py --engines torch,ort       # a light set
    python benchmarks/first_run.py --smoke   # the tiny model on torch and ort, in this interpreter
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _smoke

COMMAND = ["bench", "--model", "faster_rcnn"]  # the README's first command, with --engines
SMOKE = ["bench", "--model", _smoke.TINY, "--weights", "random", "--rounds-budget", "1", "--slice-time", "0.05"]


def du(*paths: Path) -> int:
    """Bytes on disk, as `du -s` counts them: each hard-linked file once, across all `paths`."""
    there = [str(p) for p in paths if p.exists()]
    if not there:
        return 0
    out = subprocess.run(["du", "-s", "-c", "--block-size=1", *there], capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def install(root: Path, clone: Path) -> tuple:
    """A fresh virtualenv with e2e installed from `clone`: (its e2e, seconds)."""
    start = time.perf_counter()
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-e", str(clone)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"pip install -e . failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return venv / "bin" / "e2e", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="all")
    parser.add_argument("--keep", type=Path, help="work here (clone, venv, cache, run) and keep it")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    parser.add_argument("extra", nargs="*", help="more e2e bench options, after --")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="e2e-first-run-"))
    root.mkdir(parents=True, exist_ok=True)
    clone, cache = root / "e2e", root / "cache"
    for path in (clone, cache):
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(_smoke.ROOT), str(clone)], check=True)
    if args.smoke:  # this interpreter's e2e: no install (its figure is 0), the rest as a user meets it
        e2e, install_s = [sys.executable, "-c", "from coordinator.cli.app import main; main()"], 0.0
        command, env = SMOKE + ["--engines", "torch,ort"], {**_smoke.env(), "PYTHONPATH": str(clone)}
    else:
        binary, install_s = install(root, clone)
        # this environment as a user's shell has it: nothing of this checkout on PYTHONPATH (the clone's
        # own e2e must run, not this one)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        e2e, command = [str(binary)], COMMAND + ["--engines", args.engines]
    env["E2E_CACHE_DIR"] = str(cache)
    start = time.perf_counter()
    done = subprocess.run([*e2e, *command, *args.extra], cwd=clone, capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    (root / "bench.log").write_text(done.stdout + done.stderr)
    reports = sorted(clone.glob("runs/*/report.json"))
    if done.returncode not in (0, 3, 4) or not reports:
        sys.exit(f"e2e bench failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    report = json.loads(reports[-1].read_text())
    phases = report["setup"]["phase_seconds"]
    made = re.search(r"environments: (\d+) made in (\d+) s", done.stdout + done.stderr)
    waited = phases.get("environments_s", 0.0)
    export = phases.get("export_s", 0.0) + phases.get("inputs_s", 0.0)
    rows = total - export - waited
    statuses = [r["status"] for r in report["results"]]
    print(f"command:      e2e {' '.join(command)} (exit {done.returncode}, "
          f"{statuses.count('ok')} of {len(statuses)} rows ok)")
    print(f"install:      {install_s:7.1f} s  " + ("(smoke: this interpreter, nothing installed)" if args.smoke
          else "(fresh virtualenv, pip install -e .)"))
    print(f"environments: {float(made.group(2)) if made else 0.0:7.1f} s  ({made.group(1) if made else 0} made side "
          f"by side with the export; the bench waited {waited:.1f} s for them after it)")
    print(f"export:       {export:7.1f} s  (ONNX export and test inputs)")
    print(f"rows:         {rows:7.1f} s  (loading, timing, the report)")
    print(f"whole run:    {install_s + total:7.1f} s  ({(install_s + total) / 60:.1f} min)")
    venvs = du(cache / "venvs", cache / "uv")
    print(f"cache on disk: {du(cache) / 1e9:.2f} GB (du, hard links counted once), engine environments "
          f"{venvs / 1e9:.2f} GB (venvs/ and uv/), in {root}" + ("" if args.keep else " (removed)"))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
