"""An untuned TVM row ends at the row's budget instead of running for hours: its first call is
given up after --max-time seconds, and the row says so, with the way out. Real TVM, in the tvm
engine's own environment (made when the tests' cache lacks it)."""
import time

import numpy as np
import pytest

from coordinator.engines import discover
from shared import RunSpec, save_samples

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONVS = 16  # 3x3, 32 -> 32 channels at 128x128: 0.3 GFLOP each, seconds untuned on any CPU


def conv_stack(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((32, 32, 3, 3), 1 / 288, np.float32), "w")
    nodes = [helper.make_node("Conv", ["x" if i == 0 else f"y{i}", "w"], [f"y{i + 1}"], pads=[1, 1, 1, 1])
             for i in range(CONVS)]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 128, 128])],
                              [helper.make_tensor_value_info(f"y{CONVS}", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_first_call_longer_than_the_budget_ends_the_row(tvm_launcher, tmp_path):
    save_samples(str(tmp_path / "inputs.npz"), [{"x": np.ones((1, 32, 128, 128), np.float32)}])
    spec = RunSpec(engine="tvm", model_path=str(conv_stack(tmp_path / "m.onnx")), inputs_path=str(tmp_path / "inputs.npz"),
                   max_time_s=0.5, threads=1, cache_dir=str(tmp_path / "cache"))
    start = time.perf_counter()
    result = tvm_launcher.run(discover()["tvm"], spec, tmp_path / "io", timeout=300)
    log = (tmp_path / "io" / "runner.log").read_text()
    assert result.status == "timeout" and result.stage == "run", f"{result.reason}\n{log}"
    assert "the first had not returned after 0.5 s (--max-time)" in result.reason
    assert "-o tvm.trials=" in result.reason and "--max-time" in result.reason
    run_s = time.perf_counter() - start - sum(result.stage_seconds.get(s, 0) for s in ("setup", "load", "convert", "compile"))
    assert run_s < 10, run_s  # the call itself takes seconds: the row did not wait for it


def test_in_the_interleaved_rounds_the_bound_is_the_rounds_budget(tvm_launcher, tmp_path):
    save_samples(str(tmp_path / "inputs.npz"), [{"x": np.ones((1, 32, 128, 128), np.float32)}])
    spec = RunSpec(engine="tvm", model_path=str(conv_stack(tmp_path / "m.onnx")), inputs_path=str(tmp_path / "inputs.npz"),
                   max_time_s=0.5, threads=1, cache_dir=str(tmp_path / "cache"))
    session = tvm_launcher.start(discover()["tvm"], spec, tmp_path / "io", timeout=300)
    assert session.ready() is None  # it ended before it was ready: the first call is part of loading
    result = session.finish("")
    assert result.status == "timeout" and "after 0.5 s (--rounds-budget)" in result.reason, result.reason
