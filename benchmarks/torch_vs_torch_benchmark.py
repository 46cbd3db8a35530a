"""PyTorch, TorchScript and Inductor in e2e against torch.utils.benchmark: do the runners reach
PyTorch's own speed?

Prepares resnet50 (random weights) and one input, then runs, interleaved, several rounds of, for
each of the three engines,
  (a) e2e's real runner process: `python -m shared.entry --runner runners/<engine>/runner.py` on
      a spec.json with a fixed iteration count (result.json's latency_ms.p50), and
  (b) `torch.utils.benchmark.Timer("model(x)", num_threads=<threads>).blocked_autorange()` under
      `torch.inference_mode()` after the same warm-up calls (its median), on the same module:
      - torch: the eager model, built from the export's model card as the runner builds it;
      - torchscript: the runner's own traced and frozen module, loaded from its engine cache
        (`settings.cached_module`);
      - inductor: `torch.compile(model)` with the runner's options and its Inductor cache dir
        (so the compiled kernels are the runner's, found in the FX graph cache),
each pair in its engine's environment (torch: the coordinator's Python, as the host launcher
runs it; torchscript and inductor: their virtualenv) with the runner's environment, the order
within each pair swapped every round. Prints each round, the medians, and as its last line the
median of the rounds' ratios per engine. Goal: within +-3%.

What differs by design: the runners wrap the numpy input (torch.from_numpy, no copy) and copy
the output to a numpy array per call; the Timer calls the module on a tensor. For resnet50 that
is 4 kB out, far below 1% of a call.

    python benchmarks/torch_vs_torch_benchmark.py [--rounds 6] [--iterations 100] [--seconds 5]
        [--engines torch,torchscript,inductor] [--threads 2]
    python benchmarks/torch_vs_torch_benchmark.py --smoke   # the tiny test model, two short rounds
"""
import argparse
import os
import tempfile
from pathlib import Path
from typing import Callable, Tuple

import _fidelity

ENGINES = ("torch", "torchscript", "inductor")
TOOL = "torch.utils.benchmark"


def timer(spec: dict) -> dict:
    """In the engine's environment: the module as the engine runs it, timed by torch.utils.benchmark."""
    import torch
    from torch.utils import benchmark

    from shared import load_samples, torch_model

    torch.set_num_threads(spec["threads"])
    torch.set_num_interop_threads(1)
    x = [torch.from_numpy(a) for a in load_samples(spec["inputs"])[0].values()]
    if spec["engine"] == "torchscript":
        model = torch.jit.load(spec["module"])
    else:
        eager, card = torch_model.build(spec["card"])
        model = torch_model.as_tuple_module(eager, card)
        if spec["engine"] == "inductor":
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = spec["inductor_cache"]  # the runner's: its kernels
            model = torch.compile(model, backend="inductor", dynamic=False, mode="default")
    with torch.inference_mode():
        for _ in range(max(1, spec["warmup"])):  # the first compiles (inductor) or profiles (the JIT)
            model(*x)
        measured = benchmark.Timer("model(*x)", globals={"model": model, "x": x},
                                   num_threads=spec["threads"]).blocked_autorange(min_run_time=spec["seconds"])
    return {"ms": measured.median * 1e3, "runs": len(measured.times), "per_run": measured.number_per_run}


def main() -> None:
    parser = _fidelity.arguments(__doc__)
    parser.add_argument("--engines", default=",".join(ENGINES), help="some of " + ", ".join(ENGINES))
    parser.add_argument("--seconds", type=float, default=5.0, help="blocked_autorange's min_run_time")
    args = parser.parse_args()
    if args.tool:
        return _fidelity.tool_side(timer, args.tool)
    if args.smoke:
        _fidelity.smoke(args)
    cache = _fidelity.cache_dir()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _fidelity.prepare(args.model, folder, cache)
        pairs = []
        for engine in args.engines.split(","):
            python, env, runner = _fidelity.environment(engine, args.threads, cache)
            tool_spec = {"engine": engine, "card": str(model.torch_card), "inputs": str(model.inputs),
                         "threads": args.threads, "warmup": args.warmup, "seconds": args.seconds}
            pairs.append((engine, *_pair(engine, python, env, runner, model, folder, args, tool_spec)))
        got = _fidelity.interleave(args.rounds, pairs, TOOL)
    _fidelity.summary(got, TOOL)


def _pair(engine: str, python: str, env: dict, runner: Path, model: _fidelity.Model, folder: Path,
          args: argparse.Namespace, spec: dict) -> Tuple[Callable[[], float], Callable[[], float]]:
    """(e2e, tool) for one engine. The tool side takes what the e2e run before it found: the
    first round runs e2e first, so the runner has made (or found) the cached module."""
    last: dict = {}

    def e2e() -> float:
        first = not last
        last.update(_fidelity.e2e_run(engine, python, env, runner, model.torch_card, model, folder, args))
        if first:
            s = last["settings"]
            print(f"{engine}: {s.get('mode')}, {s.get('threads')} threads (interop {s.get('interop_threads')})")
        return last["latency_ms"]["p50"]

    def tool() -> float:
        settings = last["settings"]
        if engine == "torchscript":  # the runner's frozen module, as it cached it
            spec["module"] = str(_fidelity.cache_dir() / "engines" / engine / settings["cached_module"].split(" ")[0])
        if engine == "inductor":
            spec["inductor_cache"] = settings["cache_dir"]
        return _fidelity.tool_run(__file__, python, env, folder, spec)["ms"]

    return e2e, tool


if __name__ == "__main__":
    main()
