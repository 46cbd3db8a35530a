"""IREE for real, in its own virtualenv: a classifier through `e2e bench` (compiled once, then from the
cache), and an ONNX op it has no lowering for (RoiAlign, the one Faster R-CNN stops at)."""
import pytest
from onnx import TensorProto, helper, save

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, save_samples
from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]



def test_iree_compiles_a_classifier_once_with_the_specs_threads(tmp_path, cache):
    one = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "iree")
    _, out, rows, report = bench(tmp_path / "first", cache, *one)
    row = rows[("iree", "fp32")]
    assert row["status"] == "ok", row["reason"]
    assert row["precision"] == "fp32" and row["parity"]["passed"], row["parity"]
    settings = row["settings"]
    threads = report["setup"]["config"]["execution"]["threads"]
    assert settings["task_topology_max_group_count"] == threads and settings["worker_threads"] == threads
    assert "--iree-llvmcpu-target-cpu=host" in settings["compiler_flags"] and settings["function"] == "main_graph"
    with open(settings["converter_log"]) as f:
        assert "iree-compile exit status 0" in f.read()

    _, _, again, _ = bench(tmp_path / "second", cache, *one)
    assert again[("iree", "fp32")]["settings"]["conversion"] == "cached"
    assert again[("iree", "fp32")]["settings"]["compiled_model"] == settings["compiled_model"]


def test_roi_align_has_no_lowering_and_is_unsupported_at_compile(tmp_path, cache):
    import numpy as np

    engine = discover()["iree"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    node = helper.make_node("RoiAlign", ["x", "rois", "idx"], ["y"], output_height=2, output_width=2,
                            sampling_ratio=2, spatial_scale=1.0)
    graph = helper.make_graph([node], "roialign", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8]),
        helper.make_tensor_value_info("rois", TensorProto.FLOAT, [3, 4]),
        helper.make_tensor_value_info("idx", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4, 2, 2])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    sample = {"x": rng.random((1, 4, 8, 8), dtype=np.float32),
              "rois": np.array([[0, 0, 4, 4], [1, 1, 6, 6], [2, 0, 7, 5]], dtype=np.float32),
              "idx": np.zeros(3, dtype=np.int64)}
    save_samples(str(tmp_path / "inputs.npz"), [sample])
    spec = RunSpec(engine="iree", model_path=str(tmp_path / "m.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                   cache_dir=str(tmp_path / "cache"), iterations=1)

    result = launcher.run(engine, spec, tmp_path / "io", timeout=600)

    assert result.status == "unsupported" and result.stage == "compile", result.reason
    assert result.error.operator == "RoiAlign" and "torch.torchvision.roi_align" in result.error.message
