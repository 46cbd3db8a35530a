"""PyTorch, the reference: the same model object the ONNX was exported from, run eagerly.

`spec.model_path` is the export's `torch_model.json`: the factory, its arguments and the
state dict file, so this runner rebuilds exactly the weights that were exported; and, as the
model's family decided at export, how to call it (`call`) and read its outputs (`outputs`).
"""
import importlib
import itertools
import json
import os

from shared import EngineUnavailable, ProtocolError, Runner, Sample

# `call`: model(*tensors), or model([chw, ...]) as torchvision's detectors take images.
# `outputs`: a tensor or a tuple of them in output-name order, or the first of a list of dicts.
CALLS = ("tensors", "list_of_images")
OUTPUTS = ("tensors", "first_dict")


def calling_convention(card):
    """(call, outputs) of a model card; a card cached before these keys has only its task."""
    detector = card.get("task") == "detection"
    call = card.get("call", "list_of_images" if detector else "tensors")
    outputs = card.get("outputs", "first_dict" if detector else "tensors")
    if call not in CALLS or outputs not in OUTPUTS:
        raise ProtocolError("torch_model.json: call {!r} / outputs {!r}, expected one of {} / {}".format(
            call, outputs, ", ".join(CALLS), ", ".join(OUTPUTS)))
    return call, outputs


def _build(factory, kwargs, state):
    """The module with the exported weights. Its random initialisation would be thrown away,
    so build it on the meta device and take the state dict's tensors as they are; a factory
    that cannot be built there, or keeps tensors the state dict lacks, is built normally."""
    import torch

    try:
        with torch.device("meta"):
            model = factory(**kwargs)
        model.load_state_dict(state, assign=True)
        if not any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
            return model
    except Exception:
        pass
    model = factory(**kwargs)
    model.load_state_dict(state)
    return model


class TorchRunner(Runner):
    packages = ["torch", "torchvision", "numpy"]
    concurrent = True  # throughput: the model called from several threads (torch releases the GIL in its ops)

    def available_impl(self) -> None:
        import torch

        if self.spec.device != "cpu" and not torch.cuda.is_available():
            raise EngineUnavailable("this torch build sees no CUDA device (torch {})".format(torch.__version__))
        if not self.spec.model_path.endswith(".json"):
            raise EngineUnavailable("no PyTorch model to run: the model was given as an ONNX file")

    def version_impl(self) -> str:
        import torch

        return torch.__version__

    def load_impl(self) -> None:
        import torch

        # Throughput: each request's worker thread gets its share of the budget (the setting is
        # process-wide, and every calling thread runs its own intra-op team).
        torch.set_num_threads(self.threads_per_request)
        torch.set_num_interop_threads(1)
        with open(self.spec.model_path, encoding="utf-8") as f:
            card = json.load(f)
        module_name, _, attr = card["factory"].partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        state = torch.load(os.path.join(os.path.dirname(self.spec.model_path), card["state_dict"]),
                           map_location="cpu", weights_only=True)
        model = _build(factory, card["kwargs"], state)
        self.device = torch.device(self.spec.device)
        if self.device.type == "cuda":
            # The fp32 reference is fp32: PyTorch may run convolutions in TF32 on Ampere and
            # newer (cuDNN's default), which would judge every engine against rounded outputs.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            self.settings["tf32"] = False
        self.model = model.eval().to(self.device)
        self.call, self.returns = calling_convention(card)
        self.output_names = card["output_names"]
        self._hooks = []  # type: list
        self.settings.update(threads=torch.get_num_threads(), interop_threads=torch.get_num_interop_threads(),
                             mode="eager, torch.inference_mode")
        self.precision = "fp32"

    def infer_impl(self, feeds: Sample) -> Sample:
        import torch

        with torch.inference_mode():
            tensors = [torch.from_numpy(a).to(self.device) for a in feeds.values()]
            out = self.model(tensors) if self.call == "list_of_images" else self.model(*tensors)
            if self.returns == "first_dict":
                outs = [out[0][name] for name in self.output_names]
            else:
                outs = list(out) if isinstance(out, (tuple, list)) else [out]
            return {n: t.cpu().numpy().copy() for n, t in zip(self.output_names, outs)}

    def instrument_impl(self, on: bool) -> None:
        """A torchvision detector defines its phases: `transform` (resize, normalise), the
        network, and `transform.postprocess` (boxes back to input size). Time each with hooks,
        only while on, so the timed loop runs the bare model."""
        import time

        transform = getattr(self.model, "transform", None)
        if not hasattr(transform, "postprocess") or not hasattr(transform, "register_forward_hook"):
            return
        if not on:
            for handle in self._hooks:
                handle.remove()
            self._hooks = []
            transform.__dict__.pop("postprocess", None)  # back to the class's method
            return
        import torch

        marks = {}  # type: dict

        def clock():
            if self.device.type == "cuda":  # kernels run asynchronously: wait for them
                torch.cuda.synchronize(self.device)
            return time.perf_counter()

        def mark(name):
            return lambda *_: marks.__setitem__(name, clock())

        def done(*_):
            end = clock()
            if "pre_end" not in marks:  # a forward that did not go through its transform
                marks.clear()
                return
            pre = marks["pre_end"] - marks["start"]
            post = marks.get("post", 0.0)
            for phase, seconds in (("preprocess", pre), ("inference", end - marks["start"] - pre - post),
                                   ("postprocess", post)):
                self.phase_ms.setdefault(phase, []).append(seconds * 1e3)
            marks.clear()

        original = transform.postprocess

        def postprocess(*args, **kwargs):
            t = clock()
            out = original(*args, **kwargs)
            marks["post"] = clock() - t
            return out

        transform.postprocess = postprocess
        self._hooks = [self.model.register_forward_pre_hook(mark("start")),
                       transform.register_forward_hook(mark("pre_end")),
                       self.model.register_forward_hook(done)]

    def release_impl(self) -> None:
        self.model = None
