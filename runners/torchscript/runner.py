"""TorchScript: the PyTorch model traced (`torch.jit.trace`) on the first input, frozen
(`torch.jit.freeze`: weights and attributes inlined as constants, then folded), optionally
`torch.jit.optimize_for_inference`, and run by the JIT's graph executor.

A trace records the ops one call ran: it holds for inputs of the traced shape, and data-dependent
branches are fixed at the traced input's (torchvision's detectors take the trace-safe branches
themselves, as for the ONNX export). Parity on every test input is the check. The traced and
frozen module is saved in the engine cache (`torch.jit.save`) by the weights, the traced input,
torch's version and the options.
"""
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, List

from shared import EngineUnavailable, Runner, Sample, UnsupportedError, one_line, torch_model


@dataclass
class Options:
    # torch.jit.optimize_for_inference after freezing: on CPU it moves convolutions to MKLDNN
    # layouts and fuses conv-add-relu; off by default, it measured no faster here (README).
    optimize_for_inference: bool = False
    cache: bool = True  # keep the frozen module in the engine cache (a faster_rcnn trace takes ~10 s)

    def __post_init__(self) -> None:
        for name in ("optimize_for_inference", "cache"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError("{} must be true or false, got {!r}".format(name, getattr(self, name)))


class TorchScriptRunner(Runner):
    packages = ["torch", "torchvision", "numpy"]
    Options = Options

    def available_impl(self) -> None:
        import torch

        if self.spec.device != "cpu" and not torch.cuda.is_available():
            raise EngineUnavailable("this torch build sees no CUDA device (torch {})".format(torch.__version__))
        if not self.spec.model_path.endswith(".json"):
            raise EngineUnavailable("no PyTorch model to trace: the model was given as an ONNX file")

    def version_impl(self) -> str:
        import torch

        return torch.__version__

    def load_impl(self) -> None:
        import torch

        module, card, example = torch_model.prepare(self)
        made = []  # type: List[Any]

        def make(tmp: str) -> None:
            made.append(self._script(module, example))
            torch.jit.save(made[0], tmp)

        if self.options.cache:
            path = self.cached("-torchscript.pt", [torch.__version__, str(self.options), self.spec.device,
                                                   self.spec.precision,
                                                   torch_model.weights_digest(self.spec.model_path, card)],
                               make, self.samples[:1])
            # The saved module runs, also when just written: on faster_rcnn the row's ratio to torch
            # (paired in rounds) was 1.116 in the run that froze the module in-process and 1.005 in the
            # next, which loaded it from the cache; deployment loads the file, so every run does.
            self.settings["cached_module"] = os.path.basename(path) + (" (written, then loaded)" if made else "")
            del made[:]
            self.module = torch.jit.load(path, map_location=self.device)
        else:
            self.module = self._script(module, example)
        # fp32 without autocast: the traced float32 model, with torch_model.prepare's full fp32 math
        # read back into the settings (TF32 off)
        self.precision = "fp32"
        if self.spec.precision in torch_model.REDUCED:
            # traced under autocast: the casts are in the graph; what the arithmetic runs in is the
            # eager model's under the same autocast, read back there
            self.settings["autocast"] = torch_model.REDUCED[self.spec.precision] + " (traced; read back on the eager model)"

            def eager() -> None:
                with torch.inference_mode(), torch_model.autocast(self):
                    module(*example)
            self.precision = torch_model.ran_in(self, eager)
        module = None  # the eager model's memory goes now (the closures above are done with it)
        self.settings.update(
            threads=torch.get_num_threads(), interop_threads=torch.get_num_interop_threads(),
            mode="torch.jit.trace + torch.jit.freeze{}, torch.inference_mode".format(
                " + optimize_for_inference" if self.options.optimize_for_inference else ""),
            traced_input_shapes=[list(t.shape) for t in example],
            graph_nodes=sum(1 for _ in self.module.graph.nodes()),
            profiling_executor=torch._C._get_graph_executor_optimize())

    def _script(self, module: Any, example: tuple) -> Any:
        """Traced (stage convert), frozen and optionally optimised (stage compile)."""
        import torch

        with self.stage("convert"):
            traced = self._trace(module, example)
        with self.stage("compile"):
            frozen = torch.jit.freeze(traced)
            return torch.jit.optimize_for_inference(frozen) if self.options.optimize_for_inference else frozen

    def _trace(self, module: Any, example: tuple) -> Any:
        """torch.jit.trace, its warnings kept: the row records them (the API is deprecated in
        torch 2.14, and a TracerWarning says where the trace may not generalise) and the log
        shows each one."""
        import torch

        with warnings.catch_warnings(record=True) as caught, torch.no_grad(), torch_model.autocast(self):
            warnings.simplefilter("always")
            try:
                traced = torch.jit.trace(module, example, check_trace=False)
            except (RuntimeError, torch.jit.Error) as e:
                raise UnsupportedError("torch.jit.trace cannot record this model: {}".format(
                    one_line(e, 400)), operator=_operator_in(str(e))) from None
        for w in caught:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        self.settings["trace_warnings"] = _summary(caught)
        return traced

    def infer_impl(self, feeds: Sample) -> List[Any]:
        import torch

        with torch.inference_mode():
            outs = self.module(*[torch.from_numpy(a).to(self.device) for a in feeds.values()])
            return torch_model.host_arrays(outs)

    def outputs_impl(self, raw: List[Any]) -> Sample:
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        self.module = None


def _summary(caught: List[warnings.WarningMessage]) -> dict:
    """Warnings by category, with each distinct message's first line once."""
    kinds = Counter(w.category.__name__ for w in caught)
    messages = sorted({str(w.message).strip().splitlines()[0][:200] for w in caught if str(w.message).strip()})
    return {"count": dict(kinds), "messages": messages}


def _operator_in(message: str) -> str:
    """The aten/torchvision operator a tracer error names ("... aten::foo ..."), if any."""
    for word in message.replace("'", " ").replace('"', " ").split():
        if "::" in word:
            return word.strip("().,:")
    return ""
