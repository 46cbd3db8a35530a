"""Torch-TensorRT: the PyTorch model compiled for an NVIDIA GPU by `torch_tensorrt.compile`
(ir "dynamo": torch.export, then the supported subgraphs become TensorRT engines and the rest
runs in PyTorch), and called like the PyTorch module it returns.

Precision: Torch-TensorRT 2.14 builds strongly typed networks, so the model's own dtypes decide:
fp32 with TF32 off (`disable_tf32`), fp16 through its autocast (`enable_autocast`,
`autocast_low_precision_type=float16`). The row counts the TensorRT engines and the PyTorch
fallback subgraphs the partitioner made (`_run_on_acc_*` / `_run_on_gpu_*` submodules). The
compiled module is saved in the engine cache as an ExportedProgram (`torch_tensorrt.save`).
"""
from dataclasses import dataclass
from typing import Any, List, Optional

from shared import EngineUnavailable, Runner, Sample, UnsupportedError, one_line, torch_model


@dataclass
class Options:
    optimization_level: Optional[int] = None  # TensorRT's builder optimisation level 0-5; None: its default (3)
    min_block_size: int = 5  # the fewest ops a TensorRT subgraph may hold (Torch-TensorRT's default)
    workspace_mb: int = 0  # the builder's workspace; 0: TensorRT's default (the GPU's memory)
    cache: bool = True  # keep the compiled module in the engine cache

    def __post_init__(self) -> None:
        if self.optimization_level is not None and self.optimization_level not in range(6):
            raise ValueError("optimization_level must be 0-5 or null, got {!r}".format(self.optimization_level))
        for name in ("min_block_size", "workspace_mb"):
            if type(getattr(self, name)) is not int or getattr(self, name) < 0:
                raise ValueError("{} must be an integer >= 0, got {!r}".format(name, getattr(self, name)))
        if not isinstance(self.cache, bool):
            raise ValueError("cache must be true or false, got {!r}".format(self.cache))


class TorchTensorRTRunner(Runner):
    packages = ["torch", "torchvision", "torch_tensorrt", "tensorrt", "numpy"]
    Options = Options

    def available_impl(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise EngineUnavailable("this torch build sees no CUDA device (torch {}, CUDA {})".format(
                torch.__version__, torch.version.cuda))
        if not self.spec.model_path.endswith(".json"):
            raise EngineUnavailable("no PyTorch model to compile: the model was given as an ONNX file")

    def version_impl(self) -> str:
        import tensorrt
        import torch_tensorrt

        return "{} (TensorRT {})".format(torch_tensorrt.__version__, tensorrt.__version__)

    def load_impl(self) -> None:
        import torch
        import torch_tensorrt

        module, card, example = torch_model.prepare(self)
        fp16 = self.spec.precision == "fp16"
        o = self.options
        kwargs = dict(ir="dynamo", arg_inputs=list(example), device=self.device, disable_tf32=True,
                      min_block_size=o.min_block_size, enable_autocast=fp16)
        if fp16:
            kwargs["autocast_low_precision_type"] = torch.float16
        if o.optimization_level is not None:
            kwargs["optimization_level"] = o.optimization_level
        if o.workspace_mb:
            kwargs["workspace_size"] = o.workspace_mb << 20
        made = []  # type: List[Any]

        def compiled() -> Any:
            with self.stage("compile"), torch.inference_mode():
                try:
                    return torch_tensorrt.compile(module, **kwargs)
                except Exception as e:  # noqa: BLE001 -- torch.export and the converters raise many kinds
                    raise UnsupportedError("Torch-TensorRT could not compile the model: {}: {}".format(
                        type(e).__name__, one_line(e, 400)), operator=_operator_in(str(e))) from None

        def make(tmp: str) -> None:
            made.append(compiled())
            torch_tensorrt.save(made[0], tmp, output_format="exported_program", arg_inputs=list(example))

        if o.cache:
            path = self.cached("-torch-tensorrt.ep", [
                torch_tensorrt.__version__, str(o), self.spec.precision, torch.cuda.get_device_name(self.device),
                torch_model.weights_digest(self.spec.model_path, card)], make, self.samples[:1], phase="compile")
            self.module = made[0] if made else torch.export.load(path).module()
        else:
            self.module = compiled()
        names = [name for name, _ in self.module.named_children()]
        self.settings.update(
            ir="dynamo", disable_tf32=True, enable_autocast=fp16, min_block_size=o.min_block_size,
            optimization_level=o.optimization_level, tensorrt_engines=sum(n.startswith("_run_on_acc") for n in names),
            pytorch_fallback_subgraphs=sum(n.startswith("_run_on_gpu") for n in names),
            compiled_input_shapes=[list(t.shape) for t in example])
        # Not read back from the engines (their per-layer formats need DETAILED profiling verbosity,
        # not asked): the networks are strongly typed, so the types are the graph's own. fp32: no
        # autocast and TF32 off; fp16: Torch-TensorRT's autocast put the eligible ops in fp16.
        self.precision = "fp16" if fp16 else "fp32"

    def infer_impl(self, feeds: Sample) -> List[Any]:
        import torch

        with torch.inference_mode():
            outs = self.module(*[torch.from_numpy(a).to(self.device) for a in feeds.values()])
            outs = outs if isinstance(outs, (tuple, list)) else [outs]
            result = [t.float().cpu().numpy() if t.dtype == torch.float16 else t.cpu().numpy() for t in outs]
            return result  # .cpu() synchronises the stream: the call is timed to its end

    def outputs_impl(self, raw: List[Any]) -> Sample:
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        self.module = None


def _operator_in(message: str) -> str:
    """The aten/torchvision operator an export or converter error names ("aten.nonzero", "torchvision::nms")."""
    import re

    found = re.search(r"\b(?:aten|torchvision)(?:\.|::)[\w.]+", message)
    return found.group(0) if found else ""
