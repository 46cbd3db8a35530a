"""Triton python-backend model (copied into the repository as `1/model.py`): ONNX Runtime's
CPU execution provider inside Triton's python backend, configured from config.pbtxt's
parameters as the `ort` engine configures its session. It runs in the backend's stub process,
on the runner environment's interpreter and packages.

On load it writes what the session really is (ORT version, providers, threads read back from
the session) to the `report` file, where the runner reads it: the row says what ran.
"""
import json
import sys

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        opts = ort.SessionOptions()
        # ORT's default thread count reads the host's cores and ignores CPU limits.
        opts.intra_op_num_threads = int(params["intra_op_num_threads"])
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(params["onnx_path"], opts, providers=["CPUExecutionProvider"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]
        back = self.session.get_session_options()
        report = {
            "onnxruntime": ort.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "executable": sys.executable, "providers": self.session.get_providers(),
            "intra_op_num_threads": back.intra_op_num_threads, "inter_op_num_threads": back.inter_op_num_threads,
            "execution_mode": "sequential" if back.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL else "parallel",
            "input_types": {i.name: i.type for i in self.session.get_inputs()},
            "output_types": {o.name: o.type for o in self.session.get_outputs()},
            "libpython": _libpython(),
        }
        with open(params["report"], "w") as f:
            json.dump(report, f)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
                values = self.session.run(self.outputs, feeds)
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(v)) for name, v in zip(self.outputs, values)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as e:  # the client gets the error; the server keeps serving
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("{}: {}".format(type(e).__name__, e))))
        return responses

    def finalize(self):
        self.session = None


def _libpython():
    """The libpython this stub process loaded: it must be the interpreter's own (server.py)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libpython" in line:
                    return line.split()[-1]
    except OSError:
        pass
    return ""
