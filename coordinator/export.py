"""Export once: torch -> ONNX with the TorchScript exporter, cached by content.

The cache key covers everything the file depends on (factory, weights, input size, opset,
exporter, torch version), so every engine and every rerun reads the same file. The dynamo
exporter is not used: it fails on torchvision's detection models (a data-dependent guard in
batched_nms, torch 2.14).
"""
import hashlib
import json
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from shared import atomic
from shared.records import write_json_atomic

from . import tasks
from .errors import UsageError
from .models import ModelDef, ModelSource, Weights, build, factory_kwargs, factory_root, load_weights
from .sections import ModelInfo

EXPORTER = "torch.onnx.export(dynamo=False)"
EXPORT_FORMAT = 2  # bump when the export code changes what it writes (2: the card's factory_path)


@dataclass
class Artifact:
    """An exported model: the ONNX file, the torch model card, and what the report says of it."""

    dir: Path
    onnx_path: Path
    torch_card: Optional[Path]  # None when the user gave an ONNX file: no PyTorch reference
    task: str  # the model family's name (coordinator/tasks/), as export.json says
    info: ModelInfo  # the report's model section

    @property
    def family(self) -> tasks.Task:
        """The model family that exports, preprocesses, judges, scores and draws this model."""
        return tasks.get(self.task)

    @property
    def input_names(self) -> List[str]:
        return [i.name for i in self.info.inputs]

    @property
    def output_names(self) -> List[str]:
        return [o.name for o in self.info.outputs]


def prepare(source: ModelSource, weights: str, seed: int, opset: int, cache: Path,
            log: Any = print) -> Artifact:
    if source.onnx_path is not None:
        return _from_onnx_file(source.onnx_path)
    model = source.model
    assert model is not None
    parts = {"factory": model.factory, "kwargs": factory_kwargs(model), "input_size": model.input_size,
             "opset": opset, "exporter": EXPORTER, "torch": _version("torch"),
             "torchvision": _version("torchvision"), "format": EXPORT_FORMAT,
             # the card records where a user's factory module lives: another checkout is another export
             "factory_path": factory_root(model)}
    # A warm rerun finds its export from the request alone: no torch import, no weights read.
    request = cache / "models" / "requests" / f"{_key({**parts, 'weights': _request(weights, seed)})[:24]}.json"
    folder = _indexed(request, cache)
    if folder is None:
        got = load_weights(model, weights, seed)
        if got.warning:
            log(f"WARNING: {got.warning}")
        folder = cache / "models" / f"{model.name}-{_key({**parts, 'weights': got.identity})[:16]}"
        _export(model, got, seed, opset, folder, log)
        if not got.warning:  # a fallback is not remembered: the next run tries the weights again
            request.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(str(request), {"folder": folder.name})
    else:
        log(f"ONNX export of {model.name}: cached ({folder})")
    info = ModelInfo.from_dict(json.loads((folder / "export.json").read_text()))
    info.onnx_file = str(folder / "model.onnx")  # exports cached before the fix named the temporary folder
    return Artifact(folder, folder / "model.onnx", folder / "torch_model.json", info.task, info)


def _request(weights: str, seed: int) -> str:
    """The weights as asked for; a checkpoint by path, size and modification time."""
    if weights == "random":
        return f"random:seed={seed}"
    if weights == "pretrained":
        return "pretrained"
    stat = Path(weights).stat() if Path(weights).is_file() else None
    return f"checkpoint:{Path(weights).resolve()}:{stat and stat.st_size}:{stat and stat.st_mtime_ns}"


def _indexed(request: Path, cache: Path) -> Optional[Path]:
    try:
        folder = cache / "models" / json.loads(request.read_text())["folder"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if atomic.problem(str(folder)) is not None:  # damaged: exported again, saying so
        return None
    atomic.used(str(folder))
    return folder


def _export(model: ModelDef, weights: Weights, seed: int, opset: int, folder: Path, log: Any) -> None:
    """The export folder, made once: a second run exporting the same model at the same time
    waits for this one and uses its folder (shared/atomic.py)."""
    def make(tmp: str) -> None:
        import torch

        log(f"Exporting {model.name} to ONNX (opset {opset}, TorchScript exporter)...")
        net = build(model, weights, seed)
        h, w = model.input_size
        family = tasks.get(model.task) if model.task else _guess_family(net, h, w)
        out = Path(tmp)
        out.mkdir(mode=0o755)  # runner containers read it as their own user
        start = time.perf_counter()
        signature = family.export_signature(h, w)
        inputs, outputs = signature.input_names, signature.output_names
        # The tracer warns a screenful on torchvision detectors; keep it in export.log, not the terminal.
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(net, signature.args, str(out / "model.onnx"), dynamo=False, opset_version=opset,
                              input_names=inputs, output_names=outputs, dynamic_axes=signature.dynamic_axes)
        (out / "export.log").write_text("".join(
            warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught))
        seconds = time.perf_counter() - start
        torch.save(net.state_dict(), out / "weights.pt")
        # How to call the model and read its outputs: the runner does not import the coordinator.
        # factory_path: where a user's factory module lives, for runners in their own environment.
        card = {"factory": model.factory, "factory_path": factory_root(model), "kwargs": factory_kwargs(model),
                "state_dict": "weights.pt",
                "task": family.name, "input_names": inputs, "output_names": outputs, **family.torch_card()}
        write_json_atomic(str(out / "torch_model.json"), card)
        info = describe_onnx(out / "model.onnx")
        info.update(onnx_file=str(folder / "model.onnx"),  # where it lives once published
                    name=model.name, source=model.factory, task=family.name, exporter=EXPORTER,
                    torch=_version("torch"), export_seconds=round(seconds, 3), input_size=[h, w],
                    parameters=sum(p.numel() for p in net.parameters()),
                    weights={"kind": weights.kind, "detail": weights.detail, "warning": weights.warning})
        write_json_atomic(str(out / "export.json"), info)
        log(f"Exported in {seconds:.1f} s: {folder / 'model.onnx'}")

    atomic.ensure(str(folder), make, f"The cached ONNX export of {model.name}", log=log, phase="export")


def _from_onnx_file(path: Path) -> Artifact:
    info = describe_onnx(path)
    task = tasks.for_onnx_outputs([o["name"] for o in info["outputs"]]).name
    info.update(name=path.stem, source=str(path), task=task, exporter="given as ONNX",
                weights={"kind": "onnx", "detail": "as stored in the file", "warning": ""})
    return Artifact(path.parent, path, None, task, ModelInfo.from_dict(info))


def describe_onnx(path: Path) -> Dict[str, Any]:
    """Checker-validated facts about an ONNX file; a file that fails the checker is refused."""
    import onnx

    try:
        onnx.checker.check_model(str(path))  # the path form also handles >2 GB external data
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        first = " ".join(str(e).split())[:300]
        raise UsageError(f"{path} is not a valid ONNX model: {first}") from None

    def tensors(values: Any) -> List[Dict[str, Any]]:
        return [{"name": v.name, "dtype": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower(),
                 "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]} for v in values]

    initializers = {i.name for i in model.graph.initializer}
    ops = Counter(n.op_type for n in model.graph.node)
    # Weights over 2 GB live in files beside the model: they are part of its size and identity.
    external = sorted({e.value for t in _all_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL
                       for e in t.external_data if e.key == "location"})
    files = [path, *(path.parent / name for name in external)]
    return {
        "onnx_file": str(path), "file_bytes": sum(f.stat().st_size for f in files), "sha256": _files_sha256(files),
        "external_data": external,
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0),
        "inputs": tensors(i for i in model.graph.input if i.name not in initializers),
        "outputs": tensors(model.graph.output),
        "nodes": len(model.graph.node), "operators": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
    }


def _guess_family(net: Any, h: int, w: int) -> tasks.Task:
    """A user factory: the family that recognises what it returns for a (1, 3, H, W) batch."""
    import torch

    with torch.no_grad():
        out = net(torch.rand(1, 3, h, w))
    return tasks.for_torch_output(out)


def _key(parts: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _all_tensors(model: Any) -> Iterator[Any]:
    """Initializers and tensors in node attributes, subgraphs included."""
    def walk(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for node in graph.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    yield from walk(g)

    return walk(model.graph)


def _files_sha256(paths: List[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""
