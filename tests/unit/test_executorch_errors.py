"""torch.export's failures -> what an ExecuTorch row names.

The message is real: torch 2.14.1's torch.export.export of torchvision 0.29.1's Faster R-CNN
(`fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=256)`, the
test fixture small_faster_rcnn), a GuardOnDataDependentSymNode, its first lines.
"""
from pathlib import Path

from shared import UnsupportedError
from tests.unit.test_runner_modules import load_runner

executorch = load_runner(Path(__file__).parents[2] / "runners" / "executorch" / "runner.py")

BATCHED_NMS = """Could not guard on data-dependent expression 4*u1 > 4000 (unhinted: 4*u1 > 4000).  (Size-like symbols: u1)

consider using data-dependent friendly APIs such as guard_or_false, guard_or_true and statically_known_true.
Caused by: (torchvision/ops/boxes.py:86 in batched_nms)
For more information, run with TORCH_LOGS="dynamic"
"""


class GuardOnDataDependentSymNode(RuntimeError):
    pass


def test_a_data_dependent_guard_names_the_function_it_is_in():
    error = executorch.export_error(GuardOnDataDependentSymNode(BATCHED_NMS))
    assert isinstance(error, UnsupportedError) and error.operator == "batched_nms"
    assert error.node == "torchvision/ops/boxes.py:86"
    assert str(error).startswith("torch.export cannot export this model: Could not guard on data-dependent "
                                 "expression 4*u1 > 4000 in batched_nms (torchvision/ops/boxes.py:86)")


def test_a_traceback_frame_names_the_models_function_when_there_is_no_guard():
    text = ('Unsupported: call_function\n  File "/venv/lib/python3.11/site-packages/torch/_dynamo/x.py", line 9, in run\n'
            '  File "/work/model.py", line 12, in forward\n')
    error = executorch.export_error(RuntimeError(text))
    assert error.operator == "forward" and error.node == "/work/model.py:12"
    assert "Unsupported: call_function in forward" in str(error)


def test_the_delegation_summary_is_read_back():
    summary = ("torch.export.export, ...\nTotal delegated subgraphs: 1\nNumber of delegated nodes: 7\n"
               "Number of non-delegated nodes: 1\n")
    assert executorch._delegation(summary) == {"subgraphs": 1, "delegated_nodes": 7, "non_delegated_nodes": 1}
