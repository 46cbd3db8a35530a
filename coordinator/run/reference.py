"""The reference every row's parity is judged against: PyTorch at fp32, one input at a time.
Its outputs are the reference row's own when that row runs, else one pass made for them; they
are cached whole, shared by every run of the same model and inputs."""
import shutil
import time
from pathlib import Path
from typing import Any, Optional

from shared import atomic
from shared.result import RunResult
from shared.tensors import load_samples

from coordinator import engines as engine_registry
from coordinator.engines import REFERENCE, Engine
from coordinator.report.parity import tolerance_precision
from coordinator.run.points import Point


class Reference:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.note = ""  # why there is no reference (then no row has parity)

    @property
    def path(self) -> Path:
        return self.ctx.data.reference_path

    def have(self) -> bool:
        """Whether the reference outputs are in the cache whole; damaged ones are made again."""
        return atomic.problem(str(self.path)) is None

    def keep(self, outputs: Path) -> None:
        """Into the cache once, whole: another run may be keeping the same reference now."""
        atomic.ensure(str(self.path), lambda tmp: shutil.copyfile(outputs, tmp),
                      "The cached PyTorch reference outputs", log=self.ctx.log, phase="reference")

    def missing(self, result: RunResult) -> None:
        self.note = f"no parity: the PyTorch reference run ended {result.status}: {result.reason}"
        self.ctx.report.notes.append(self.note)

    def make(self) -> None:
        """The reference outputs when the reference engine is not among the rows (one pass, the
        rows' spec with one call and no warm-up)."""
        ctx = self.ctx
        if ctx.artifact.torch_card is None or self.note:
            return
        ctx.log("Computing the PyTorch reference outputs (once)...")
        t = time.perf_counter()
        torch_engine = engine_registry.discover()[REFERENCE]
        spec = ctx.spec_for(torch_engine, "fp32", Point(), options={}).replace(
            warmup=0, iterations=1, min_time_s=0.0, repeats=1, fault="")
        result = ctx.launchers["host"].run(torch_engine, spec, ctx.run_dir / "logs" / "reference",
                                           ctx.cfg.execution.timeout)
        ctx.phases["reference_s"] += time.perf_counter() - t
        if result.status == "ok" and result.outputs_file:
            self.keep(ctx.run_dir / "logs" / "reference" / result.outputs_file)
        else:
            self.missing(result)

    def parity(self, engine: Engine, precision: str, result: RunResult, io_dir: Path,
               point: Point = Point()) -> Optional[Any]:
        """The row's parity against the reference; None for the reference itself or with no outputs.
        The reference row (fp32, one input at a time: a batched point is compared with it) keeps
        its outputs as the reference when none is cached."""
        outputs = io_dir / result.outputs_file if result.status == "ok" and result.outputs_file else None
        if engine.id == REFERENCE and precision == "fp32" and point == Point() and not self.have():
            if outputs is not None:
                self.keep(outputs)  # this run *is* the reference
            else:
                self.missing(result)
            return None
        if outputs is None:
            return None
        if not self.have():
            self.make()
            if not self.have():
                return None
        family = self.ctx.artifact.family
        return family.compare(load_samples(str(self.path)), load_samples(str(outputs)),
                              tolerance_precision(result.precision or precision, precision))
