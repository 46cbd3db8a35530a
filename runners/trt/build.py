"""Building a TensorRT engine: the builder's configuration from the options and the precision,
one optimisation profile over the samples' shapes, the serialized plan and its atomic save; and
the precision the built engine runs at, read back from its inspector."""
import json
import os
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

from shared import one_line

FLAGS = {"fp16": "FP16", "bf16": "BF16"}  # exist in TensorRT 10 (deprecated in 10.12, gone in 11)
Shapes = Dict[str, List[List[int]]]  # input name -> [min, opt, max]


def configure(trt: Any, logger: Any, options: Any, precision: str) -> Tuple[Any, Any]:
    """A builder and its configuration: workspace, optimisation level, TF32, the precision's flag."""
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    if options.workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    config.builder_optimization_level = options.builder_optimization_level
    # Per-layer formats in the engine inspector (as trtexec --profilingVerbosity=detailed):
    # how the precision is read back; it does not change the kernels chosen.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if not options.tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if precision in FLAGS:  # allows the precision; TensorRT may still keep fp32 kernels per layer
        config.set_flag(getattr(trt.BuilderFlag, FLAGS[precision]))
    return builder, config


def described(trt: Any, config: Any) -> Dict[str, Any]:
    """The configuration as the row's settings say it."""
    return dict(
        builder_flags=[f for f in ("FP16", "BF16", "TF32") if config.get_flag(getattr(trt.BuilderFlag, f))],
        workspace_mb=config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE) >> 20,
        builder_optimization_level=config.builder_optimization_level,
    )


def serialized(trt: Any, builder: Any, config: Any, network: Any, shapes: Shapes, logger: Any) -> Any:
    """The plan of `network`, with one profile spanning the samples' shapes where inputs are dynamic."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t.name for t in inputs if -1 in tuple(t.shape)]
    if dynamic:  # one profile, spanning the samples' shapes
        profile = builder.create_optimization_profile()
        for name in dynamic:
            if name not in shapes:
                raise RuntimeError(f"input {name!r} has dynamic dims but the samples do not give it")
            profile.set_shape(name, *shapes[name])
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT could not build an engine: {logger.last_errors()}")
    return plan


def save(path: Optional[str], plan: Any) -> str:
    """Write atomically, so that a killed run never leaves half an engine behind."""
    if path is None:
        return ""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(f"{path}.{os.getpid()}.tmp", "wb") as f:
            f.write(plan)
        os.replace(f.name, path)
        return path
    except OSError as e:
        return f"not saved: {e}"


def layer_precisions(trt: Any, engine: Any, asked: str) -> Tuple[str, Dict[str, Any]]:
    """What the built engine runs at, from its inspector: the data type of each layer's outputs
    ("Row major linear FP16 format", "Int8 ..."). The row's precision is the asked one when some
    layer runs at it, else fp32 (TensorRT kept fp32 kernels everywhere)."""
    # An older engine from the cache, an inspector error, an engine without per-layer formats: the
    # precision asked is shown and the detail says it was not read back (NOT_READ_BACK would be the
    # honest value once the coordinator accepts it; tests/unit/test_precision_readback.py pins this)
    try:
        info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as e:
        return asked, {"source": "TensorRT engine inspector", "error": one_line(e, 200)}
    counts = Counter()  # type: Counter
    for layer in info.get("Layers", []):
        formats = " ".join(str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", [])) \
            if isinstance(layer, dict) else ""
        upper = formats.upper()
        kind = ("int8" if "INT8" in upper else "fp16" if "FP16" in upper or "HALF" in upper else
                "bf16" if "BF16" in upper else "fp32" if "FP32" in upper or "FLOAT" in upper else "other")
        counts[kind] += 1
    detail = {"source": "TensorRT engine inspector", "layers": dict(counts)}
    if not sum(n for kind, n in counts.items() if kind != "other"):  # built without detailed verbosity
        return asked, {**detail, "note": "no per-layer formats in this engine: the precision asked is shown"}
    return (asked if counts[asked] or asked == "fp32" else "fp32"), detail
