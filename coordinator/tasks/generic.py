"""Plain tensors: an ONNX file given as is, or a factory no family claims.

Outputs are compared elementwise. Image inputs follow the ImageNet convention; on labelled
class folders the first output is scored as logits (top-1/top-5), as a classifier's would be.
"""
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple

from shared.tensors import Sample

from coordinator.report.accuracy import topk_accuracy
from coordinator.tasks import Task


class Generic(Task):
    name = "generic"
    dataset_kinds = ("imagefolder",)

    def metric(self, outputs: Sequence[Sample], evaluation: Dict[str, Any], data_dir: Path,
               output_names: Sequence[str]) -> Tuple[str, float, Dict[str, float]]:
        d = topk_accuracy(outputs, evaluation["labels"], output_names[0])
        return "top-1", d["top1"], d
