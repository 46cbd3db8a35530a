"""MetaSchedule tuning for the TVM runner: TVM's `static_shape_tuning` pipeline with CPU weight
prepacking, its records kept in e2e's cache so a rerun with the same settings does not tune again.

The flow is the one `relax.pipeline.static_shape_tuning_pipeline(cpu_weight_prepack=True)`
documents; it is spelled out here because e2e needs the tuning (cached, measured) apart from
applying the records, and its own builder (see `_build`).
"""
import json
import math
import os
import time
from typing import Any, Dict, List, Tuple

from shared import atomic

RECORDS = "e2e-tuning.json"  # what e2e writes beside MetaSchedule's database once tuning finished


def prepare(mod: Any, target: Any) -> Any:
    """Lower to TIR and mark the weights as free to change layout (the prepacking)."""
    import tvm
    from tvm import relax

    passes = relax.transform
    with target:
        return tvm.transform.Sequential([
            passes.DecomposeOpsForInference(), passes.CanonicalizeBindings(), relax.get_pipeline("zero"),
            passes.AttachAttrLayoutFreeBuffers()])(mod)


def tune(mod: Any, target: Any, work_dir: str, trials: int, per_task: int, population: int,
         workers: int, min_share: float = 0.0) -> Dict[str, Any]:
    """Tune `mod` into `work_dir` unless a finished tuning with the same key is there whole
    (made once however many runs want it, sealed, checked on every read: shared/atomic.py).
    Returns what the report says about it: `records` is hit, miss, or why it was tuned again."""
    stats = {}  # type: Dict[str, Any]

    def run(partial: str) -> None:  # never mistaken for a finished tuning: published whole
        from tvm.s_tir import meta_schedule as ms

        start = time.perf_counter()
        tasks = ms.relax_integration.extract_tasks(mod, target)
        # Kernels of symbolic shape (after NonZero, NMS: a detector's data-dependent tail) cannot be
        # measured: every candidate fails MetaSchedule's DisallowDynamicLoop, and each still took its
        # share of the trials. Opaque ones (extern TIR: scatter, sort, NMS) have nothing to schedule,
        # and one reading a weight crashes MetaSchedule's RewriteLayout ("buffer_index != -1"). Both
        # keep the default schedule; the convolutions, nearly all the FLOPs, are static.
        symbolic = [t for t in tasks if not _static(t.mod)]
        opaque = [t for t in tasks if _static(t.mod) and _opaque(t.mod)]
        static = [t for t in tasks if _static(t.mod) and not _opaque(t.mod)]
        # Each task costs a search round (tens of seconds) however small it is: Faster R-CNN at
        # 480x640 has 207 static kernels, of which 29 hold 99.6% of the FLOPs (its convolutions);
        # the rest (element-wise, resize, reshape) keep the default schedule.
        static, small = _heavy(static, min_share)
        # every task gets its share: a global budget alone lets the scheduler skip tasks entirely
        each = per_task or max(1, math.ceil(trials / max(1, len(static))))
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            static, work_dir=partial, strategy=ms.search_strategy.EvolutionarySearch(
                population_size=population, genetic_num_iters=4 if population >= 512 else 2))
        database = ms.tune_tasks(
            tasks=contexts, task_weights=weights, work_dir=partial, max_trials_global=trials,
            max_trials_per_task=each, num_trials_per_iter=min(each, 64), cost_model="xgb",
            builder=ms.builder.LocalBuilder(f_build=_build(), max_workers=workers),
            runner=ms.runner.LocalRunner())  # one measurement at a time, so kernels do not share cores
        stats.update(trials=trials, trials_per_task=each, population=population, tasks=len(static),
                     symbolic_tasks=len(symbolic), opaque_tasks=len(opaque), small_tasks=len(small),
                     min_task_share=min_share,
                     measured=len(database.get_all_tuning_records()),
                     seconds=round(time.perf_counter() - start, 1))
        with open(os.path.join(partial, RECORDS), "w") as f:
            json.dump(stats, f)

    outcome = atomic.ensure(work_dir, run, "The cached TVM tuning records", log=print, phase="tuning")
    if outcome == "hit":
        with open(os.path.join(work_dir, RECORDS)) as f:
            return dict(json.load(f), records="hit")
    return dict(stats, records="miss" if outcome == "made" else outcome)


def apply(mod: Any, target: Any, work_dir: str) -> Any:
    """Give each kernel its best measured schedule, then split the weights' layout change into
    `main_transform_params`, run once at load time."""
    import tvm
    from tvm import relax

    passes = relax.transform
    with target:
        mod = _split_layout_rewrite(passes.MetaScheduleApplyDatabase(work_dir)(mod))
        return tvm.transform.Sequential([passes.LiftTransformParams(), passes.FoldConstant()])(mod)


def _split_layout_rewrite(mod: Any) -> Any:
    """SplitLayoutRewritePreproc, on the kernels it can take. TVM 0.27's pass visits every
    kernel and stops at an opaque one ("There should be a compute block if there is only one
    subtree under the root": Faster R-CNN's scatter_elements); such a kernel has no layout
    rewrite to split, so it is left out of the pass and put back after it."""
    import tvm
    from tvm import relax

    split = relax.transform.SplitLayoutRewritePreproc()
    opaque = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tvm.tirx.PrimFunc):
            try:
                split(tvm.IRModule({gv: func}))
            except tvm.error.InternalError:
                opaque[gv] = func
    if not opaque:
        return split(mod)
    rest = mod.clone()
    for gv in opaque:
        del rest[gv]
    rest = split(rest)
    for gv, func in opaque.items():
        rest[gv] = func
    return rest


def _heavy(tasks: List[Any], min_share: float) -> Tuple[List[Any], List[Any]]:
    """(tasks worth tuning, the rest): a task whose FLOPs times its number of calls are under
    `min_share` of the whole module's is not. A task whose FLOPs TVM cannot estimate is tuned."""
    from tvm.s_tir.analysis import estimate_tir_flops

    def work(task: Any) -> float:
        try:
            return estimate_tir_flops(task.mod) * float(task.weight)
        except Exception:  # noqa: BLE001 -- TVM raises plain TVMErrors for kernels it cannot count
            return math.inf

    flops = [work(t) for t in tasks]
    total = sum(f for f in flops if math.isfinite(f))
    keep = [not total or f >= min_share * total for f in flops]
    return [t for t, k in zip(tasks, keep) if k], [t for t, k in zip(tasks, keep) if not k]


def _static(kernel: Any) -> bool:
    """Whether every parameter of the task's kernel is a buffer of fixed shape (a kernel of
    symbolic shape takes buffers shaped by variables, and the variables as scalar parameters)."""
    import tvm

    return all(getattr(p, "shape", None) is not None and all(isinstance(d, tvm.tirx.IntImm) for d in p.shape)
               for f in kernel.functions.values() for p in f.params)


def _opaque(kernel: Any) -> bool:
    """Whether the task's kernel is opaque to scheduling (TVM's op pattern kOpaque = 8)."""
    return any(f.attrs is not None and int(f.attrs.get("op_pattern", 0)) == 8 for f in kernel.functions.values())


def _build() -> Any:
    """MetaSchedule's default build, minus its `import tvm.s_tir.tensor_intrin`: that import
    registers every target's intrinsics (CUDA's alone take 28 s here), longer than the builder's
    30 s timeout, in each new worker, so every candidate failed to build. Plain fp32 CPU kernels
    use none of them. A nested function, so cloudpickle ships it to the workers by value."""
    def build(mod: Any, target: Any, _params: Any) -> Any:
        from tvm.driver import build as tvm_build
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

        return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)

    return build
