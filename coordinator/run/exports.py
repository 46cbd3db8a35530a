"""What each engine consumes, as its manifest says: the PyTorch model card, or the ONNX export at
an opset it loads (exported once per distinct opset, cached like the first)."""
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from shared.errors import E2EError, one_line

from coordinator.config import BenchConfig
from coordinator.engines import Engine
from coordinator.model import export
from coordinator.report.sections import ModelInfo
from coordinator.run.prepare import Prepared


class Exports:
    def __init__(self, cfg: BenchConfig, prepared: Prepared, log, phases: Dict[str, float]) -> None:
        self.cfg, self.prepared, self.log, self.phases = cfg, prepared, log, phases
        self.others: Dict[int, export.Artifact] = {}  # exports at other opsets, for engines that load only those
        self.lock = threading.Lock()  # fleet rows start side by side: one export at a time

    def model_for(self, engine: Engine) -> Tuple[Path, Optional[ModelInfo], str]:
        """The model file the engine loads, its description, and what the row says of its input."""
        artifact, source = self.prepared.artifact, self.prepared.source
        if engine.consumes == "torch":
            assert artifact.torch_card is not None  # else the row was skipped
            return artifact.torch_card, None, "the PyTorch model"
        opset = engine.opset_for(self.cfg.model.opset)
        if opset == artifact.info.opset or source.onnx_path is not None:
            return artifact.onnx_path, artifact.info, f"ONNX opset {artifact.info.opset}"
        with self.lock:
            if opset not in self.others:
                self.others[opset] = self._export(engine, opset)
        low, high = engine.opsets
        chosen = self.others[opset]
        return chosen.onnx_path, chosen.info, f"ONNX opset {opset} (its own export: {engine.name} loads opsets {low}-{high})"

    def _export(self, engine: Engine, opset: int) -> export.Artifact:
        t = time.perf_counter()
        try:
            model = self.cfg.model
            return export.prepare(self.prepared.source, model.weights, model.seed, opset, self.cfg.execution.cache_dir,
                                  log=self.log)
        except E2EError:
            raise
        except Exception as e:
            raise E2EError(f"the export at opset {opset} ({engine.name} loads opsets {engine.opsets[0]}-"
                           f"{engine.opsets[1]}) failed: {type(e).__name__}: {one_line(e)}") from None
        finally:
            self.phases["export_s"] += time.perf_counter() - t
