"""`e2e bench` end to end through the CLI: export, every engine, parity, the report files."""
import json

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def bench(tmp_path, cache, *args):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["bench", "--weights", "random", "--warmup", "1", "--iterations", "3",
                                      "--device", "cpu", "--launcher", "venv", "--out", str(out), "--cache-dir", str(cache),
                                      *args])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    return result, out, {(r["engine"], r["precision_requested"]): r for r in report["results"]}, report


# --engines all on a CPU (--device cpu, --launcher venv): every engine's outcome, a new engine
# included (the test fails until its row is named here). GPU-only engines are skipped with the way
# out, OpenPPL (Docker only: ppl.nn has no wheel) with how to build its image.
RUN_HERE = ("torch", "executorch", "inductor", "iree", "litert", "mnn", "ncnn", "openvino", "ort", "torchscript",
            "triton", "tvm")
ON_CUDA_ONLY = "{} does not run on cpu (it runs on: cuda); rerun with --device cuda on a machine with an NVIDIA GPU"
SKIPPED_HERE = {
    "trt": ON_CUDA_ONLY.format("TensorRT"),
    "torch_tensorrt": ON_CUDA_ONLY.format("Torch-TensorRT"),
    "ort_cuda": ON_CUDA_ONLY.format("ONNX Runtime, CUDA EP"),
    "ort_trt": ON_CUDA_ONLY.format("ONNX Runtime, TensorRT EP"),
    "openppl": "OpenPPL (ppl.nn) runs only in its Docker image (ppl.nn has no wheel; its image builds v0.9.2 from "
               "source): build it with `e2e images build openppl`; --launcher auto or docker then runs it",
}


def test_all_engines_on_a_tiny_classifier(tmp_path, cache):
    from coordinator.engines import discover

    result, out, rows, report = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "all")
    assert sorted(RUN_HERE + tuple(SKIPPED_HERE)) == sorted(discover())  # every engine has its outcome here
    assert sorted(rows) == sorted((engine, "fp32") for engine in discover())  # one row each
    for engine in RUN_HERE:
        row = rows[(engine, "fp32")]
        assert (row["status"], row["reason"]) == ("ok", ""), (engine, row["reason"])
        assert row["precision"] == "fp32" and row["latency_ms"]["count"] == 3
        assert row["launcher"] == ("host" if engine == "torch" else "venv")
        # interleaved (the default): noisy from the spread of the row's per-round ratio; the default --cv-threshold
        assert row["noisy"] == (row["rounds"]["paired_spread"] > 0.05)
        assert row["verified"] == "cpu"
        # PyTorch's row is the reference when none is cached (an empty cache): no parity of its own
        if not (engine == "torch" and row["parity"] is None):
            assert row["parity"]["passed"], (engine, row["parity"])
    for engine, reason in SKIPPED_HERE.items():
        row = rows[(engine, "fp32")]
        assert (row["status"], row["reason"], row["launcher"], row["latency_ms"]) == ("skipped", reason, "", None)
        assert row["verified"] == ("cpu" if engine == "openppl" else "never")
    assert report["model"]["weights"]["kind"] == "random" and report["notes"]
    assert (out / "results.csv").is_file() and (out / "report.md").is_file()
    settings = (out / "report.md").read_text().split("## Engine settings", 1)[1]  # read back, per row
    assert "- **tvm** (fp32): " in settings and f'num_threads `{rows[("tvm", "fp32")]["settings"]["num_threads"]}`' in settings
    assert "openvino" in result.output  # the summary table


def test_detection_parity_on_a_small_detector(tmp_path, cache):
    _, _, rows, report = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_faster_rcnn", "--engines", "torch,ort,openvino",
                               "--iterations", "1", "--warmup", "0")
    assert report["model"]["task"] == "detection"
    for engine in ("ort", "openvino"):
        row = rows[(engine, "fp32")]
        assert row["status"] == "ok", row["reason"]
        parity = row["parity"]
        assert parity["method"] == "detection" and parity["passed"], parity
        assert parity["detection"]["reference_boxes"] > 0  # random weights still detect: the test can fail


def test_an_onnx_file_runs_without_a_pytorch_reference(tmp_path, cache):
    from tests.fixtures.onnx_models import matmul_relu

    model = matmul_relu(tmp_path / "tiny.onnx")
    _, _, rows, report = bench(tmp_path, cache, "--model", str(model), "--engines", "torch,ort")
    assert rows[("torch", "fp32")]["status"] == "skipped"
    assert "given as an ONNX file" in rows[("torch", "fp32")]["reason"]
    assert rows[("ort", "fp32")]["status"] == "ok" and rows[("ort", "fp32")]["parity"] is None
    assert report["data"]["input_shapes"] == {"x": [1, 4]}


def test_weights_in_external_data_are_read_in_place(tmp_path, cache):
    """The layout of a model over 2 GB (weights in a file beside the graph) on every engine
    that reads ONNX: each reads the files where they are; no copy is made."""
    from tests.fixtures.onnx_models import matmul_relu

    (tmp_path / "model").mkdir()
    model = matmul_relu(tmp_path / "model" / "big.onnx", external_data=True)
    _, out, rows, report = bench(tmp_path, cache, "--model", str(model), "--engines", "ort,openvino,tvm")
    assert report["model"]["external_data"] == ["big.onnx.data"]
    assert report["model"]["file_bytes"] == model.stat().st_size + (model.parent / "big.onnx.data").stat().st_size
    assert {engine: r["status"] for (engine, _), r in rows.items()} == {"ort": "ok", "openvino": "ok", "tvm": "ok"}
    assert not [*out.rglob("*.data"), *cache.rglob("big.onnx*")]


def test_converted_precisions_ort_fp16_int8_and_openvino_int8(tmp_path, cache):
    import shutil

    from coordinator.model.testdata import DEFAULT_IMAGES

    (tmp_path / "calibration").mkdir()
    shutil.copy(DEFAULT_IMAGES / "chelsea.jpg", tmp_path / "calibration")
    _, _, rows, _ = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "torch,ort,openvino",
                          "--precision", "fp32,fp16,int8", "--calibration", str(tmp_path / "calibration"))
    ov8 = rows[("openvino", "int8")]
    assert (ov8["status"], ov8["precision"]) == ("ok", "int8"), ov8["reason"]
    assert "NNCF" in ov8["settings"]["quantization"] and "i8" in ov8["settings"]["runtime_precisions"]
    assert ov8["precision_detail"]["ops_by_runtime_precision"]["i8"] > 0  # read from its runtime model
    assert "1 calibration input(s)" in ov8["settings"]["quantization"]  # --calibration, not the 3 test images
    assert "on 1 input(s)" in rows[("ort", "int8")]["settings"]["quantization"]
    fp16, int8 = rows[("ort", "fp16")], rows[("ort", "int8")]
    # ORT's CPU provider casts an fp16 model's ops back to fp32: read back from its optimised graph
    assert (fp16["status"], fp16["precision"], int8["status"], int8["precision"]) == ("ok", "fp32", "ok", "int8")
    assert fp16["precision_detail"]["heavy_ops"].get("fp16", 0) == 0 < fp16["precision_detail"]["heavy_ops"]["fp32"]
    assert int8["precision_detail"]["heavy_ops"]["int8"] > 0
    assert fp16["stage_seconds"]["convert"] > 0 and "static QDQ" in int8["settings"]["quantization"]
    assert fp16["parity"]["atol"] == 1e-2 and int8["parity"]["atol"] == 0.1  # tolerances follow precision
    assert fp16["parity"]["passed"], fp16["parity"]
    assert rows[("torch", "int8")]["status"] == "skipped" and "does not offer int8" in rows[("torch", "int8")]["reason"]


def test_the_default_run_directory_from_another_working_directory(tmp_path, cache, monkeypatch):
    """No --out, started elsewhere, relative --images: the run directory is ./runs/<time>-<model>
    and every engine still finds its files (runners start in their own io folder)."""
    import shutil

    from coordinator.model.testdata import DEFAULT_IMAGES

    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    shutil.copy(DEFAULT_IMAGES / "chelsea.jpg", tmp_path / "photos")
    result = CliRunner().invoke(app, ["bench", "--model", "resnet18", "--weights", "random", "--engines", "torch,ort",
                                      "--device", "cpu", "--launcher", "venv", "--images", "photos",
                                      "--rounds-budget", "2", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    [run] = (tmp_path / "runs").iterdir()
    assert run.name.endswith("-resnet18")
    report = json.loads((run / "report.json").read_text())
    rows = {r["engine"]: r for r in report["results"]}
    assert rows["torch"]["status"] == "ok" and rows["ort"]["status"] == "ok", rows["ort"]["reason"]
    assert rows["ort"]["parity"]["passed"]
    assert report["data"]["count"] == 1 and report["data"]["source"] == str(tmp_path / "photos")
    assert (tmp_path / report["model"]["onnx_file"]).is_file()  # the export's final folder
    # the loop ended by itself: converged or budget, and the row says which
    m = rows["ort"]["measurement"]
    assert m["stop"] in ("converged", "budget") and m["target_ci"] == 0.01 and m["timed_s"] < 10
    assert len(m["latencies_ms"]) == rows["ort"]["latency_ms"]["count"] == len(m["input_index"])


def test_fail_on_turns_chosen_outcomes_into_exit_4(tmp_path, cache, monkeypatch):
    from tests.fixtures.onnx_models import matmul_relu

    monkeypatch.chdir(tmp_path)
    matmul_relu(tmp_path / "tiny.onnx")
    args = ["bench", "--model", "tiny.onnx", "--engines", "ort,trt", "--device", "cpu", "--launcher", "venv",
            "--iterations", "2", "--out", "run", "--cache-dir", str(cache)]
    assert CliRunner().invoke(app, args).exit_code == 0  # ort measured; trt skipped on a CPU
    result = CliRunner().invoke(app, [*args, "--fail-on", "skipped,failed"])
    assert result.exit_code == 4, result.output
    assert "--fail-on skipped,failed: trt fp32 skipped" in result.output
    rows = {r["engine"]: r for r in json.loads((tmp_path / "run" / "report.json").read_text())["results"]}
    assert rows["ort"]["status"] == "ok"


def test_an_engine_that_loads_older_opsets_gets_its_own_export(tmp_path, cache, monkeypatch):
    """OpenPPL loads nothing above opset 11: its manifest says so and e2e exports once more at
    11 for it, while the others get the opset asked for. Shown with ORT declared that way."""
    import dataclasses

    from coordinator import engines

    real = engines.discover()
    monkeypatch.setattr(engines, "discover", lambda: {**real, "ort": dataclasses.replace(real["ort"], opsets=(7, 11))})
    _, _, rows, report = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "torch,ort,openvino")
    ort, openvino = rows[("ort", "fp32")], rows[("openvino", "fp32")]
    assert ort["status"] == "ok" and ort["parity"]["passed"], ort
    assert ort["model_input"].startswith("ONNX opset 11 (its own export") and openvino["model_input"] == "ONNX opset 17"
    assert rows[("torch", "fp32")]["model_input"] == "the PyTorch model" and report["model"]["opset"] == 17


def test_an_onnx_file_at_an_opset_the_engine_does_not_load_is_skipped_with_the_way_out(tmp_path, cache, monkeypatch):
    import dataclasses

    from coordinator import engines
    from tests.fixtures.onnx_models import matmul_relu

    real = engines.discover()
    monkeypatch.setattr(engines, "discover", lambda: {**real, "ort": dataclasses.replace(real["ort"], opsets=(7, 11))})
    model = matmul_relu(tmp_path / "tiny.onnx")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["bench", "--model", str(model), "--engines", "ort", "--launcher", "venv",
                                      "--out", str(out), "--cache-dir", str(cache)])
    assert result.exit_code == 3, result.output  # nothing measured
    row = json.loads((out / "report.json").read_text())["results"][0]
    assert row["status"] == "skipped" and "loads ONNX opsets 7-11, and the model was given as an ONNX file" in row["reason"]


def test_a_throughput_sweep_has_a_row_per_point_with_parity_and_the_curve(tmp_path, cache):
    """ORT (threads on one session) and OpenVINO (its AsyncInferQueue) at batch 1 and 2, with
    two requests in flight and the engine's own choice: every point's outputs match PyTorch's."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "ort,openvino", "--weights", "random",
        "--scenario", "latency,throughput", "--batch", "1,2", "--concurrency", "2,engine", "--threads", "2",
        "--warmup", "1", "--iterations", "20", "--launcher", "venv", "--out", str(out), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())["results"]
    assert len(rows) == 2 * (2 + 2 * 2)  # per engine: latency at 2 batches, throughput at 2 x 2
    for r in rows:
        assert r["status"] == "ok", r["reason"]
        assert r["parity"]["passed"], (r["engine"], r["scenario"], r["batch_size"], r["parity"])
        assert r["throughput_per_s"] > 0 and r["achieved_concurrency"] > 0
    ov = {(r["batch_size"], r["concurrency_requested"]): r for r in rows
          if r["engine"] == "openvino" and r["scenario"] == "throughput"}
    assert ov[(1, "engine")]["settings"]["performance_hint"] == "THROUGHPUT"
    assert ov[(1, "engine")]["concurrency"] == ov[(1, "engine")]["settings"]["optimal_number_of_infer_requests"]
    assert ov[(2, "2")]["concurrency"] == 2 and ov[(2, "2")]["settings"]["threads_budget"] == 2
    ort = [r for r in rows if r["engine"] == "ort" and r["concurrency_requested"] == "2"]
    assert {r["settings"]["intra_op_num_threads"] for r in ort} == {1}  # the budget split over 2 requests
    md = (out / "report.md").read_text()
    assert "## Throughput and latency per point" in md and "throughput b2 c=2" in md
    html = (out / "report.html").read_text()
    assert "Latency against throughput" in html and "Pareto front" in html
