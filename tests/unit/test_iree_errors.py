"""IREE's compile failures -> the operator an `unsupported` row names.

The log is real: iree-compile 3.13.0 (`--iree-hal-target-device=local
--iree-hal-local-target-device-backends=llvm-cpu --mlir-print-ir-after-failure`) on a one-node ONNX
RoiAlign model imported by iree-import-onnx 3.13.0, cut to the lines that matter. The error line names
only a constant feeding the op; the IR dumped after the failing pass still holds the op itself.
"""
from pathlib import Path

import pytest

from shared import UnsupportedError
from tests.unit.test_runner_modules import load_runner

iree = load_runner(Path(__file__).parents[2] / "runners" / "iree" / "runner.py")

ROI_ALIGN = """\
// -----// IR Dump After FinalizingBackendTypeConversion Failed: torch-finalizing-backend-type-conversion //----- //
util.func public @roialign$async(%arg0: !hal.buffer_view, %arg1: !hal.buffer_view, %arg2: !hal.buffer_view, %arg3: !hal.fence, %arg4: !hal.fence) -> !hal.buffer_view attributes {inlining_policy = #util.inline.never, iree.abi.model = "coarse-fences", iree.abi.stub} {
  %true = torch.constant.bool true
  %int2 = torch.constant.int 2
  %1 = torch_c.from_builtin_tensor %0 : tensor<1x4x8x8xf32> -> !torch.vtensor<[1,4,8,8],f32>
  %13 = torch.torchvision.roi_align %1, %12, %float1.000000e00, %int2, %int2, %int2, %true : !torch.vtensor<[1,4,8,8],f32>, !torch.vtensor<[3,5],f32>, !torch.float, !torch.int, !torch.int, !torch.int, !torch.bool -> !torch.vtensor<[3,4,2,2],f32>
  %14 = torch_c.to_builtin_tensor %13 : !torch.vtensor<[3,4,2,2],f32> -> tensor<3x4x2x2xf32>
}

<unknown>:0: error: failed to legalize operation 'torch.constant.bool': %0 = "torch.constant.bool"() <{value = true}> : () -> !torch.bool
<unknown>:0: note: see current operation: %0 = "torch.constant.bool"() <{value = true}> : () -> !torch.bool
"""
# iree-compile 3.13.0 on resnet50 with a dynamic batch and the channels-last preprocessing: a
# compiler bug, quoting the source line of an op it converts fine (not an unsupported op)
QUOTED_SOURCE = """\
r50.mlir:114:12: error: 'tensor.empty' op incorrect number of dynamic sizes, has 0, expected 1
    %110 = torch.operator "onnx.MaxPool"(%109) {torch.onnx.ceil_mode = 0 : si64} : (!torch.vtensor<[?,64,112,112],f32>) -> !torch.vtensor<[?,64,56,56],f32>
           ^
r50.mlir:114:12: note: see current operation: %88 = "tensor.empty"() : () -> tensor<?x64x114x114xf32>
"""


def test_an_op_without_lowering_is_named_from_the_dumped_ir():
    error = iree.compile_error(ROI_ALIGN, 1)
    assert isinstance(error, UnsupportedError) and error.operator == "RoiAlign"
    assert "torch.torchvision.roi_align" in str(error) and "failed to legalize operation 'torch.constant.bool'" in str(error)


def test_an_onnx_op_left_unconverted_is_named():
    log = ROI_ALIGN.replace("torch.torchvision.roi_align %1", 'torch.operator "onnx.Foo"(%1')
    error = iree.compile_error(log, 1)
    assert isinstance(error, UnsupportedError) and error.operator == "Foo"


def test_a_compiler_error_quoting_its_source_is_a_failure_not_an_unsupported_op():
    error = iree.compile_error(QUOTED_SOURCE, 1)
    assert not isinstance(error, UnsupportedError)
    assert "(exit status 1): r50.mlir:114:12: error: 'tensor.empty' op incorrect number" in str(error)


def test_options_name_the_compiler_flags_and_refuse_unknown_values():
    assert iree.Options().flags() == ["--iree-opt-data-tiling=true", "--iree-llvmcpu-enable-ukernels=all",
                                      "--iree-dispatch-creation-enable-aggressive-fusion=true", "--iree-opt-level=O3"]
    for bad in ({"ukernels": "mmt4d,x"}, {"opt_level": "O4"}, {"data_tiling": "yes"}):
        with pytest.raises(ValueError):
            iree.Options(**bad)
