"""The model repository Triton serves: one model, `config.pbtxt` generated from the ONNX
graph's inputs and outputs. Pure Python (no onnx, no tritonclient) so the unit tests can check
the text; `onnx_io` is the one function that reads a model.

Layout:  <repo>/model/config.pbtxt  and  <repo>/model/1/<file>
  python      1/model.py (python_model.py, running onnxruntime); the ONNX file stays where it is
  onnxruntime 1/model.onnx (a link to the ONNX file, and links to its external data beside it)
  tensorrt    1/model.plan (built from the ONNX file by the runner)
"""
import json
import os
import shutil
from typing import Dict, List, NamedTuple, Optional, Sequence

MODEL = "model"  # the one model's name in the repository
BACKENDS = ("python", "onnxruntime", "tensorrt")

# ONNX TensorProto element type -> Triton data type (model_config.proto's DataType)
TRITON_TYPES = {
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32",
    7: "TYPE_INT64", 8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
    13: "TYPE_UINT64", 16: "TYPE_BF16",
}


class Tensor(NamedTuple):
    name: str
    elem_type: int  # ONNX TensorProto element type
    dims: Optional[List[int]]  # -1 where the size is not fixed; None: the rank is unknown too


def onnx_io(path: str) -> "tuple[List[Tensor], List[Tensor]]":
    """The graph's inputs (initializers excluded) and outputs, as Triton will see them."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}

    def tensor(value: "onnx.ValueInfoProto") -> Tensor:
        kind = value.type.tensor_type
        dims = None if not kind.HasField("shape") else [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                                                         for d in kind.shape.dim]
        return Tensor(value.name, kind.elem_type, dims)

    return [tensor(v) for v in graph.input if v.name not in initializers], [tensor(v) for v in graph.output]


def config_pbtxt(backend: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor], device: str, threads: int,
                 parameters: Optional[Dict[str, str]] = None, accelerator: Optional[Dict[str, str]] = None) -> str:
    """The model configuration. `max_batch_size: 0`: the dims are the ONNX file's full shapes
    (Triton adds no batch dimension and batches nothing), one instance, so a request runs alone
    as in every other engine's loop. `accelerator`: the onnxruntime backend's TensorRT execution
    accelerator with its parameters (precision_mode...), on a GPU."""
    if backend not in BACKENDS:
        raise ValueError("backend must be one of {}, got {!r}".format(", ".join(BACKENDS), backend))
    lines = ['name: "{}"'.format(MODEL)]
    if backend == "python":
        lines.append('backend: "python"')
    elif backend == "onnxruntime":
        lines += ['backend: "onnxruntime"', 'default_model_filename: "model.onnx"']
    else:
        lines += ['platform: "tensorrt_plan"', 'default_model_filename: "model.plan"']
    lines.append("max_batch_size: 0")
    for section, tensors in (("input", inputs), ("output", outputs)):
        lines.append(section + " [")
        lines.append(",\n".join(_tensor(t) for t in tensors))
        lines.append("]")
    gpu = device.startswith("cuda:")
    lines.append("instance_group [ {{ count: 1 kind: {}{} }} ]".format(
        "KIND_GPU" if gpu else "KIND_CPU", " gpus: [ {} ]".format(int(device[5:])) if gpu else ""))
    params = dict(parameters or {})
    if backend == "onnxruntime":
        # ORT's defaults read the host's cores; sequential execution, one inter-op thread: the
        # settings of the `ort` engine, so the two rows differ by the serving alone.
        params.update(intra_op_thread_count=str(threads), inter_op_thread_count="1", execution_mode="0")
    for key, value in params.items():
        lines.append("parameters {{ key: {} value: {{ string_value: {} }} }}".format(_quote(key), _quote(value)))
    if accelerator:
        if backend != "onnxruntime" or not gpu:
            raise ValueError("a TensorRT execution accelerator needs the onnxruntime backend on a GPU")
        body = " ".join("parameters {{ key: {} value: {} }}".format(_quote(k), _quote(v)) for k, v in accelerator.items())
        lines.append('optimization {{ execution_accelerators {{ gpu_execution_accelerator: [ {{ name: "tensorrt" {} }} ] }} }}'
                     .format(body))
    return "\n".join(lines) + "\n"


def _tensor(t: Tensor) -> str:
    if t.elem_type not in TRITON_TYPES:
        raise ValueError("tensor {!r}: ONNX element type {} has no Triton data type".format(t.name, t.elem_type))
    if t.dims is None:  # Triton needs a rank; -1 alone says "one dimension of any size", which
        raise ValueError("tensor {!r} has no shape in the ONNX file: Triton's config needs its rank".format(t.name))
    extra = ""
    dims = t.dims
    if not dims:  # a scalar: Triton wants at least one dim, reshaped away for the model
        dims, extra = [1], " reshape: { shape: [ ] }"
    return "  {{ name: {} data_type: {} dims: [ {} ]{} }}".format(
        _quote(t.name), TRITON_TYPES[t.elem_type], ", ".join(str(d) for d in dims), extra)


def _quote(text: str) -> str:
    """A protobuf text-format string: JSON's escaping is a subset it reads."""
    return json.dumps(text)


def write(repo: str, backend: str, config: str, model_path: str, model_files: Sequence[str] = (),
          plan_path: Optional[str] = None) -> str:
    """Write the repository; returns the version folder."""
    folder = os.path.join(repo, MODEL)
    version = os.path.join(folder, "1")
    os.makedirs(version, exist_ok=True)
    with open(os.path.join(folder, "config.pbtxt"), "w") as f:
        f.write(config)
    if backend == "python":
        shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_model.py"),
                    os.path.join(version, "model.py"))
    elif backend == "onnxruntime":
        # Links, not copies: the model may be gigabytes, and its external data files must sit
        # beside it under their own names, where ORT looks for them.
        source = os.path.dirname(os.path.abspath(model_path))
        os.symlink(os.path.abspath(model_path), os.path.join(version, "model.onnx"))
        for name in model_files:
            os.symlink(os.path.join(source, name), os.path.join(version, name))
    else:
        if plan_path is None:
            raise ValueError("the tensorrt backend needs a plan")
        os.symlink(os.path.abspath(plan_path), os.path.join(version, "model.plan"))
    return version
