"""CLI errors a user can cause: one line, non-zero exit, no traceback."""
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app

runner = CliRunner()


def invoke(*args, tmp_path):
    return runner.invoke(app, ["bench", *args, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("args, message", [
    (["--model", "no_such_model"], "unknown model 'no_such_model'; valid: faster_rcnn"),
    (["--model", "resnet18", "--engines", "ort,warp"], "unknown engine warp; valid: all, torch, "),
    (["--model", "missing.onnx"], "ONNX file not found: /"),  # made absolute
    (["--model", "resnet18", "--precision", "fp8"], "unknown precision fp8"),
    (["--model", "resnet18", "--device", "tpu"], "unknown device 'tpu'"),
    (["--model", "resnet18", "--input-size", "big"], "--input-size must look like 480x640"),
    (["--model", "resnet18", "--weights", "nope.pt"], "no such checkpoint file"),
    (["--model", "resnet18", "--dataset", "nowhere"], "--dataset: no such file or folder: /"),  # made absolute
    (["--model", "resnet18", "--dataset", "x", "--images", "y"], "--images and --dataset both name the test images"),
    (["--model", "resnet18", "-o", "warp.speed=9"], "--engine-option for unknown engine warp; valid: torch"),
    (["--model", "resnet18", "-o", "tvm-fast"], "--engine-option 'tvm-fast': expected ENGINE.KEY=VALUE"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, args, message):
    result = invoke(*args, tmp_path=tmp_path)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_corrupt_onnx_is_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    result = invoke("--model", str(bad), tmp_path=tmp_path)
    assert result.exit_code == 1 and "is not a valid ONNX model" in result.output, result.output


@pytest.mark.parametrize("files, message", [({}, "no images in"), ({"notes.txt": b"hello"}, "is not a readable image")])
def test_bad_image_folder(tmp_path, files, message):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = invoke("--model", "tests.fixtures.tiny:tiny_cnn", "--weights", "random", "--engines", "torch",
                    "--images", str(folder), tmp_path=tmp_path)
    assert result.exit_code == 1 and message in result.output, result.output


def test_engines_lists_every_runner_and_says_why_not(tmp_path):
    result = runner.invoke(app, ["engines", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for engine in ("torch", "ort", "openvino", "tvm", "trt", "openppl", "ort_cuda", "ort_trt"):
        assert engine in result.output
    assert "TensorRT does not run on cpu" in result.output
    assert "ONNX Runtime, TensorRT EP does not run on cpu" in " ".join(result.output.split())


@pytest.mark.parametrize("text, message", [
    ("model: resnet18\nwarmups: 3\n", "unknown key(s) warmups; valid: model, weights"),
    ("model: resnet18\nwarmup: three\n", "warmup: expected int, got 'three'"),
    ("model: resnet18\nprecisions: [fp32, 8]\n", "precisions: expected a list of names"),
    ("- just\n- a list\n", "expected a mapping of option names to values"),
    ("model: [unclosed\n", "cannot read it"),
])
def test_bad_config_file(tmp_path, text, message):
    config = tmp_path / "e2e.yaml"
    config.write_text(text)
    result = invoke("--config", str(config), tmp_path=tmp_path)
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_report_naming_a_file_outside_its_run_is_refused(tmp_path):
    from coordinator.report.document import Row
    from tests.fixtures.reports import report_v1

    row = Row(engine="ort", status="skipped", reason="x", log="../../etc/passwd")
    report_v1(run_dir=str(tmp_path), results=[row]).save(str(tmp_path / "report.json"))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "results[0].log '../../etc/passwd' escapes the run directory" in result.output


def test_resume_takes_no_other_settings(tmp_path):
    result = runner.invoke(app, ["bench", "--resume", str(tmp_path), "--engines", "ort"])
    assert result.exit_code == 1 and "drop --engines" in result.output, result.output


def test_no_shell_strings_anywhere():
    """Subprocesses get argv lists: a model name or a path never reaches a shell."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    sources = [p for d in ("coordinator", "shared", "runners", "benchmarks") for p in (root / d).rglob("*.py")]
    offenders = [f"{p.relative_to(root)}: {needle}" for p in sources for needle in
                 ("shell=True", "os.system(", "os.popen(", "getoutput(", "getstatusoutput(") if needle in p.read_text()]
    assert sources and not offenders


def test_no_row_measured_is_exit_3_with_one_line(tmp_path):
    """Every row skipped (TensorRT needs a GPU; an ONNX file has no PyTorch model): nothing was
    measured, and a script must be able to tell that from the exit status alone."""
    from tests.fixtures.onnx_models import matmul_relu

    model = matmul_relu(tmp_path / "tiny.onnx")
    result = invoke("--model", str(model), "--engines", "torch,trt", "--device", "cpu", tmp_path=tmp_path)
    assert result.exit_code == 3, result.output
    assert "error: no row was measured (torch skipped, trt skipped)" in result.output
    assert (tmp_path / "run" / "report.json").is_file()  # the rows are still reported


def test_fail_on_names_its_outcomes(tmp_path):
    result = invoke("--model", "resnet18", "--fail-on", "failed,slow", tmp_path=tmp_path)
    assert result.exit_code == 1 and "--fail-on: unknown outcome slow; valid: failed, timeout" in result.output


def test_every_path_is_made_absolute_where_the_config_is_resolved(tmp_path, monkeypatch):
    from coordinator.config import BenchConfig

    monkeypatch.chdir(tmp_path)
    cfg = BenchConfig.of(model="m.onnx", out="run", images="imgs", calibration="cal", cache_dir="cache", weights="w.pt")
    labelled = BenchConfig.of(model="resnet18", dataset="d.json")
    for value in (cfg.model.name, cfg.reporting.out, cfg.data.images, labelled.data.dataset, cfg.data.calibration,
                  cfg.execution.cache_dir, cfg.model.weights):
        assert str(value).startswith(str(tmp_path) + "/"), value
    assert BenchConfig.of(model="faster_rcnn").reporting.out is None  # made, it probes and stamps nothing
    default = BenchConfig.of(model="faster_rcnn").resolved().reporting.out
    assert default.parent == tmp_path / "runs" and default.name.endswith("-faster_rcnn")


def test_a_manifest_declares_what_its_engine_consumes(tmp_path):
    from coordinator.engines import _load, discover

    assert discover()["torch"].consumes == "torch" and discover()["openppl"].opsets == (7, 11)
    assert discover()["openppl"].opset_for(17) == 11 and discover()["ort"].opset_for(17) == 17
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.yaml").write_text("name: X\ndevices: [cpu]\nprecisions: [fp32]\nenvironments: [venv]\n"
                                                  "consumes: tflite\n")
    with pytest.raises(Exception, match="consumes must be one of onnx, torch"):
        _load(tmp_path / "x")


def test_every_config_field_is_an_option_and_the_command_line_wins_over_the_file(tmp_path, monkeypatch):
    """Options are made from the fields of BenchConfig's sections: a new field is a new option, in one place."""
    from coordinator.config import resolve
    from coordinator.config.bench import OPTIONS

    result = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "300"})
    for name, o in OPTIONS.items():
        flag = (o.field.metadata.get("flags") or ("--" + name.replace("_", "-"),))[0]
        assert flag in result.output and o.section in result.output, flag  # listed under its section
    config = tmp_path / "e2e.yaml"
    config.write_text("model: resnet18\nwarmup: 7\nmax-time: 5\nprecisions: [fp32, int8]\n")
    cfg = resolve({"warmup": 2, "precisions": "fp16"}, config)
    assert (cfg.timing.warmup, cfg.timing.max_time, cfg.points.precisions, cfg.timing.repeats) == (2, 5.0, ["fp16"], 1)


def test_a_config_file_may_nest_the_options_by_section_and_an_unknown_key_is_one_line(tmp_path):
    from coordinator.config import resolve
    from coordinator.errors import UsageError

    config = tmp_path / "e2e.yaml"
    config.write_text("model: {name: resnet18, seed: 3}\ntiming: {warmup: 7, max-time: 5}\nprecisions: [int8]\n")
    cfg = resolve({"warmup": 2}, config)
    assert (cfg.model.name, cfg.model.seed, cfg.timing.warmup, cfg.timing.max_time) == ("resnet18", 3, 2, 5.0)
    assert cfg.points.precisions == ["int8"]  # flat and nested in one file
    for text, bad in (("model: resnet18\nwarmpu: 7\n", "warmpu"), ("model: resnet18\ntiming: {seed: 1}\n", "timing.seed")):
        config.write_text(text)
        with pytest.raises(UsageError, match=f"unknown key\\(s\\) {bad}; valid: model, .*nested by section: model"):
            resolve({}, config)


def test_fail_on_names_exactly_the_outcomes_exit_status_knows():
    from coordinator.config import FAIL_ON
    from coordinator.cli.exit_status import OUTCOMES

    assert set(FAIL_ON) == set(OUTCOMES)


def test_images_build_with_a_missing_sources_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["images", "build", "openppl", "--sources", str(tmp_path / "nowhere")])
    assert result.exit_code == 1, result.output
    assert "--sources: no such folder" in result.output and "Traceback" not in result.output


def test_ray_address_needs_hosts_and_a_dead_address_is_one_line(tmp_path):
    from coordinator.config import resolve
    from coordinator.errors import UsageError

    with pytest.raises(UsageError, match="--ray-address names the cluster of --hosts"):
        resolve({"model": "resnet18", "ray_address": "127.0.0.1:1"})
    with pytest.raises(UsageError, match="expected all-kinds or a comma list"):
        resolve({"model": "resnet18", "hosts": " , "})
    from coordinator.launchers.ray.cluster import Fleet

    with pytest.raises(UsageError, match="no Ray cluster at 127.0.0.1:1"):
        Fleet("127.0.0.1:1")
