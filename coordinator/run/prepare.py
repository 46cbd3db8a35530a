"""What a run prepares before any row: the model resolved and exported once, its test inputs
(and calibration inputs), checked in the order that fails fastest."""
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from coordinator.config import BenchConfig
from coordinator.model import dataset, export, testdata, zoo as models


@dataclass
class Prepared:
    """The export and the inputs every row of the run shares."""

    source: models.ModelSource
    artifact: export.Artifact
    data: testdata.TestData
    calibration: Optional[testdata.TestData]

    @property
    def calibration_path(self) -> Optional[str]:
        return str(self.calibration.inputs_path) if self.calibration else None


def prepare(cfg: BenchConfig, console: Any, log: Any, phases: Dict[str, float]) -> Prepared:
    """Resolve and export the model, then make the test inputs; `phases` gets the seconds of each."""
    source = models.resolve(cfg.model, cfg.input_size, cfg.inputs, cfg.exporter)
    labelled = dataset.load(cfg.dataset, cfg.limit) if cfg.dataset else None
    for option, folder in (("--images", cfg.images), ("--calibration", cfg.calibration)):
        if folder is not None:  # a bad folder fails before the (slow) export
            testdata.image_files(folder, option)
    t = time.perf_counter()
    with console.status(f"[bold]{source.name}[/]: export to ONNX (cached after the first run)..."):
        artifact = export.prepare(source, cfg.weights, cfg.seed, cfg.opset, cfg.cache_dir, log=log)
    phases["export_s"] = time.perf_counter() - t
    t = time.perf_counter()
    size = input_size(source, artifact, cfg)
    with console.status("test inputs..."):
        data = testdata.prepare(artifact, cfg.images, size, cfg.cache_dir, labelled, device=cfg.device or "cpu",
                                log=log)
        calibration = testdata.prepare(artifact, cfg.calibration, size, cfg.cache_dir, log=log) \
            if cfg.calibration else None
    phases["inputs_s"] = time.perf_counter() - t
    return Prepared(source, artifact, data, calibration)


def input_size(source: models.ModelSource, artifact: export.Artifact, cfg: BenchConfig) -> tuple:
    if cfg.input_size:
        return cfg.input_size
    if source.model is not None:
        return source.model.input_size
    shape = artifact.info.inputs[0].shape  # an ONNX file: its static H, W when it has them
    hw = shape[-2:]
    return tuple(hw) if len(hw) == 2 and all(isinstance(d, int) and d > 0 for d in hw) else (224, 224)

