"""LiteRT runner: the ONNX export converted to a .tflite by onnx2tf (through TensorFlow; stage
`convert`, cached), loaded by LiteRT's interpreter (`ai_edge_litert.interpreter.Interpreter`,
XNNPACK applied by its default op resolver; stage `compile`) and run with `invoke`.

- onnx2tf wants static shapes: the converter gets the shape-specialised export (shared/specialise.py)
  when every test input has one shape, as a copy (onnx2tf rewrites the file it is given).
- TFLite is NHWC: `-k <inputs>` keeps the export's NCHW inputs (onnx2tf puts the transpose inside
  the model), so the same arrays are fed as to every engine; its signature `serving_default` keeps
  the ONNX names, and the runner calls the model through it (`get_signature_runner`).
- onnx2tf runs in a child process; its output is the converter log, kept with the .tflite.
"""
import os
import re
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional

from shared import Runner, Sample, UnsupportedError
from shared.specialise import specialised_model
from shared.tensors import graph_io, one_shape

CONVERT = "import sys; from onnx2tf.onnx2tf import main; sys.exit(main())"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOT_IMPLEMENTED = re.compile(r"ERROR: (\w+) OP is not yet implemented")
OP_INFO = re.compile(r"onnx_op_type: (\w+)\s+onnx_op_name: (\S+)")
FAILED_AT = re.compile(r"ERROR: onnx_op_name: (\S+)")
FLEX = re.compile(r"\(Flex(\w+)\)")


class LiteRtRunner(Runner):
    packages = ["ai-edge-litert", "onnx2tf", "tensorflow", "numpy", "onnx"]

    def available_impl(self) -> None:
        import ai_edge_litert.interpreter  # noqa: F401

    def version_impl(self) -> str:
        from importlib.metadata import version

        return version("ai-edge-litert")

    def load_impl(self) -> None:
        self.input_names, self.output_names = graph_io(self.spec.model_path)
        shapes = one_shape(self.samples)
        if shapes is None:
            raise UnsupportedError("onnx2tf converts for static shapes, and the test inputs' shapes differ; give "
                                   "inputs of one shape")
        with self.stage("convert"):
            source, self.settings["specialised"] = specialised_model(self, shapes)
            # -k keeps NCHW / NCDHW inputs as they are (onnx2tf transposes inside the model); a 3-D input
            # (a detector's CHW image, no batch) would be taken for NCW: -kat keeps its shape as it is
            keep = [n for n in self.input_names if len(shapes.get(n, [])) in (4, 5)]
            keep_shape = [n for n in self.input_names if len(shapes.get(n, [])) == 3]
            flags = (["-k"] + keep if keep else []) + (["-kat"] + keep_shape if keep_shape else []) + ["-v", "info"]
            converted = self._converted(source, os.path.basename(os.path.dirname(source)), flags)
        with self.stage("compile"):
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = Interpreter(model_path=converted, num_threads=self.spec.threads)
            try:  # prepares every node: a TensorFlow op onnx2tf kept (Flex) fails here, not at the first call
                self.interpreter.allocate_tensors()
            except RuntimeError as e:
                flex = flex_error(str(e))
                if flex is None:
                    raise
                raise flex from e
            signatures = self.interpreter.get_signature_list()
            # onnx2tf's signature keeps the ONNX names (its -coion renaming needs flatc, not in a wheel)
            signature = signatures.get("serving_default")
            if not signature or sorted(signature["inputs"]) != sorted(self.input_names) or not set(
                    self.output_names) <= set(signature["outputs"]):
                raise RuntimeError("the .tflite's signatures {} do not name the export's inputs {} and outputs {}".format(
                    signatures, self.input_names, self.output_names))
            self.call = self.interpreter.get_signature_runner("serving_default")
        self.precision = "fp32"  # a float32 .tflite (onnx2tf's model_float32), no fp16 or int8 variant loaded
        self.settings.update(num_threads=self.spec.threads, input_layout="NCHW kept (onnx2tf -k)",
                             input_shapes=shapes)

    def _converted(self, source: str, name: str, flags: List[str]) -> str:
        from importlib.metadata import version

        self.settings["converter_flags"] = flags

        def convert(folder: str) -> str:
            work = os.path.join(folder, "work")
            os.mkdir(work)
            copy = os.path.join(work, "model.onnx")
            shutil.copyfile(source, copy)  # onnx2tf rewrites its input file in place
            # onnx2tf runs the `onnxsim` command first: this environment's, found on PATH
            env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
            run = subprocess.run([sys.executable, "-c", CONVERT, "-i", copy, "-o", work] + flags, cwd=work, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                 errors="replace")
            text = ANSI.sub("", run.stdout)
            print(text, flush=True)
            made_file = os.path.join(work, "model_float32.tflite")
            if run.returncode != 0 or not os.path.isfile(made_file):
                raise conversion_error(text, run.returncode, _node_types(source))
            os.replace(made_file, os.path.join(folder, "model_float32.tflite"))
            shutil.rmtree(work)  # the saved model, the fp16 .tflite and the rewritten copy
            return text

        parts = [version("onnx2tf"), version("tensorflow"), version("onnxsim"), name, flags]
        folder = self.convert_cached(".tflite", parts, convert).folder
        self.settings["converted_model"] = path = os.path.join(folder, "model_float32.tflite")
        return path

    def infer_impl(self, feeds: Sample) -> List[Any]:
        import numpy as np

        out = self.call(**{name: feeds[name] for name in self.input_names})
        return [np.array(out[name]) for name in self.output_names]

    def outputs_impl(self, raw: List[Any]) -> Sample:
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        self.interpreter = self.call = None


def _node_types(path: str) -> Dict[str, str]:
    """Node name -> op type of the ONNX file onnx2tf was given."""
    import onnx

    return {node.name: node.op_type for node in onnx.load(path, load_external_data=False).graph.node}


def conversion_error(log: str, returncode: int, node_types: Optional[Dict[str, str]] = None) -> Exception:
    """What a failed onnx2tf run means: an op it has no converter for ("X OP is not yet
    implemented."), or the node whose conversion raised ("onnx_op_name: <node>"; its type from
    the ONNX file, else from the log's debug line for that node)."""
    found = NOT_IMPLEMENTED.search(log)
    if found:
        return UnsupportedError("onnx2tf has no conversion for ONNX {} ({!r}); try another engine".format(
            found.group(1), found.group(0)), operator=found.group(1))
    failed = FAILED_AT.findall(log)
    if failed:
        node = failed[-1]
        types = dict(node_types or {})
        types.update({name: op for op, name in OP_INFO.findall(log)})
        # onnx2tf prefixes some node names with "wa/" and prints them without it in its INFO lines
        op = types.get(node) or types.get(re.sub("^wa/", "/", node), "")
        return UnsupportedError("onnx2tf failed converting node {} ({}): {}".format(node, op or "type not in the log",
                                                                                   _last_error(log)),
                                operator=op or None, node=node)
    return RuntimeError("onnx2tf failed (exit status {}): {}".format(returncode, _last_error(log)))


def flex_error(message: str) -> Optional[Exception]:
    """The interpreter's refusal of TensorFlow ops onnx2tf kept as Select ("Flex") ops, which
    the LiteRT wheel has no kernels for ("Node number 53 (FlexErf) failed to prepare"): the op."""
    ops = FLEX.findall(message)
    if "Select TensorFlow op" not in message and not ops:
        return None
    names = ", ".join(sorted(set(ops))) or "not named"
    return UnsupportedError("onnx2tf kept TensorFlow op(s) {} as Select (Flex) ops, which LiteRT's interpreter has "
                            "no kernel for; try another engine".format(names), operator=ops[0] if ops else None)


def _last_error(log: str) -> str:
    """The last exception line, with the line after it (TensorFlow's errors say what is wrong there)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if re.match(r"\w*(Error|Exception)\b", line)]
    if not errors:
        return (lines or ["no output"])[-1][:400]
    last = errors[-1]
    after = lines[last + 1] if last + 1 < len(lines) and not lines[last + 1].startswith(("ERROR:", "WARNING:")) else ""
    return (lines[last] + (" " + after if after else ""))[:600]
