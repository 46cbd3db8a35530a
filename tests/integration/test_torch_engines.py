"""The engines that take the PyTorch model (`consumes: torch`): TorchScript and torch.compile's
Inductor, for real, each in its own virtualenv, through `e2e bench`."""
import pytest

from tests.integration import test_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ENGINES = ("torchscript", "inductor")


def rows_of(tmp_path, cache, model, *args):
    _, _, rows, report = test_bench.bench(tmp_path, cache, "--model", model, "--engines", "torch," + ",".join(ENGINES),
                                          *args)
    for engine in ENGINES:
        row = rows[(engine, "fp32")]
        assert row["status"] == "ok", row["reason"]
        assert row["parity"]["passed"], row["parity"]
        assert row["precision"] == "fp32" and row["settings"]["float32_matmul_precision"] == "highest"
        assert row["model_input"] == "the PyTorch model" and row["launcher"] == "venv"
        assert row["settings"]["threads"] == report["setup"]["config"]["execution"]["threads"]
        assert row["settings"]["interop_threads"] == 1
    return rows["torchscript", "fp32"], rows["inductor", "fp32"]


def test_a_tiny_classifier_is_one_graph_and_the_second_run_comes_from_the_caches(tmp_path, cache):
    script, inductor = rows_of(tmp_path / "a", cache, "tests.fixtures.tiny:tiny_cnn")
    assert script["settings"]["cached_module"]  # written now, or by an earlier session
    assert inductor["settings"]["graphs"] == 1 and inductor["settings"]["graph_breaks"] == 0
    assert inductor["settings"]["compiler"].endswith("g++") and inductor["stage_seconds"]["compile"] > 0
    script, inductor = rows_of(tmp_path / "b", cache, "tests.fixtures.tiny:tiny_cnn")
    assert not script["settings"]["cached_module"].endswith("(written)") and "convert" not in script["stage_seconds"]
    assert inductor["settings"]["fx_graph_cache"] == {"hits": 1, "misses": 0}


def test_a_small_detector_runs_with_its_graph_breaks_recorded(tmp_path, cache):
    script, inductor = rows_of(tmp_path, cache, "tests.fixtures.tiny:small_faster_rcnn", "--iterations", "1",
                               "--warmup", "0", "-o", "torchscript.cache=false")  # traced in this run
    for row in (script, inductor):
        detection = row["parity"]["detection"]
        assert row["parity"]["method"] == "detection" and detection["reference_boxes"] > 0, detection
    # The deprecation of torch.jit.trace in torch 2.14 is recorded, not hidden, with the tracer's warnings.
    warned = script["settings"]["trace_warnings"]
    assert any("torch.jit.trace` is deprecated" in m for m in warned["messages"]), warned
    assert warned["count"]["FutureWarning"] >= 1 and warned["count"]["TracerWarning"] > 0
    assert script["stage_seconds"]["convert"] > 0 and "cached_module" not in script["settings"]
    # nonzero and NMS have data-dependent output shapes: Dynamo splits the model there.
    settings = inductor["settings"]
    assert settings["graph_breaks"] > 0 and settings["graphs"] > 1
    assert sum(settings["graph_break_reasons"].values()) == settings["graph_breaks"]
    assert any("aten.nonzero" in reason for reason in settings["graph_break_reasons"]), settings
