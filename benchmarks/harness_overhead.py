"""Harness overhead: does e2e's timed loop cost anything on top of the engine call?

In one process and one run, for a tiny model (where overhead would show) and resnet50, it
times a bare loop around `session.run` and e2e's own timed loop (`shared.timing.measure` over
the ORT runner's `infer_impl`, exactly what a bench row measures), call by call in alternating
order so that drift hits both alike. Prints each ratio of medians, the worst last. Goal: <= 1.01.

    python benchmarks/harness_overhead.py [--blocks 10] [--calls 50]   # blocks x calls samples each
    python benchmarks/harness_overhead.py --smoke                      # the tiny model, a few calls

It runs in the ort runner's virtualenv (made on first use), as the runner itself does.
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _smoke

ROOT = Path(__file__).resolve().parents[1]


def prepare_models(folder: Path, smoke: bool = False) -> dict:
    """In the coordinator's environment: the two ONNX files and their inputs (the tiny one alone
    with `smoke`)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    sys.path.insert(0, str(ROOT))
    from coordinator.model import export, zoo as models
    from shared import save_samples

    w = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor("w", TensorProto.FLOAT, [64, 64], w.ravel().tolist())])
    tiny = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    tiny.ir_version = 8
    onnx.save(tiny, str(folder / "tiny.onnx"))
    save_samples(str(folder / "tiny.npz"), [{"x": np.ones((1, 64), np.float32)}])
    if smoke:
        return {"tiny": (folder / "tiny.onnx", folder / "tiny.npz")}
    cache = Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")
    resnet = export.prepare(models.resolve("resnet50"), "random", 0, 17, cache, log=lambda m: None)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    save_samples(str(folder / "resnet50.npz"), [{"input": x}])
    return {"tiny": (folder / "tiny.onnx", folder / "tiny.npz"),
            "resnet50": (resnet.onnx_path, folder / "resnet50.npz")}


def measure_overhead(model: str, inputs: str, blocks: int, calls: int, threads: int) -> float:
    """In the ort environment: ratio of e2e's median latency to the bare loop's."""
    from shared import RunSpec
    from shared.timing import measure

    spec_ = importlib.util.spec_from_file_location("ort_runner", ROOT / "runners" / "ort" / "runner.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    runner = module.OrtRunner(RunSpec(engine="ort", model_path=model, inputs_path=inputs, threads=threads))
    runner.options = runner.Options()  # the runner's own defaults, as Runner.run parses them (none given)
    runner.load_impl()
    from shared import load_samples

    samples = load_samples(inputs)
    # The bare loop makes exactly the runner's engine call (naming the outputs is faster than None).
    session, names, feeds = runner.session, runner.output_names, samples[0]
    clock = time.perf_counter
    for _ in range(calls):  # warm-up
        session.run(names, feeds)
    bare, harness = [], []

    def bare_call() -> None:
        t0 = clock()
        out = session.run(names, feeds)
        t1 = clock()
        del out  # as e2e's loop: the outputs are freed after the clock stops
        bare.append((t1 - t0) * 1e3)

    def harness_call() -> None:
        harness.extend(measure(runner.infer_impl, samples, 1))

    # Call by call, the order swapped every time: drift and thread-pool state hit both alike.
    for i in range(blocks * calls):
        first, second = (bare_call, harness_call) if i % 2 else (harness_call, bare_call)
        first()
        second()
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"{Path(inputs).stem}: bare median {b:.4f} ms, e2e median {h:.4f} ms, ratio {h / b:.4f}", flush=True)
    return h / b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=2, action="append", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke and not args.child:
        args.blocks, args.calls = 2, 5
    if args.child:  # inside the ort environment
        ratios = [measure_overhead(m, i, args.blocks, args.calls, args.threads) for m, i in args.child]
        print(f"harness overhead (worst ratio of medians, e2e / bare): {max(ratios):.4f}")
        return
    sys.path.insert(0, str(ROOT))
    from coordinator.engines import discover
    from coordinator.launchers import VenvLauncher
    from coordinator.launchers.process import protocol_path

    cache = Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")
    launcher = VenvLauncher(cache)
    engine = discover()["ort"]
    launcher.prepare(engine)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = prepare_models(Path(tmp), args.smoke)
        argv = [launcher.python(engine), __file__, "--blocks", str(args.blocks), "--calls", str(args.calls),
                "--threads", str(args.threads)]
        for model, inputs in pairs.values():
            argv += ["--child", str(model), str(inputs)]
        env = {**os.environ, "PYTHONPATH": str(protocol_path(cache))}
        sys.exit(subprocess.run(argv, env=env).returncode)


if __name__ == "__main__":
    main()
