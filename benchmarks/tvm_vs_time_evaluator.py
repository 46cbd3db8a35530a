"""TVM in e2e against TVM's own time_evaluator: does the runner reach the engine's speed?

Prepares resnet50 (random weights) and one input, then runs, interleaved, several rounds of
  (a) e2e's real runner process: `python -m shared.entry --runner runners/tvm/runner.py` on a
      spec.json with a fixed iteration count (result.json's latency_ms.p50), untuned
      (tvm.trials=0, the runner's default), and
  (b) the same Relax VM, built by the runner's own `load_impl` on the same spec (the ONNX
      file specialised to the input's shape, its importer fixes, the LLVM target for this CPU
      with num-cores = threads, opt level 3): nothing of the build is copied here, so the two
      sides run one compiled module. After the same warm-up calls,
      `vm.time_evaluator("main", tvm.cpu(), number=1, repeat=<iterations>)(*inputs)` as
      apache-tvm 0.27 defines it (tvm/runtime/vm.py: one call per repeat, so its median is a
      per-call median, as e2e's p50 is; inputs already TVM tensors),
both from the tvm runner's virtualenv with the runner's environment (TVM_NUM_THREADS = threads),
the order swapped every round. Each side builds the module in its own process (the runner
caches no build). Untuned, a resnet50 call takes seconds (3.4 s on 2 threads here): hence 10
timed calls a run by default. Prints each round, the medians, and as its last line the median
of the rounds' ratios. Goal: within +-3%.

What differs by design: the runner makes a TVM tensor of the numpy input and copies the output
back to numpy per call (host copies, timed for every engine); time_evaluator reuses its input
tensors and reads no output back. For resnet50 that is 0.6 MB in and 4 kB out.

    python benchmarks/tvm_vs_time_evaluator.py [--rounds 6] [--iterations 10] [--threads 2]
    python benchmarks/tvm_vs_time_evaluator.py --smoke   # the tiny test model, two short rounds
"""
import importlib.util
import tempfile
from pathlib import Path

import _fidelity

TOOL = "time_evaluator"


def time_evaluator(spec: dict) -> dict:
    """In the tvm environment: the runner's own build of the model, timed by TVM."""
    import tvm

    from shared import RunSpec, load_samples
    from shared.runner import find_runner_class

    module_spec = importlib.util.spec_from_file_location("e2e_tvm_runner", spec["runner"])
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    cls = find_runner_class(module)
    runner = cls(RunSpec.from_dict(spec["run_spec"]))
    runner.options = cls.Options(**runner.spec.engine_options)
    runner.samples = load_samples(runner.spec.inputs_path)
    runner.load_impl()
    vm, dev = runner.vm, tvm.cpu()
    inputs = [tvm.runtime.tensor(runner.samples[0][name], dev) for name in runner.input_names] + list(runner.params)
    for _ in range(max(1, runner.spec.warmup)):
        vm["main"](*inputs)
    measured = vm.time_evaluator("main", dev, number=1, repeat=runner.spec.iterations)(*inputs)
    return {"ms": float(measured.median) * 1e3, "target": runner.settings["target"]}


def main() -> None:
    parser = _fidelity.arguments(__doc__, iterations=10)
    args = parser.parse_args()
    if args.tool:
        return _fidelity.tool_side(time_evaluator, args.tool)
    if args.smoke:
        _fidelity.smoke(args)
    cache = _fidelity.cache_dir()
    python, env, runner = _fidelity.environment("tvm", args.threads, cache)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _fidelity.prepare(args.model, folder, cache)
        last: dict = {}

        def e2e() -> float:
            first = not last
            last.update(_fidelity.e2e_run("tvm", python, env, runner, model.onnx, model, folder, args))
            if first:
                s = last["settings"]
                print(f"tvm: target {s['target']}, pipeline {s['pipeline']}, {s['num_threads']} runtime threads, "
                      f"compiled in {last['stage_seconds'].get('compile', 0):.1f} s", flush=True)
            return last["latency_ms"]["p50"]

        def tool() -> float:
            spec = {"runner": str(runner), "run_spec": _fidelity.run_spec("tvm", model.onnx, model, args).to_dict()}
            return _fidelity.tool_run(__file__, python, env, folder, spec)["ms"]

        got = _fidelity.interleave(args.rounds, [("tvm", e2e, tool)], TOOL)
    _fidelity.summary(got, TOOL)


if __name__ == "__main__":
    main()
