"""PyTorch, the reference: the same model object the ONNX was exported from, run eagerly.

`spec.model_path` is the export's `torch_model.json`, built, called and read by
`shared/torch_model.py` as every runner that takes the PyTorch model does.
"""
from shared import EngineUnavailable, Runner, Sample, torch_model


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
        model, card = torch_model.build(self.spec.model_path)
        self.device = torch.device(self.spec.device)
        self.settings.update(torch_model.fp32_math(self.device))  # the reference is fp32 through and through
        self.model = model.to(self.device)
        self.call, self.returns = torch_model.calling_convention(card)
        self.output_names = card["output_names"]
        self._hooks = []  # type: list
        self.settings.update(threads=torch.get_num_threads(), interop_threads=torch.get_num_interop_threads(),
                             mode="eager, torch.inference_mode")
        # fp32 without autocast: the model's float32 weights on float32 inputs, with fp32_math's
        # settings read back above (TF32 off, "highest" matmul precision)
        self.precision = "fp32"
        if self.spec.precision in torch_model.REDUCED:  # autocast: read back what the arithmetic ran in
            self.settings["autocast"] = torch_model.REDUCED[self.spec.precision]
            self.precision = torch_model.ran_in(self, lambda: self.infer_impl(self.samples[0]))

    def infer_impl(self, feeds: Sample) -> Sample:
        import torch

        with torch.inference_mode(), torch_model.autocast(self):
            tensors = [torch.from_numpy(a).to(self.device) for a in feeds.values()]
            out = torch_model.call(self.model, self.call, tensors, list(feeds))
            outs = torch_model.output_tensors(out, self.returns, self.output_names)
            return dict(zip(self.output_names, torch_model.host_arrays(outs)))

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
