"""ExecuTorch runner: the PyTorch model exported by `torch.export.export` on the first test input
(stage `convert`), lowered to the XNNPACK delegate (`to_edge_transform_and_lower` with
`XnnpackPartitioner`) and serialised to a .pte program (`to_executorch`; stage `compile`), then
loaded and run by ExecuTorch's runtime (`executorch.runtime.Runtime`, the portable_lib bindings).

- The .pte is cached, sealed (`Runner.cached`), with its lowering log (the delegation summary: how
  many nodes XNNPACK took and which ops stayed on ExecuTorch's portable kernels).
- Threads: XNNPACK runs on ExecuTorch's threadpool, reset to the spec's threads and read back.
- torch.export traces with symbolic values: a model whose control flow depends on its data
  (torchvision's `batched_nms`) cannot be exported; the row names the function where it stops.
"""
import os
import re
from dataclasses import dataclass
from typing import Any, List

from shared import EngineUnavailable, Runner, Sample, UnsupportedError, one_line, torch_model

CAUSED = re.compile(r"Caused by: \(([^()\s]+):(\d+) in (\w+)\)")  # where a data-dependent guard was hit
FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')
GUARD = re.compile(r"(Could not (?:guard on|extract specialized integer from) data-dependent expression [^\n(]+)")


@dataclass
class Options:
    cache: bool = True  # keep the .pte in the engine cache (an export + lowering of resnet50 takes ~1 min)

    def __post_init__(self) -> None:
        if not isinstance(self.cache, bool):
            raise ValueError("cache must be true or false, got {!r}".format(self.cache))


class ExecuTorchRunner(Runner):
    packages = ["executorch", "torch", "torchvision", "numpy"]
    Options = Options

    def available_impl(self) -> None:
        import executorch  # noqa: F401

        if not self.spec.model_path.endswith(".json"):
            raise EngineUnavailable("no PyTorch model to export: the model was given as an ONNX file")

    def version_impl(self) -> str:
        from importlib.metadata import version

        return version("executorch")

    def load_impl(self) -> None:
        import torch
        from executorch.extension.pybindings import portable_lib
        from importlib.metadata import version

        module, card, example = torch_model.prepare(self)
        shapes = {name: list(a.shape) for name, a in self.samples[0].items()}
        if any({name: list(a.shape) for name, a in s.items()} != shapes for s in self.samples):
            raise UnsupportedError("the ExecuTorch runner exports for one input shape (static shapes), and the "
                                   "test inputs' shapes differ; give inputs of one shape")
        parts = [version("executorch"), torch.__version__, torch_model.weights_digest(self.spec.model_path, card),
                 shapes, "xnnpack"]
        converted = self.convert_cached(".pte", parts, lambda folder: self._lower(module, example, os.path.join(
            folder, "model.pte")), cache=self.options.cache)
        module = None  # the eager model's memory goes now (the lambda above is done with it)
        path = os.path.join(converted.folder, "model.pte")
        self.settings["program"] = path
        self.settings["delegation"] = _delegation(converted.log)

        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(self.spec.threads)
        runtime = Runtime.get()
        program = runtime.load_program(path)
        self.method = program.load_method("forward")
        self.settings.update(threads=portable_lib._threadpool_get_thread_count(),
                             xnnpack_registered=runtime.backend_registry.is_available("XnnpackBackend"),
                             exported_input_shapes=shapes)
        self.precision = "fp32"  # an fp32 graph; the partitioner's fp16 path is opt-in and not asked for

    def _lower(self, module: Any, example: tuple, path: str) -> str:
        """Export (stage convert), lower to XNNPACK and serialise (stage compile) to `path`; the
        delegation summary, which is the row's converter log."""
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.devtools.backend_debug import get_delegation_info
        from executorch.exir import to_edge_transform_and_lower

        with self.stage("convert"), torch.no_grad():
            try:
                exported = torch.export.export(module, example)
            except Exception as e:  # torch.export's errors have no common base (UserError, GuardOnDataDependentSymNode)
                raise export_error(e) from None
        with self.stage("compile"):
            lowered = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
            info = get_delegation_info(lowered.exported_program().graph_module)
            summary = "torch.export.export, to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])\n{}\n{}\n".format(
                info.get_summary(), info.get_operator_delegation_dataframe().to_string(index=False))
            program = lowered.to_executorch()
            with open(path, "wb") as f:
                program.write_to_file(f)
        print(summary, flush=True)
        return summary

    def infer_impl(self, feeds: Sample) -> List[Any]:
        import torch

        outs = self.method.execute([torch.from_numpy(a) for a in feeds.values()])
        return [t.numpy().copy() for t in outs]  # host copies, as every engine's

    def outputs_impl(self, raw: List[Any]) -> Sample:
        if len(raw) != len(self.output_names):
            raise RuntimeError("ExecuTorch returned {} outputs for {}".format(len(raw), len(self.output_names)))
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        self.method = None


def export_error(e: BaseException) -> UnsupportedError:
    """What torch.export's failure means: the guard it could not decide, and where (the last
    frame of the model's code its message quotes: `batched_nms` for torchvision's detectors)."""
    text = str(e)
    frames = CAUSED.findall(text) or [f for f in FRAME.findall(text) if "/torch/" not in f[0].replace("\\", "/")
                                       or "/torchvision/" in f[0].replace("\\", "/")]
    guard = GUARD.search(text)
    where = frames[-1] if frames else None
    first = one_line(text.strip().splitlines()[0] if text.strip() else e)
    return UnsupportedError("torch.export cannot export this model: {}{}{}".format(
        guard.group(1).strip() if guard else first,
        " in {} ({}:{})".format(where[2], where[0], where[1]) if where else "",
        "; ExecuTorch takes only what torch.export traces"), operator=where[2] if where else type(e).__name__,
        node="{}:{}".format(where[0], where[1]) if where else "")


def _delegation(summary: str) -> dict:
    """The counts of the delegation summary (executorch.devtools' DelegationInfo.get_summary)."""
    counts = {}
    for key, label in (("subgraphs", "Total delegated subgraphs"), ("delegated_nodes", "Number of delegated nodes"),
                       ("non_delegated_nodes", "Number of non-delegated nodes")):
        found = re.search(re.escape(label) + r": (\d+)", summary)
        if found:
            counts[key] = int(found.group(1))
    return counts
