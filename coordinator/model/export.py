"""Export once: torch -> ONNX, cached by content.

The cache key covers everything the file depends on (factory, weights, input size or the user's
example inputs, opset, exporter, torch version), so every engine and every rerun reads the same
file. The exporters are tried in turn (coordinator/model/exporters.py): the TorchScript exporter first
(the dynamo exporter fails on torchvision's detection models: a data-dependent guard in
batched_nms, torch 2.14), the dynamo exporter where it fails; export.json says which wrote the
file and why the others did not.

A factory's model that no family claims is exported through a wrapper of tensors in and a flat
tuple out: inputs named after its forward's parameters (or the user's dict keys), outputs after
their place in what it returns (shared.torch_model.flatten).
"""
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from shared import atomic
from shared.records import write_json_atomic
from shared.tensors import save_samples
from shared.errors import one_line

from coordinator.model import example_inputs, exporters, flops
from coordinator import tasks
from coordinator.errors import UsageError
from coordinator.model.zoo import ModelDef, ModelSource, Weights, build, factory_kwargs, factory_root, load_weights
from coordinator.report.sections import ModelInfo
from coordinator.model.user_code import UserCodeError, calling, module_root, where

# In the cache key: the first exporter tried (coordinator/model/exporters.py). A model it writes is
# written as before the others were tried, so the exports cached then stay valid.
EXPORTER = "torch.onnx.export(dynamo=False)"
EXPORT_FORMAT = 2  # bump when the export code changes what it writes (2: the card's factory_path)
EXAMPLE_INPUTS = "example_inputs.npz"  # a factory's inputs as the user gave them: the test inputs
GIVE_INPUTS = ("give the model's example inputs with --inputs package.module:make_inputs (a function returning "
               "a tensor, a tuple or a dict of tensors) or --inputs FILE.npz")


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
             "opset": opset, "exporter": EXPORTER if model.exporter == "auto" else model.exporter,
             "torch": _version("torch"),
             "torchvision": _version("torchvision"), "format": EXPORT_FORMAT,
             # the card records where a user's factory module lives: another checkout is another export
             "factory_path": factory_root(model)}
    if not model.task:  # a factory: exported through the flattening wrapper, on its example inputs
        parts.update(inputs=example_inputs.identity(model.inputs) if model.inputs else "assumed image", flat=2)
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

        log(f"Exporting {model.name} to ONNX (opset {opset})...")
        net = build(model, weights, seed)
        h, w = model.input_size
        out = Path(tmp)
        out.mkdir(mode=0o755)  # runner containers read it as their own user
        start = time.perf_counter()
        family, signature, example, call = _signature(model, net, h, w, log)
        inputs, outputs = signature.input_names, signature.output_names
        module = net if example is None else exporters.flat_module(net, inputs, call == "keywords")
        try:
            done = exporters.export(module, signature.args, out / "model.onnx", opset, inputs, outputs,
                                    signature.dynamic_axes, only=model.exporter)
        except exporters.ExportFailed as e:
            roots = [r for r in map(module_root, (model.factory.partition(":")[0], type(net).__module__)) if r]
            at = where(e.errors[-1].__traceback__, roots)
            which = "every exporter" if model.exporter == "auto" else f"--exporter {model.exporter}"
            raise UserCodeError(f"exporting {model.name} to ONNX failed with {which}: {'; '.join(e.failures)}"
                                + (f" (at {at})" if at else "")) from e.errors[-1]
        (out / "export.log").write_text(done.log)
        seconds = time.perf_counter() - start
        counted = flops.count(module, signature.args)  # the arithmetic of one call, for the verdict's GFLOP/s
        torch.save(net.state_dict(), out / "weights.pt")
        if example is not None and model.inputs:  # the user's inputs are the test inputs
            save_samples(str(out / EXAMPLE_INPUTS), [{n: t.numpy() for n, t in zip(inputs, example.tensors)}])
        # How to call the model and read its outputs: the runner does not import the coordinator.
        # factory_path: where a user's factory module lives, for runners in their own environment.
        card = {"factory": model.factory, "factory_path": factory_root(model), "kwargs": factory_kwargs(model),
                "state_dict": "weights.pt",
                "task": family.name, "input_names": inputs, "output_names": outputs, **family.torch_card()}
        if example is not None:
            card.update(call=call, outputs="flat")
        write_json_atomic(str(out / "torch_model.json"), card)
        info = describe_onnx(out / "model.onnx")
        exporter = done.exporter
        if info["opset"] != opset:  # the dynamo exporter writes 18 where converting down fails
            exporter += f" (wrote opset {info['opset']}: converting to the {opset} asked failed)"
        info.update(onnx_file=str(folder / "model.onnx"),  # where it lives once published
                    name=model.name, source=model.factory, task=family.name, exporter=exporter,
                    exporters_not_used=done.not_used, example_inputs=example.source if example else "",
                    torch=_version("torch"), export_seconds=round(seconds, 3), input_size=[h, w],
                    parameters=sum(p.numel() for p in net.parameters()),
                    gflop=round(counted / 1e9, 4) if counted else None,
                    weights={"kind": weights.kind, "detail": weights.detail, "warning": weights.warning})
        write_json_atomic(str(out / "export.json"), info)
        why = f" ({'; '.join(done.not_used)})" if done.not_used else ""
        log(f"Exported in {seconds:.1f} s with {exporter}{why}: {folder / 'model.onnx'}")

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
        first = one_line(e)
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


def _signature(model: ModelDef, net: Any, h: int, w: int,
               log: Any) -> Tuple[tasks.Task, tasks.ExportSignature, Optional[example_inputs.ExampleInputs], str]:
    """(family, export signature, the example inputs of a flat export or None, how the model is
    called). A zoo model's family gives all; a factory's model is run once on its example inputs
    (the user's, or one image assumed) and is exported flat unless a family claims its output."""
    import torch

    from shared import torch_model

    if model.task:
        family = tasks.get(model.task)
        return family, family.export_signature(h, w), None, family.torch_call
    module = model.factory.partition(":")[0]
    if model.inputs:
        example = example_inputs.load(model.inputs, net)
        what, hint = f"the model's forward on --inputs {model.inputs}", ""
    else:
        example = example_inputs.assumed_image(h, w)
        log(f"No --inputs: assuming the model takes one RGB image of {h}x{w} (float NCHW, batch 1)")
        what, hint = f"the model's forward on one RGB image of {h}x{w} (assumed)", GIVE_INPUTS
    call = "keywords" if example.keywords else "tensors"
    with torch.no_grad(), calling(what, module, type(net).__module__, hint=hint):
        out = torch_model.call(net, call, example.tensors, example.names)
    family = tasks.for_torch_output(out) if not model.inputs else tasks.get(tasks.FALLBACK)
    if family.name != tasks.FALLBACK:  # a family's own export (a detector built by a factory)
        return family, family.export_signature(h, w), None, family.torch_call
    outputs = [name for name, _ in torch_model.flatten(out)]
    if not outputs:
        raise UserCodeError(f"{what}: the model returned a {type(out).__name__} holding no tensor")
    # the batch axis is dynamic where there is one, so that a batched sweep can stack inputs
    dynamic = {n: {0: "batch"} for n, t in zip(example.names, example.tensors) if t.dim() >= 1}
    if len(dynamic) == len(example.names):  # every input has one: the outputs are batched alike
        dynamic.update({n: {0: "batch"} for n, t in torch_model.flatten(out) if t.dim() >= 1})
    return family, tasks.ExportSignature(tuple(example.tensors), example.names, outputs, dynamic), example, call


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
