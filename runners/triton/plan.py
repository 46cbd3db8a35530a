"""The tensorrt backend's plan: the ONNX file built by TensorRT's Python builder, at the exact
TensorRT version the server links (a plan loads only in the version that built it)."""
import glob
import os
import subprocess
from typing import Any, Dict, List, Sequence

from shared import EngineUnavailable, UnsupportedError


def input_shapes(samples: Sequence[Dict[str, Any]]) -> Dict[str, List[tuple]]:
    """Each input's shapes over the test inputs: the optimisation profile spans them."""
    shapes = {}  # type: Dict[str, List[tuple]]
    for sample in samples:
        for name, array in sample.items():
            shapes.setdefault(name, []).append(tuple(array.shape))
    return shapes


def cache_parts(device_index: int, shapes: Dict[str, List[tuple]]) -> list:
    """What a cached plan depends on besides the model: TensorRT's version, the GPU, the shapes."""
    import tensorrt as trt

    return [trt.__version__, gpu_name(device_index), sorted(shapes.items())]


def build(model_path: str, shapes: Dict[str, List[tuple]], path: str) -> None:
    import tensorrt as trt

    server = server_tensorrt_version()
    if server and not trt.__version__.startswith(server):
        raise EngineUnavailable("the tensorrt module here is {} but the server's TensorRT is {}: a plan loads only "
                                "in the version that built it; rebuild the image".format(trt.__version__, server))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.path.abspath(model_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise UnsupportedError("TensorRT's ONNX parser: " + "; ".join(e.desc() for e in errors),
                               operator=errors[0].node_operator() if errors else None)
    config = builder.create_builder_config()  # no precision flags: fp32
    profile = builder.create_optimization_profile()
    for name, seen in shapes.items():
        profile.set_shape(name, tuple(min(d) for d in zip(*seen)), seen[0], tuple(max(d) for d in zip(*seen)))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UnsupportedError("TensorRT could not build an engine for this model (see the log)")
    tmp = "{}.{}.tmp".format(path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(serialized)
    os.replace(tmp, path)  # whole or absent: another run may read the cache


def server_tensorrt_version() -> str:
    """The TensorRT the image's server links (libnvinfer.so.X.Y.Z), or "" when not found."""
    for path in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libnvinfer.so.*.*.*")):
        return path.rsplit("libnvinfer.so.", 1)[1]
    return ""


def gpu_name(index: int) -> str:
    """A plan is tied to the GPU model it was built on: part of its cache key."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", str(index)],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
