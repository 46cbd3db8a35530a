"""IREE in e2e against IREE's own iree-benchmark-module: does the runner reach the engine's speed?

Prepares resnet50 (random weights) and one input, then runs, interleaved, several rounds of
  (a) e2e's real runner process: `python -m shared.entry --runner runners/iree/runner.py` on a
      spec.json with a fixed iteration count (result.json's latency_ms.p50), and
  (b) `iree-benchmark-module --device=local-task --module=<the row's .vmfb> --function=main_graph
      --input=@x.npy --task_topology_max_group_count=<threads> --benchmark_min_time=1x
      --benchmark_repetitions=<iterations> --benchmark_format=json`: one call per repetition, so
      the median over repetitions is a per-call median, as e2e's p50 is,
both from the iree runner's virtualenv (the iree-base-runtime wheel ships the tool as a console
script next to iree-compile), with the runner's environment, the order swapped every round.
The .vmfb is the one the runner compiled and cached (its `settings.compiled_model`, in e2e's
engine cache): the same file, flags and CPU target. Prints each round, the medians, and as its
last line the median of the rounds' ratios. Goal: within +-3%.

What differs by design: the runner hands numpy arrays to IREE's Python bindings, which stage the
input on the device and copy the output back per call (e2e times host copies for every engine);
the tool preloads its input once and reads no output back. For resnet50 that is 0.6 MB in and
4 kB out, well under 1% of a call.

    python benchmarks/iree_vs_benchmark_module.py [--rounds 6] [--iterations 100] [--threads 2]
    python benchmarks/iree_vs_benchmark_module.py --smoke   # the tiny test model, two short rounds
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _fidelity

TOOL = "iree-benchmark-module"


def benchmark_module(spec: dict) -> dict:
    """In the iree environment: the tool on the .vmfb; its median real time per call in ms."""
    import numpy as np

    from shared import load_samples

    sample = load_samples(spec["inputs"])[0]
    folder = Path(spec["out"]).parent
    flags = []
    for i, array in enumerate(sample.values()):
        np.save(folder / f"input{i}.npy", array)
        flags.append(f"--input=@{folder / f'input{i}.npy'}")
    tool = Path(sys.executable).parent / TOOL
    argv = [str(tool), "--device=local-task", f"--module={spec['vmfb']}", f"--function={spec['function']}", *flags,
            f"--task_topology_max_group_count={spec['threads']}", "--benchmark_min_time=1x",
            f"--benchmark_min_warmup_time={spec['warmup_s']}", f"--benchmark_repetitions={spec['iterations']}",
            "--benchmark_format=json", "--benchmark_report_aggregates_only=true"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{TOOL} failed ({done.returncode}): {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    report = json.loads(done.stdout[done.stdout.index("{"):])
    median = next(b for b in report["benchmarks"] if b.get("aggregate_name") == "median")
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[median["time_unit"]]
    return {"ms": median["real_time"] * scale, "name": median["name"]}


def main() -> None:
    parser = _fidelity.arguments(__doc__)
    args = parser.parse_args()
    if args.tool:
        return _fidelity.tool_side(benchmark_module, args.tool)
    if args.smoke:
        _fidelity.smoke(args)
    cache = _fidelity.cache_dir()
    python, env, runner = _fidelity.environment("iree", args.threads, cache)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _fidelity.prepare(args.model, folder, cache)
        last: dict = {}

        def e2e() -> float:
            first = not last
            last.update(_fidelity.e2e_run("iree", python, env, runner, model.onnx, model, folder, args))
            if first:
                s = last["settings"]
                print(f"the row's .vmfb: {s['compiled_model']} ({s['conversion']}), function {s['function']}, "
                      f"{s['worker_threads']} IREE worker threads", flush=True)
            return last["latency_ms"]["p50"]

        def tool() -> float:  # the .vmfb of the e2e run before it (the first round runs e2e first)
            spec = {"vmfb": last["settings"]["compiled_model"], "function": last["settings"]["function"],
                    "inputs": str(model.inputs), "threads": args.threads, "iterations": args.iterations,
                    "warmup_s": 0.1 if args.smoke else 1.0}
            return _fidelity.tool_run(__file__, python, env, folder, spec)["ms"]

        got = _fidelity.interleave(args.rounds, [("iree", e2e, tool)], TOOL)
    _fidelity.summary(got, TOOL)


if __name__ == "__main__":
    main()
