"""`--tune`: each engine at its best, and said so.

An engine declares the options worth searching in its manifest (`tuning:` option -> values).
For each row, bench first runs the engine as every engine runs (the equal-threads row: the fair
comparison), then every combination of the declared values with a short timed loop
(`--tune-time` seconds), and runs the best one again in full as a second row marked `tuned`,
its search (each candidate's options and figure) kept in the row. Options given with `-o` are
not searched: the user fixed them. The best is the lowest p50 in the latency scenario and the
most samples/s in the throughput one.
"""
import itertools
from typing import Any, Dict, List, Optional, Tuple

from shared.result import RunResult

from coordinator.engines import Engine
from coordinator.report.document import Row, Trial

TUNED = "tuned"


def candidates(engine: Engine, fixed: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every combination of the engine's declared values, less the options fixed with -o."""
    space = [(name, values) for name, values in engine.tuning if name not in fixed]
    if not space:
        return []
    names = [name for name, _ in space]
    return [{**fixed, **dict(zip(names, combo))} for combo in itertools.product(*(v for _, v in space))]


def figure(row: Row) -> Optional[float]:
    """What the search maximises: samples/s (throughput) or 1 / p50 (latency); None if not ok."""
    if row.status != "ok" or row.latency_ms is None:
        return None
    return row.throughput_per_s if row.scenario == "throughput" else 1e3 / row.latency_ms.p50


def best(trials: List[Tuple[Dict[str, Any], Row]]) -> Optional[Dict[str, Any]]:
    """The options of the best trial that ran and passed parity (a faster wrong answer is not a
    configuration); None when none did."""
    good = [(figure(r), options) for options, r in trials
            if figure(r) is not None and (r.parity is None or r.parity.passed)]
    return max(good, key=lambda t: t[0])[1] if good else None


def record(trials: List[Tuple[Dict[str, Any], Row]]) -> List[Trial]:
    """The search as the tuned row keeps it: each candidate's options, status and figures."""
    return [Trial(options, r.status, samples_per_s=r.throughput_per_s if r.status == "ok" else None,
                  p50_ms=r.latency_ms.p50 if r.status == "ok" and r.latency_ms else None,
                  parity=r.verdict(), reason=r.reason) for options, r in trials]


def tune(ctx: Any, engine: Engine, precision: str, point: Any, node: Any = None) -> Optional[Row]:
    """Every candidate of the engine's declared options for a short loop, then the best in full,
    as a row marked tuned that keeps the search."""
    trials = []
    for k, options in enumerate(candidates(engine, ctx.cfg.execution.options_for(engine.id))):
        ctx.log(f"  {engine.id:<9} {precision} {point.label()} trying {options}")
        trials.append((options, ctx.run(engine, precision, point, options=options, variant=f"search{k + 1}",
                                        max_time=ctx.cfg.tuning.tune_time, node=node)))
    if not trials:
        return None
    chosen = best(trials)
    if chosen is None:
        row = Row.make(engine, "", precision, RunResult(engine.id, "failed", reason=(
            "no candidate of the search ran and passed parity; see `search`")), point=point)
        row.machine = node.kind if node else ""
    else:
        row = ctx.run(engine, precision, point, options=chosen, variant=TUNED, node=node)
    row.variant, row.search, row.tuned_options = TUNED, record(trials), chosen
    return row
