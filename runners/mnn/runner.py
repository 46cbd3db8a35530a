"""MNN runner: the ONNX export converted by MNN's converter (stage `convert`, cached), loaded as an
MNN Module on the CPU backend (stage `compile`), run with `onForward`.

- When every test input has one shape, the converter gets the shape-specialised export
  (shared/specialise.py): MNN 3.6 runs the dynamic Faster R-CNN export, but with wrong boxes.
- The converter is MNN's C++ converter in a child process, whose output becomes the row's
  converter log; not the `mnnconvert` console script, whose Python wrapper pip-installs a logging
  SDK into the environment and sends a usage record to MNN's maintainers after each conversion.
- Precision: MNN's precision mode, "high" for fp32, "low" for fp16 (fp16 kernels only where the
  CPU has fp16 arithmetic), "Low_BF16" for bf16 (MNN's BF16 backend, where built and usable).
  MNN does not say which kernels a mode got, so a fp16 or bf16 row runs its first input at that
  mode and at "high" before timing: identical outputs mean the same fp32 kernels ran.
"""
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, List

from shared import Runner, Sample, UnsupportedError
from shared.specialise import specialised_model
from shared.tensors import graph_io, one_shape

# e2e precision -> MNN's precision mode, spelled as its Python binding parses it (an unknown
# spelling silently leaves MNN's default, "normal")
MODES = {"fp32": "high", "fp16": "low", "bf16": "Low_BF16"}
BIZ_CODE = "e2e"
# What `mnnconvert` runs, without its wrapper (above). It returns true even when the conversion
# failed: the log says ("Converted Success!" / "Converted Failed!").
CONVERT = "import sys, _tools; _tools.mnnconvert(sys.argv)"
NOT_SUPPORTED = re.compile(r"These Op Not Support: ([^\n]+)")


@dataclass
class Options:
    specialise: bool = True  # fold the export's shape arithmetic for the inputs' one shape

    def __post_init__(self) -> None:
        if not isinstance(self.specialise, bool):
            raise ValueError("specialise must be true or false, got {!r}".format(self.specialise))


class MnnRunner(Runner):
    packages = ["mnn", "numpy", "onnx"]
    Options = Options

    def available_impl(self) -> None:
        import MNN  # noqa: F401

    def version_impl(self) -> str:
        import MNN

        return MNN.version()

    def load_impl(self) -> None:
        import onnx

        graph = onnx.load(self.spec.model_path, load_external_data=False).graph
        self.input_names, self.output_names = graph_io(graph)
        # MNN has no int64 tensors (labels come back int32): outputs get the export's types back
        self.output_types = {o.name: onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)
                             for o in graph.output}
        del graph
        _float32_only(self.samples[0])
        shapes = one_shape(self.samples)
        with self.stage("convert"):
            source, name = self.spec.model_path, os.path.basename(self.spec.model_path)
            if self.options.specialise and shapes:
                source, self.settings["specialised"] = specialised_model(self, shapes)
                name = os.path.basename(os.path.dirname(source))  # its cache entry, named by its key
            self.settings["input_shapes"] = shapes or "vary between inputs: the dynamic export"
            converted = self._converted(source, name)
        mode = MODES[self.spec.precision]
        with self.stage("compile"):
            self.module = self._load(converted, mode)
            self.precision = "fp32"  # precision mode "high" is MNN's fp32 kernels; other modes are read back
            if mode != "high":
                self.precision = self._ran_at(converted, mode)
        self.settings.update(backend="CPU", num_thread=self.spec.threads, precision_mode=mode, shape_mutable=True)

    def _converted(self, source: str, name: str) -> str:
        """The .mnn file of `source` (named `name` in the cache key), from the cache when it was
        converted before: one sealed entry, a folder of `model.mnn` and the converter's log
        `convert.log`, which is copied into the runner's log."""
        import MNN

        def convert(folder: str) -> str:
            model = os.path.join(folder, "model.mnn")
            run = subprocess.run([sys.executable, "-c", CONVERT, "mnnconvert", "-f", "ONNX", "--modelFile", source,
                                  "--MNNModel", model, "--bizCode", BIZ_CODE], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, universal_newlines=True, errors="replace")
            print(run.stdout, flush=True)
            if run.returncode != 0 or "Converted Success" not in run.stdout or not os.path.isfile(model):
                raise conversion_error(run.stdout, run.returncode)
            return run.stdout

        folder = self.convert_cached(".mnn", [MNN.version(), BIZ_CODE, name], convert).folder
        self.settings["converted_model"] = path = os.path.join(folder, "model.mnn")
        return path

    def _load(self, path: str, mode: str) -> Any:
        from MNN import nn

        runtime = nn.create_runtime_manager(({"backend": "CPU", "numThread": self.spec.threads, "precision": mode},))
        # shape_mutable: a detector's inner shapes (boxes after NMS) change from call to call
        return nn.load_module_from_file(path, self.input_names, self.output_names, runtime_manager=runtime,
                                        shape_mutable=True)

    def _ran_at(self, path: str, mode: str) -> str:
        """The precision `mode` really ran at: the first input through a module at `mode` and one
        at "high", both loaded for this and dropped (the timed module's first call stays the
        first inference)."""
        import numpy as np

        asked = self.outputs_impl(self._call(self._load(path, mode), self.samples[0]))
        high = self.outputs_impl(self._call(self._load(path, "high"), self.samples[0]))
        same = all(np.array_equal(asked[name], high[name]) for name in self.output_names)
        self.precision_detail = {
            "source": "the first input at precision mode {!r} and at 'high' (MNN reports no kernel "
                      "precision)".format(mode), "outputs_identical_to_high": same}
        return "fp32" if same else self.spec.precision

    def infer_impl(self, feeds: Sample) -> List[Any]:
        return self._call(self.module, feeds)

    def _call(self, module: Any, feeds: Sample) -> List[Any]:
        import MNN.expr as F
        import numpy as np

        inputs = [F.const(feeds[name], list(feeds[name].shape), F.NCHW) for name in self.input_names]
        outputs = module.onForward(inputs)
        if len(outputs) != len(self.output_names):
            raise RuntimeError("MNN returned {} outputs for {} (runner.log has MNN's messages)".format(
                len(outputs), len(self.output_names)))
        # read() views MNN's own buffer, which the next call overwrites: copy, as every engine does
        return [np.array((F.convert(v, F.NCHW) if v.data_format == F.NC4HW4 else v).read()) for v in outputs]

    def outputs_impl(self, raw: List[Any]) -> Sample:
        return {name: array.astype(self.output_types[name], copy=False) for name, array in zip(self.output_names, raw)}

    def release_impl(self) -> None:
        self.module = None


def _float32_only(sample: Sample) -> None:
    """The runner feeds MNN float32 tensors (`expr.const`'s default type): what the zoo's models take."""
    other = {name: str(array.dtype) for name, array in sample.items() if str(array.dtype) != "float32"}
    if other:
        raise UnsupportedError("the MNN runner feeds float32 inputs only; these are not: {}".format(other))


def conversion_error(log: str, returncode: int) -> Exception:
    """What a failed conversion means. MNN's converter lists the ops it has no converter for on
    one line: "These Op Not Support: ONNX::Bernoulli | ONNX::Hardmax"."""
    found = NOT_SUPPORTED.search(log)
    if found:
        ops = [op.strip().split("::")[-1] for op in found.group(1).split("|") if op.strip()]
        return UnsupportedError("MNN's converter has no conversion for {} (it says: {!r}); try another "
                                "engine".format(", ".join(ops), found.group(0).strip()), operator=ops[0])
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return RuntimeError("MNN's converter failed (exit status {}): {}".format(returncode, lines[-1] if lines else "no output"))
