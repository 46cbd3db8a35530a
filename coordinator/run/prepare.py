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


@dataclass
class Checked:
    """The model and the data the options name, resolved and checked before anything is made."""

    source: models.ModelSource
    labelled: Optional[dataset.Dataset]


def check(cfg: BenchConfig) -> Checked:
    """The options that name the model and its data, checked before the environments are sized
    and made: a wrong --inputs or --images is the user's one line, whatever the disk holds."""
    source = models.resolve(cfg.model.name, cfg.data.input_size, cfg.data.inputs, cfg.model.exporter)
    models.check_weights(cfg.model.weights)
    labelled = dataset.load(cfg.data.dataset, cfg.data.limit) if cfg.data.dataset else None
    for option, folder in (("--images", cfg.data.images), ("--calibration", cfg.data.calibration)):
        if folder is not None:  # a bad folder fails before the (slow) export
            testdata.image_files(folder, option)
    return Checked(source, labelled)


def prepare(cfg: BenchConfig, checked: Checked, console: Any, log: Any, phases: Dict[str, float]) -> Prepared:
    """Export the model, then make the test inputs; `phases` gets the seconds of each."""
    source, labelled = checked.source, checked.labelled
    t = time.perf_counter()
    with console.status(f"[bold]{source.name}[/]: export to ONNX (cached after the first run)..."):
        model = cfg.model
        artifact = export.prepare(source, model.weights, model.seed, model.opset, cfg.execution.cache_dir, log=log)
    phases["export_s"] = time.perf_counter() - t
    t = time.perf_counter()
    size = input_size(source, artifact, cfg)
    with console.status("test inputs..."):
        data = testdata.prepare(artifact, cfg.data.images, size, cfg.execution.cache_dir, labelled,
                                device=cfg.execution.device or "cpu", log=log)
        calibration = testdata.prepare(artifact, cfg.data.calibration, size, cfg.execution.cache_dir, log=log) \
            if cfg.data.calibration else None
    phases["inputs_s"] = time.perf_counter() - t
    return Prepared(source, artifact, data, calibration)


def input_size(source: models.ModelSource, artifact: export.Artifact, cfg: BenchConfig) -> tuple:
    if cfg.data.input_size:
        return cfg.data.input_size
    if source.model is not None:
        return source.model.input_size
    shape = artifact.info.inputs[0].shape  # an ONNX file: its static H, W when it has them
    hw = shape[-2:]
    return tuple(hw) if len(hw) == 2 and all(isinstance(d, int) and d > 0 for d in hw) else (224, 224)

