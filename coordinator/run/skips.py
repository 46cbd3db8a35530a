"""Why a row is skipped before anything is launched: what the model or the engine's manifest rules out."""
from typing import Any, Optional

from coordinator import engines as engine_registry
from coordinator.engines import Engine
from coordinator.run.points import Point


def reason(ctx: Any, engine: Engine, precision: str, point: Point = Point()) -> Optional[str]:
    artifact, source = ctx.artifact, ctx.prepared.source
    if point.batch > 1 and not artifact.family.batch_axis:
        return (f"batch {point.batch}: a {artifact.task} model has no batch axis (it takes a list of "
                "images); run it at --batch 1")
    if engine.consumes == "torch" and artifact.torch_card is None:
        return "no PyTorch model to run: the model was given as an ONNX file"
    given, low, high = artifact.info.opset, *engine.opsets
    if engine.consumes == "onnx" and source.onnx_path is not None and not low <= given <= high:
        return (f"{engine.name} loads ONNX opsets {low}-{high}, and the model was given as an ONNX file at "
                f"opset {given}: convert it, or give the PyTorch model so e2e exports it at opset {high}")
    return engine_registry.skip_reason(engine, ctx.cfg.execution.device or "cpu", precision)
