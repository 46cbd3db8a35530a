"""Engine error messages -> the operator (and node) an `unsupported` row names.

Every message is real: the text a pinned engine printed on a one-node model (a real run, named),
or the engine's own format string filled in (repository, file and format string named).
"""
import os
import sys
import types
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from shared import RunSpec, UnsupportedError
from shared.ort import operator_in as ort_operator_in
from tests.unit.test_runner_modules import load_runner

RUNNERS = Path(__file__).parents[2] / "runners"
openvino, openppl, tvm, trt, mnn = (load_runner(RUNNERS / e / "runner.py")
                                    for e in ("openvino", "openppl", "tvm", "trt", "mnn"))


# -- OpenVINO -----------------------------------------------------------------------------------
# Real runs, openvino 2026.4.1, core.read_model() of one-node models (FooBar, test_domain.UnsupportedAdd,
# DepthToSpace with mode XYZ): the ONNX frontend's report, whose lines are
# "-- No conversion rule found for operations: " and "-- Conversion is failed for: "
# (openvinotoolkit/openvino, src/frontends/common_translators/src/unconverted_ops_report.cpp).
OV_HEAD = ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at "
           "src/frontends/common_translators/src/unconverted_ops_report.cpp:151:\n"
           "FrontEnd API failed with OpConversionFailure:\nModel wasn't fully converted.")
OV_NO_RULE = OV_HEAD + "\nSummary:\n-- No conversion rule found for operations: FooBar-17\n\n"
OV_NO_RULE_DOMAIN = OV_HEAD + "\nSummary:\n-- No conversion rule found for operations: test_domain.UnsupportedAdd\n\n"
OV_FAILED = OV_HEAD + (" Failed operations detailed log:\n-- DepthToSpace-17 with a message:\n"
                       "While validating ONNX node '<Node(DepthToSpace): y>': Check 'false' failed at "
                       "src/frontends/onnx/frontend/src/op/depth_to_space.cpp:28:\n"
                       "FrontEnd API failed with GeneralFailure:\nonly 'DCR' and 'CRD' modes are supported\n\n"
                       "Summary:\n-- Conversion is failed for: DepthToSpace-17\n\n")
# The CPU plugin (openvinotoolkit/openvino, src/plugins/intel_cpu/src/node.cpp): OPENVINO_THROW(
# "Unsupported operation of type: ", op->get_type_name(), " name: ", op->get_friendly_name(), errorDetails),
# errorDetails = "\nDetails:\n" + the reasons each implementation gave.
OV_CPU = "Unsupported operation of type: NonZero name: /roi_heads/NonZero\nDetails:\n"


@pytest.mark.parametrize("message, operator, node", [
    (OV_NO_RULE, "FooBar", None),
    (OV_NO_RULE_DOMAIN, "test_domain.UnsupportedAdd", None),
    (OV_FAILED, "DepthToSpace", None),
    (OV_CPU, "NonZero", "/roi_heads/NonZero"),
    ("Exception from src/inference/src/cpp/core.cpp:84:\nout of memory", None, None),
])
def test_openvino_operator(message, operator, node):
    assert openvino._operator_in(message)[:2] == (operator, node)


# -- OpenPPL: ppl.nn v0.9.2 (../shared/openppl-src/ppl.nn-v0.9.2.tar.gz), its LOG(ERROR) lines ------
@pytest.mark.parametrize("log, expected", [
    # a real run of the x86 engine. engines/x86/optimizer/opt_graph.cc: "cannot find creator for
    # X86OptKernel[" << node->GetName() << "] of type[" << type.domain << ":" << type.name << "]"
    ("cannot find creator for X86OptKernel[/transform/Reciprocal] of type[:Reciprocal]",
     ("Reciprocal", "/transform/Reciprocal", None)),
    # engines/x86/optimizer/rules/utils.h: the same without "of"
    ("cannot find creator for X86OptKernel[/transform/Reciprocal] type[:Reciprocal]",
     ("Reciprocal", "/transform/Reciprocal", None)),
    # engines/cuda/optimizer/opt_graph.cc: "cannot find creator for CudaOptKernel[" << node->GetName()
    # << "] type[" << type.domain << ":" << type.name << "]"
    ("cannot find creator for CudaOptKernel[/roi_heads/Loop] type[:Loop]", ("Loop", "/roi_heads/Loop", None)),
    # engines/{x86,cuda}/engine.cc: "cannot find creator for node[" << node->GetName() << "] of type["
    # << type.domain << ":" << type.name << ":" << type.version << "]"
    ("cannot find creator for node[/roi_heads/Loop] of type[:Loop:11]", ("Loop", "/roi_heads/Loop", "11")),
    # optimizers/engine_graph_partitioner.cc: "op[" << node->GetName() << "] with type[" << type.domain
    # << ":" << type.name << ":" << type.version << "] is not supported."
    ("op[/transform/Reciprocal] with type[:Reciprocal:11] is not supported.",
     ("Reciprocal", "/transform/Reciprocal", "11")),
    # models/onnx/graph_parser.cc: "unsupported op: domain[" << pb_node.domain() << "], type["
    # << pb_node.op_type() << "], version[" << op_set_ref->second << "]"
    ("unsupported op: domain[], type[Reciprocal], version[11]", ("Reciprocal", None, "11")),
    # optimizers/utils.cc names the node only
    ("cannot find implementation of node[/transform/Reciprocal]", (None, None, None)),
])
def test_openppl_refused_op(log, expected):
    assert openppl._refused_op("some earlier line\n" + log + "\n") == expected


def test_openppl_load_step_reads_the_operator_from_stderr():
    runner = openppl.OpenPPLRunner(RunSpec(engine="openppl", model_path="m.onnx", inputs_path="i.npz"))
    runner.rc_ok, runner.ret_str, runner.settings["engine"] = 0, lambda status: "not found", "x86"

    def step():  # ppl.nn logs through C stdio: fd 2, not sys.stderr
        os.write(2, b"cannot find creator for X86OptKernel[/transform/Reciprocal] of type[:Reciprocal]\n")
        return 1

    with pytest.raises(UnsupportedError) as e:
        runner._call(step, "prepare the graph")
    assert (e.value.operator, e.value.node) == ("Reciprocal", "/transform/Reciprocal")
    assert "the x86 engine has no Reciprocal." in str(e.value) and "opset None" not in str(e.value)


# The whole of what ppl.nn v0.9.2 wrote to stderr in the e2e-openppl image (x86 engine, Preprocess)
# for torchvision's Faster R-CNN at opset 11, colour codes included (ppl.common's StdioLogger).
FASTER_RCNN_X86_LOG = (
    "\x1b[0;32m[INFO][2026-12-02 05:13:13.935][utils.cc:369] \x1b[0mtotal partition(s) of graph[main_graph]: 1.\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:13:13.935][opt_graph.cc:44] \x1b[0mcannot find creator for "
    "X86OptKernel[/transform/Reciprocal] of type[:Reciprocal]\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:13:13.935][opt_graph.cc:100] \x1b[0minit kernels failed: not found\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:13:13.935][engine.cc:87] \x1b[0minit OptGraph failed: not found\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:13:13.940][engine.cc:147] \x1b[0mDoOptimize failed: not found\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:13:13.940][utils.cc:245] \x1b[0mprocess graph[main_graph] by engine[x86] "
    "failed: not found\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:13:13.940][utils.cc:394] \x1b[0mGenPartitionsInfoAndShapes failed:not found\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:13:13.940][runtime_builder_impl.cc:87] \x1b[0mprocess graph failed: not found\n")


def test_openppl_reads_the_operator_from_the_real_faster_rcnn_log():
    assert openppl._refused_op(FASTER_RCNN_X86_LOG) == ("Reciprocal", "/transform/Reciprocal", None)


# The same for an opset-17 model (Relu then Identity) at LoadModelFromFile: ppl.nn's ONNX parser
# registers Relu for opsets 6-16 only (models/onnx/param_parser_manager.cc).
OPSET17_PARSER_LOG = (
    "\x1b[0;31m[ERROR][2026-12-02 05:15:28.541][graph_parser.cc:181] \x1b[0munsupported op: domain[], type[Relu], "
    "version[17]\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:15:28.541][graph_parser.cc:223] \x1b[0mParseNodeInfo for node[/head/Relu] "
    "failed: unsupported\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:15:28.541][graph_parser.cc:309] \x1b[0mParseGraphNode failed.\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:15:28.541][model_parser.cc:79] \x1b[0mparse graph failed: unsupported\n"
    "\x1b[0;31m[ERROR][2026-12-02 05:15:28.541][runtime_builder_impl.cc:48] \x1b[0mparse graph failed: unsupported\n")


def test_openppl_reads_operator_node_and_opset_from_the_real_parser_log():
    assert openppl._refused_op(OPSET17_PARSER_LOG) == ("Relu", "/head/Relu", "17")
    runner = openppl.OpenPPLRunner(RunSpec(engine="openppl", model_path="m.onnx", inputs_path="i.npz"))
    runner.rc_ok, runner.ret_str, runner.settings["engine"] = 0, lambda status: "unsupported", "x86"

    def step():
        os.write(2, OPSET17_PARSER_LOG.encode())
        return 1

    with pytest.raises(UnsupportedError) as e:
        runner._call(step, "read the ONNX model", lacking="ppl.nn's ONNX parser")
    assert "ppl.nn's ONNX parser has no Relu at opset 17." in str(e.value)


def test_openppl_names_the_opset_when_ppl_nn_logs_it():
    runner = openppl.OpenPPLRunner(RunSpec(engine="openppl", model_path="m.onnx", inputs_path="i.npz"))
    runner.rc_ok, runner.ret_str, runner.settings["engine"] = 0, lambda status: "unsupported", "cuda"

    def step():  # optimizers/engine_graph_partitioner.cc (Identity: x86 1-13, cuda 1-12)
        os.write(2, b"\x1b[0;31m[ERROR][2026-12-02 04:00:00.000][engine_graph_partitioner.cc:207] \x1b[0m"
                    b"op[/model/Identity] with type[:Identity:17] is not supported.\n")
        return 1

    with pytest.raises(UnsupportedError) as e:
        runner._call(step, "take the engine")
    assert (e.value.operator, e.value.node) == ("Identity", "/model/Identity")
    assert "the cuda engine has no Identity at opset 17." in str(e.value)


# -- TVM (apache-tvm 0.27.0.post1) -------------------------------------------------------------------
def test_tvm_build_error_names_the_relax_op():
    # a real run: tvm.compile() of a Relax function calling relax.op.ewise_fma, which has no lowering
    message = ("CodeGenVM cannot emit this Relax operator directly. Run the appropriate lowering pass, or route the "
               "operator to an external codegen before VM codegen.\nOffending call:\nR.ewise_fma(x, x, x)")
    assert tvm._relax_op(message) == "relax.ewise_fma"
    assert tvm._relax_op("InternalError: out of memory") is None


def test_tvm_frontend_error_names_the_onnx_node(monkeypatch):
    # a real run: from_onnx() of a graph with a FooBar node raised tvm.error.OpNotImplemented with this
    # (apache/tvm, python/tvm/relax/frontend/onnx/onnx_frontend.py, _check_for_unsupported_ops:
    # "The following operators are not supported for frontend ONNX: " + ", ".join(unsupported_ops))
    class OpNotImplemented(Exception):
        pass

    stub = types.SimpleNamespace(error=types.SimpleNamespace(OpNotImplemented=OpNotImplemented))
    monkeypatch.setitem(sys.modules, "tvm", stub)  # _unsupported() checks the error's type
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="/a/Relu"),
                               helper.make_node("FooBar", ["r"], ["y"], name="/head/FooBar")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    message = "The following operators are not supported for frontend ONNX: FooBar"
    error = tvm._unsupported(OpNotImplemented(message), graph)
    assert (error.operator, error.node) == ("FooBar", "/head/FooBar")


# -- ONNX Runtime (onnxruntime 1.32.0) ---------------------------------------------------------------
def test_ort_operator():
    # a real run: InferenceSession() of a MatMul on bfloat16, which the CPU EP has no kernel for
    # (microsoft/onnxruntime, onnxruntime/core/framework/session_state.cc: "Could not find an implementation
    # for ", node.OpType(), "(", node.SinceVersion(), ") node with name '", node.Name(), "'")
    message = ("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for MatMul(13) node "
               "with name '/fc/MatMul'")
    assert ort_operator_in(message) == "MatMul"
    assert ort_operator_in("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : bad allocation") == ""


# -- TensorRT: tensorrt.OnnxParser's ParserError objects --------------------------------------------
class ParserError:
    """The methods of tensorrt.ParserError used (NVIDIA/TensorRT, python/src/parsers/pyOnnx.cpp)."""

    def __init__(self, desc, code, node_name="", node_operator=""):
        self.desc, self.code = lambda: desc, lambda: code
        self.node_name, self.node_operator = lambda: node_name, lambda: node_operator


class OnnxParser:
    def __init__(self, *errors):
        self.errors, self.num_errors = errors, len(errors)

    def get_error(self, i):
        return self.errors[i]


# onnx/onnx-tensorrt: onnxOpImporters.cpp, FallbackPluginImporter (an op with no importer):
# ASSERT_NODE(creator, "Plugin not found, are the plugin name, version, and namespace correct?", node, nodeIdx,
# ErrorCode::kUNSUPPORTED_NODE); Status.hpp's ASSERT_NODE writes "Assertion failed: " << #condition << ": " << msg.
NO_PLUGIN = "Assertion failed: creator: Plugin not found, are the plugin name, version, and namespace correct?"
# ModelImporter.cpp: ASSERT(toposort(graph.node(), &topoOrder) && "Failed to sort the model topologically.",
# ErrorCode::kINVALID_GRAPH); ASSERT writes "Assertion failed: " #condition and names no node.
NO_TOPOSORT = 'Assertion failed: toposort(graph.node(), &topoOrder) && "Failed to sort the model topologically."'


def test_trt_parser_error_names_the_node():
    error = trt._parse_error(OnnxParser(ParserError(NO_PLUGIN, "ErrorCode.UNSUPPORTED_NODE", "/a/FooBar", "FooBar"),
                                        ParserError(NO_PLUGIN, "ErrorCode.UNSUPPORTED_NODE", "/a/Baz", "Baz")))
    assert isinstance(error, UnsupportedError) and (error.operator, error.node) == ("FooBar", "/a/FooBar")
    assert "Plugin not found" in str(error) and "1 more error" in str(error)


def test_trt_parser_error_without_a_node_is_a_failure():
    error = trt._parse_error(OnnxParser(ParserError(NO_TOPOSORT, "ErrorCode.INVALID_GRAPH")))
    assert not isinstance(error, UnsupportedError) and "INVALID_GRAPH" in str(error)


# -- MNN 3.6.1: its converter's output (the row's converter log), real runs on one-node models ------
# (Hardmax; Hardmax then Bernoulli). The converter exits 0 and returns true either way.
MNN_HARDMAX = """The device supports: i8sdot:0, fp16:0, i8mm: 0, sve2: 0, sme2: 0
Start to Convert Other Model Format To MNN Model..., target version: 3.6
[14:10:17] :46: ONNX Model ir version: 14
[14:10:17] :47: ONNX Model opset version: 17
Start to Optimize the MNN Net...
[14:10:17] :220: These Op Not Support: ONNX::Hardmax\x20
Converted Failed!
"""
MNN_TWO = MNN_HARDMAX.replace("ONNX::Hardmax ", "ONNX::Bernoulli | ONNX::Hardmax ")


def test_mnn_converter_names_the_ops_it_cannot_convert():
    error = mnn.conversion_error(MNN_HARDMAX, 0)
    assert isinstance(error, UnsupportedError) and error.operator == "Hardmax"
    error = mnn.conversion_error(MNN_TWO, 0)
    assert error.operator == "Bernoulli" and "Bernoulli, Hardmax" in str(error)


def test_mnn_converter_failing_otherwise_is_a_failure():
    error = mnn.conversion_error("Start to Optimize the MNN Net...\nConverted Failed!\n", -11)
    assert not isinstance(error, UnsupportedError) and "(exit status -11): Converted Failed!" in str(error)
