"""onnx2tf's failures -> the operator a LiteRT row names.

Real logs of onnx2tf 1.29.24 (`-v info`), colours removed, cut to the lines that matter: CASTLIKE on
a one-node ONNX CastLike model; FASTER_RCNN on the shape-specialised Faster R-CNN export (480x640,
`-kat images`), where the node is named with a "wa/" prefix the ONNX file does not have. NODE_FAILED
is onnx2tf's debug format (onnx2tf/utils/common_functions.py, print_node_info: the node's INFO line,
then "onnx_op_name: <node>" after the trace) filled in.
"""
from pathlib import Path

from shared import UnsupportedError
from tests.unit.test_runner_modules import load_runner

litert = load_runner(Path(__file__).parents[2] / "runners" / "litert" / "runner.py")

CASTLIKE = """Model conversion started ============================================================
ERROR: CastLike OP is not yet implemented.
WARNING: Conversion failed. Automatic JSON generation on error is disabled by default.
ModuleNotFoundError: No module named 'onnx2tf.ops.CastLike'
"""
FASTER_RCNN = """ERROR: The trace log is below.
ValueError: Exception encountered when calling layer "tf.nn.convolution" (type TFOpLambda).

Depth of output (64) is not a multiple of the number of groups (160) for '{{node tf.nn.convolution/convolution}}'

Call arguments received by layer "tf.nn.convolution" (type TFOpLambda):
ERROR: input_onnx_file_path: /cache/work/model.onnx
ERROR: onnx_op_name: wa/backbone/body/conv1/Conv
ERROR: Read this and deal with it. https://github.com/PINTO0309/onnx2tf#parameter-replacement
"""
NODE_FAILED = """INFO: 12 / 40
INFO: onnx_op_type: RoiAlign onnx_op_name: /roi_heads/box_roi_pool/RoiAlign
ERROR: The trace log is below.
Traceback (most recent call last):
ValueError: Dimensions must be equal, but are 7 and 14
ERROR: input_onnx_file_path: /cache/model.onnx
ERROR: onnx_op_name: /roi_heads/box_roi_pool/RoiAlign
ERROR: Read this and deal with it. https://github.com/PINTO0309/onnx2tf#parameter-replacement
"""


def test_an_op_without_converter_is_named():
    error = litert.conversion_error(CASTLIKE, 1)
    assert isinstance(error, UnsupportedError) and error.operator == "CastLike"
    assert "CastLike OP is not yet implemented" in str(error)


def test_a_node_whose_conversion_raised_is_named_with_its_type():
    error = litert.conversion_error(NODE_FAILED, 1)
    assert isinstance(error, UnsupportedError) and error.operator == "RoiAlign"
    assert error.node == "/roi_heads/box_roi_pool/RoiAlign"
    assert "ValueError: Dimensions must be equal, but are 7 and 14" in str(error)


def test_a_failing_node_gets_its_type_from_the_onnx_file_without_the_wa_prefix():
    error = litert.conversion_error(FASTER_RCNN, 1, {"/backbone/body/conv1/Conv": "Conv"})
    assert isinstance(error, UnsupportedError) and error.operator == "Conv"
    assert error.node == "wa/backbone/body/conv1/Conv"
    assert "Depth of output (64) is not a multiple of the number of groups (160)" in str(error)


def test_a_failure_naming_no_op_is_a_failure():
    error = litert.conversion_error("Traceback (most recent call last):\nMemoryError: out of memory\n", -9)
    assert not isinstance(error, UnsupportedError) and "(exit status -9): MemoryError: out of memory" in str(error)


# LiteRT 2.x's interpreter on the BERT encoder's .tflite (GELU's Erf kept as a TensorFlow op)
FLEX = ("Select TensorFlow op(s), included in the given model, is(are) not supported by this interpreter. Make sure "
        "you apply/link the Flex delegate before inference. For the Android, it can be resolved by adding "
        "\"org.tensorflow:tensorflow-lite-select-tf-ops\" dependency. See instructions: "
        "https://www.tensorflow.org/lite/guide/ops_selectNode number 53 (FlexErf) failed to prepare.")


def test_a_tensorflow_op_the_interpreter_lacks_is_unsupported_naming_it():
    e = litert.flex_error(FLEX)
    assert isinstance(e, UnsupportedError) and e.operator == "Erf"
    assert "TensorFlow op(s) Erf as Select (Flex) ops" in str(e)
    assert litert.flex_error("tensor index 3 out of range") is None
