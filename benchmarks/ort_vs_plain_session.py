"""ONNX Runtime in e2e against the ten lines a user would write: does the runner reach ORT's speed?

Prepares resnet50 (random weights) and one input, then runs, interleaved, several rounds of
  (a) e2e's real runner process: `python -m shared.entry --runner runners/ort/runner.py` on a
      spec.json with a fixed iteration count (result.json's latency_ms.p50), and
  (b) a plain `onnxruntime.InferenceSession` on the same ONNX file with the session options the
      runner sets by default (intra-op threads = the budget, inter-op 1, sequential, all graph
      optimisations, the CPU execution provider), warmed up, then `session.run(None, feeds)` timed
      call by call with perf_counter (the median),
both from the ort runner's virtualenv with the runner's environment, the order swapped every
round. Prints each round, the medians, and as its last line the median of the rounds' ratios.
Goal: within +-3%.

ORT's own onnxruntime_perf_test is not in the pip wheel (it comes with a source build), so the
user's own loop is the reference.

    python benchmarks/ort_vs_plain_session.py [--rounds 6] [--iterations 100] [--threads 2]
    python benchmarks/ort_vs_plain_session.py --smoke   # the tiny test model, two short rounds
"""
import tempfile
from pathlib import Path

import _fidelity

TOOL = "plain InferenceSession"


def plain_session(spec: dict) -> dict:
    """In the ort environment: what a user writes to time ORT. Median ms per call."""
    import statistics
    import time

    import onnxruntime as ort

    from shared import load_samples

    feeds = load_samples(spec["inputs"])[0]
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(spec["model"], options, providers=["CPUExecutionProvider"])
    for _ in range(spec["warmup"]):
        session.run(None, feeds)
    times = []
    while len(times) < spec["iterations"]:
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return {"ms": statistics.median(times), "providers": session.get_providers()}


def main() -> None:
    parser = _fidelity.arguments(__doc__)
    args = parser.parse_args()
    if args.tool:
        return _fidelity.tool_side(plain_session, args.tool)
    if args.smoke:
        _fidelity.smoke(args)
    cache = _fidelity.cache_dir()
    python, env, runner = _fidelity.environment("ort", args.threads, cache)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _fidelity.prepare(args.model, folder, cache)
        tool_spec = {"model": str(model.onnx), "inputs": str(model.inputs), "threads": args.threads,
                     "iterations": args.iterations, "warmup": args.warmup}

        def e2e() -> float:
            return _fidelity.e2e_run("ort", python, env, runner, model.onnx, model, folder, args)["latency_ms"]["p50"]

        def tool() -> float:
            return _fidelity.tool_run(__file__, python, env, folder, tool_spec)["ms"]

        got = _fidelity.interleave(args.rounds, [("ort", e2e, tool)], TOOL)
    _fidelity.summary(got, TOOL)


if __name__ == "__main__":
    main()
