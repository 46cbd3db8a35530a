"""ncnn runner: the ONNX export converted by pnnx for the inputs' one shape (stage `convert`,
cached), loaded into an ncnn Net on the CPU (stage `compile`), run with an Extractor.

- pnnx's `fp16=0`: its default stores the weights as fp16, which fails fp32 parity; the precision a
  row runs at is set at run time instead (below).
- pnnx names the blobs in0, in1, ... and out0, out1, ... in the order of the export's inputs and
  outputs: the outputs go back under the export's names. ncnn's Mat has no batch axis: a batch of
  one is dropped on the way in and put back on the way out.
- pnnx writes what it cannot translate as layers ncnn does not have (NonZero, torch.unbind, ...);
  ncnn's load stops at the first. The runner reads the layer types from the .param file first and
  ends the row `unsupported` naming that layer's type (and lists the others).
- Precision: ncnn's options. fp32 turns fp16 and bf16 storage off (ncnn's default stores fp16
  where the CPU has F16C, every AVX2 x86); fp16 turns fp16 storage on (fp16 arithmetic exists only
  on ARM), bf16 turns bf16 storage on. ncnn does not say which layers took them, so a fp16 or bf16
  row runs its first input at those options and at fp32's before timing: identical outputs mean
  fp32 ran.
"""
import importlib.util
import os
import shutil
import subprocess
from typing import Any, Dict, List

from shared import EngineUnavailable, Runner, Sample, UnsupportedError
from shared.tensors import graph_io

# e2e precision -> the ncnn options that set it
STORAGE = {"fp32": {"use_fp16_packed": False, "use_fp16_storage": False, "use_fp16_arithmetic": False,
                    "use_bf16_storage": False},
           "fp16": {"use_fp16_packed": True, "use_fp16_storage": True, "use_fp16_arithmetic": True,
                    "use_bf16_storage": False},
           "bf16": {"use_fp16_packed": False, "use_fp16_storage": False, "use_fp16_arithmetic": False,
                    "use_bf16_storage": True}}


class NcnnRunner(Runner):
    packages = ["ncnn", "pnnx", "numpy", "onnx"]

    def available_impl(self) -> None:
        import ncnn  # noqa: F401

    def version_impl(self) -> str:
        import ncnn

        return ncnn.__version__

    def load_impl(self) -> None:
        import onnx

        graph = onnx.load(self.spec.model_path, load_external_data=False).graph
        self.input_names = graph_io(graph)[0]
        self.outputs = [(o.name, len(o.type.tensor_type.shape.dim),
                         onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)) for o in graph.output]
        del graph
        other = {name: str(a.dtype) for name, a in self.samples[0].items() if str(a.dtype) != "float32"}
        if other:  # ncnn's Mat holds float32 (or fp16/bf16 of it)
            raise UnsupportedError("the ncnn runner feeds float32 inputs only; these are not: {}".format(other))
        shapes = {name: list(self.samples[0][name].shape) for name in self.input_names}
        if any(list(s[name].shape) != shapes[name] for s in self.samples for name in self.input_names):
            raise UnsupportedError("pnnx converts for one input shape, and the test inputs' shapes vary; "
                                   "run ncnn with inputs of one size (--input-size)")
        if any(len(dims) >= 4 and dims[0] != 1 for dims in shapes.values()):
            raise UnsupportedError("ncnn runs one image per call (its Mat has no batch axis), and the "
                                   "inputs' shapes are {}".format(shapes))
        with self.stage("convert"):
            param, model = self._converted(shapes)
        with self.stage("compile"):
            _check_layers(param)
            self.net = self._net(param, model, self.spec.precision)
            self.precision = "fp32"  # fp16 and bf16 storage and arithmetic off: fp32 layers; others read back
            if self.spec.precision != "fp32":
                self.precision = self._ran_at(param, model)
        opt = self.net.opt
        self.settings.update(num_threads=opt.num_threads, use_vulkan_compute=opt.use_vulkan_compute,
                             **{key: getattr(opt, key) for key in STORAGE["fp32"]})

    def _converted(self, shapes: Dict[str, List[int]]) -> List[str]:
        """The .param and .bin pnnx makes of the export for `shapes`, from the cache when made
        before: one sealed entry, a folder of `model.param`, `model.bin` and pnnx's log
        `pnnx.log`, which is copied into the runner's log."""
        from importlib.metadata import version

        argument = ",".join("[{}]f32".format(",".join(str(d) for d in shapes[name])) for name in self.input_names)
        self.settings["pnnx_inputshape"] = argument

        def convert(folder: str) -> str:
            # pnnx writes its intermediate files beside its input: give it a link in a folder of
            # its own, inside the entry being made (a killed run's leftovers go with it)
            work = os.path.join(folder, "pnnx")
            os.makedirs(work)
            source = os.path.join(work, "m.onnx")
            os.symlink(os.path.abspath(self.spec.model_path), source)
            beside = os.path.dirname(os.path.abspath(self.spec.model_path))
            for name in self.spec.model_files:  # external data, found beside the model
                os.symlink(os.path.join(beside, name), os.path.join(work, name))
            run = subprocess.run([_pnnx(), source, "inputshape=" + argument, "fp16=0"], cwd=work,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                 errors="replace")
            print(run.stdout, flush=True)
            outputs = [os.path.join(work, "m.ncnn.param"), os.path.join(work, "m.ncnn.bin")]
            if run.returncode != 0 or not all(os.path.isfile(p) for p in outputs):
                lines = [line for line in run.stdout.splitlines() if line.strip()]
                raise RuntimeError("pnnx failed (exit status {}): {}".format(
                    run.returncode, lines[-1] if lines else "no output"))
            os.replace(outputs[0], os.path.join(folder, "model.param"))
            os.replace(outputs[1], os.path.join(folder, "model.bin"))
            shutil.rmtree(work)
            return run.stdout

        folder = self.convert_cached(".ncnn", [version("pnnx"), argument, "fp16=0"], convert, log="pnnx.log").folder
        param, model = os.path.join(folder, "model.param"), os.path.join(folder, "model.bin")
        self.settings["converted_model"] = param
        return [param, model]

    def _net(self, param: str, model: str, precision: str) -> Any:
        import ncnn

        net = ncnn.Net()
        net.opt.num_threads = self.spec.threads
        net.opt.use_vulkan_compute = False
        for key, value in STORAGE[precision].items():
            setattr(net.opt, key, value)
        if net.load_param(param) != 0 or net.load_model(model) != 0:
            raise RuntimeError("ncnn could not load {} (runner.log has ncnn's message)".format(param))
        return net

    def _ran_at(self, param: str, model: str) -> str:
        """The precision the asked options really ran at: the first input through a Net with them
        and one with fp32's, both loaded for this and dropped."""
        import numpy as np

        asked = self.outputs_impl(self._call(self._net(param, model, self.spec.precision), self.samples[0]))
        fp32 = self.outputs_impl(self._call(self._net(param, model, "fp32"), self.samples[0]))
        same = all(np.array_equal(asked[name], fp32[name]) for name in asked)
        self.precision_detail = {"source": "the first input with ncnn's {} options and with fp32's (ncnn "
                                           "reports no layer precision)".format(self.spec.precision),
                                 "outputs_identical_to_fp32": same}
        return "fp32" if same else self.spec.precision

    def infer_impl(self, feeds: Sample) -> List[Any]:
        return self._call(self.net, feeds)

    def _call(self, net: Any, feeds: Sample) -> List[Any]:
        import ncnn
        import numpy as np

        with net.create_extractor() as extractor:
            for i, name in enumerate(self.input_names):
                x = feeds[name]
                extractor.input("in{}".format(i), ncnn.Mat(x[0] if x.ndim >= 4 else x))
            outputs = []
            for i in range(len(self.outputs)):
                code, mat = extractor.extract("out{}".format(i))
                if code != 0:
                    raise RuntimeError("ncnn's extract of out{} returned {}".format(i, code))
                outputs.append(np.array(mat))  # a copy: the Mat's memory goes with the extractor
        return outputs

    def outputs_impl(self, raw: List[Any]) -> Sample:
        # the batch axis ncnn does not keep comes back where the export has one more dim
        return {name: (array[None] if array.ndim == rank - 1 else array).astype(dtype, copy=False)
                for (name, rank, dtype), array in zip(self.outputs, raw)}

    def release_impl(self) -> None:
        self.net = None


def _pnnx() -> str:
    """pnnx's own binary, in its package: `import pnnx` would import torch, which the binary does not need."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable("pnnx is not installed in this environment")
    return os.path.join(list(spec.submodule_search_locations)[0], "pnnx")


def _check_layers(param: str) -> None:
    """Raise UnsupportedError for the layers of `param` ncnn has no implementation of: what pnnx
    could not translate keeps its PyTorch or ONNX name (torch.unbind, NonZero)."""
    import ncnn

    missing = {}  # type: Dict[str, List[str]]
    first = None  # type: Optional[str]
    with open(param, encoding="utf-8") as f:
        for line in f.read().splitlines()[2:]:  # magic, then layer and blob counts
            fields = line.split()
            if len(fields) >= 2 and ncnn.layer_to_index(fields[0]) == -1:
                missing.setdefault(fields[0], []).append(fields[1])
                first = first or fields[0]
    if first:
        raise UnsupportedError(
            "ncnn has no layer {} (layer {!r}), the first of {} layer type(s) pnnx left untranslated: {}; try "
            "another engine".format(first, missing[first][0], len(missing),
                                    ", ".join("{} x{}".format(t, len(n)) for t, n in missing.items())),
            operator=first, node=missing[first][0])
