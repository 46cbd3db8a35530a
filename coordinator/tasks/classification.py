"""Image classifiers: an NCHW batch in, `logits` out; top-1/top-5 on labelled class folders.

Below fp32 the logits are judged on what a classifier outputs: the same top-1 class for every
input and a cosine similarity to the reference logits above a precision-dependent floor. The
elementwise figures are still reported; at fp32 they decide, as for every tensor.
"""
from typing import Dict, List

import numpy as np

from shared.tensors import Sample

from coordinator.report.parity import ClassificationParity, Parity, compare_tensors
from coordinator.tasks import ExportSignature
from coordinator.tasks.generic import Generic

# precision -> least cosine similarity of each input's logits to the reference
MIN_COSINE: Dict[str, float] = {"fp16": 0.999, "bf16": 0.995, "int8": 0.98}


class Classification(Generic):
    name = "classification"

    def export_signature(self, height: int, width: int) -> ExportSignature:
        import torch

        return ExportSignature((torch.rand(1, 3, height, width),), ["input"], ["logits"],
                               {"input": {0: "batch"}, "logits": {0: "batch"}})

    def compare_outputs(self, reference: List[Sample], outputs: List[Sample], precision: str) -> Parity:
        tensors = compare_tensors(reference, outputs, precision)
        if precision not in MIN_COSINE or any(p.note for p in tensors.outputs):
            return tensors
        c = compare_logits(reference, outputs, tensors.outputs[0].name, MIN_COSINE[precision])
        return Parity(c.passed, "classification", precision, tensors.atol, tensors.rtol, tensors.outputs,
                      classification=c)


def compare_logits(reference: List[Sample], outputs: List[Sample], name: str,
                   min_cosine: float) -> ClassificationParity:
    ref = np.concatenate([r[name].reshape(r[name].shape[0], -1) for r in reference]).astype(np.float64)
    out = np.concatenate([o[name].reshape(o[name].shape[0], -1) for o in outputs]).astype(np.float64)
    agree = float(np.mean(ref.argmax(axis=1) == out.argmax(axis=1)))
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = float(np.min(np.sum(ref * out, axis=1) / np.maximum(norms, 1e-30)))
    return ClassificationParity(agree == 1.0 and cosine >= min_cosine, name, len(ref), agree, cosine, min_cosine)
