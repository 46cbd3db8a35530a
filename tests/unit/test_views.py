"""The report's views: the registry, what write_report writes, and pictures that outlive the cache."""
import numpy as np
from typer.testing import CliRunner

from coordinator.report import pictures
from coordinator.cli.app import app
from coordinator.report.document import Report, Row, load_report
from coordinator.config import BenchConfig
from coordinator.report.sections import DataInfo, Device, ModelInfo, TensorInfo, WeightsInfo
from coordinator.report.setup import Setup
from coordinator.report.views import SOURCE, registry, write_report
from shared import Latency
from shared.tensors import save_samples

FILES = {"report.json", "results.csv", "report.md", "report.html"}
PICTURE = '<img alt="detections of torch fp32"'


def detector_report(tmp_path):
    """A hand-made detector run: a tiny input in a "cache", one ok row whose outputs are in logs/."""
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    cache.mkdir()
    (run_dir / "logs" / "torch-fp32").mkdir(parents=True)
    image = np.random.default_rng(0).random((3, 24, 32), dtype=np.float32)
    save_samples(str(cache / "inputs.npz"), [{"images": image}])
    save_samples(str(run_dir / "logs" / "torch-fp32" / "outputs.npz"), [{
        "boxes": np.array([[2.0, 3.0, 20.0, 18.0]], dtype=np.float32),
        "labels": np.array([1], dtype=np.int64), "scores": np.array([0.9], dtype=np.float32)}])
    row = Row(engine="torch", status="ok", precision="fp32", precision_requested="fp32",
              latency_ms=Latency.from_values([1.0, 1.2, 1.1]), outputs_file="outputs.npz",
              log="logs/torch-fp32/runner.log")
    config = BenchConfig.of(model="tiny", device="cpu", threads=1, warmup=0, min_time=0.0)
    setup = Setup(config=config, copy_policy="-", timed_region="-")
    device = Device(cpu="x", physical_cores=1, memory_gb=1, os="linux", python="3")
    tensor = TensorInfo("images", "float32", [3, "h", "w"])
    model = ModelInfo(onnx_file="model.onnx", file_bytes=1, sha256="0" * 64, opset=17, inputs=[tensor],
                      outputs=[tensor], nodes=1, operators={}, name="tiny", source="test", task="detection",
                      exporter="-", weights=WeightsInfo("random", "seed 0"))
    data = DataInfo(images=[], source="test", count=1, preprocessing="-", input_shapes={},
                    inputs_path=str(cache / "inputs.npz"))
    return Report("0", "now", "e2e bench", str(run_dir), setup, device, model, data, [row]), run_dir


def test_every_view_is_a_module_of_the_registry():
    assert set(registry()) == FILES
    assert all(callable(view.render) for view in registry().values())


def test_write_report_writes_the_data_then_the_views(tmp_path):
    report, run_dir = detector_report(tmp_path)
    write_report(report, run_dir, views=False)  # after every row
    assert {p.name for p in run_dir.iterdir() if p.is_file()} == {SOURCE}
    write_report(report, run_dir)
    assert {p.name for p in run_dir.iterdir() if p.is_file()} == FILES  # no temporary file left behind
    assert load_report(run_dir).to_dict() == report.to_dict()
    assert "| torch | fp32 |" in (run_dir / "report.md").read_text()
    assert (run_dir / "results.csv").read_text().startswith("engine,status,")


def test_the_pictures_outlive_the_cache(tmp_path):
    report, run_dir = detector_report(tmp_path)
    pictures.keep_input(report, run_dir)  # what bench does once the report exists
    assert report.data.picture_input == "pictures/input-0.npz" and (run_dir / "pictures" / "input-0.npz").is_file()
    (tmp_path / "cache" / "inputs.npz").unlink()  # the cache is cleared
    write_report(report, run_dir)
    assert PICTURE in (run_dir / "report.html").read_text()
    (run_dir / "report.html").unlink()  # and `e2e report` remakes it from the run directory alone
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert PICTURE in (run_dir / "report.html").read_text()


def test_a_report_from_before_kept_inputs_has_no_pictures(tmp_path):
    report, run_dir = detector_report(tmp_path)
    write_report(report, run_dir)  # the cache still holds the inputs: they are not read any more
    html = (run_dir / "report.html").read_text()
    assert "<h2 id=\"outputs\">" in html and PICTURE not in html


def test_a_picture_input_outside_the_run_directory_is_refused(tmp_path):
    report, run_dir = detector_report(tmp_path)
    report.data.picture_input = "../cache/inputs.npz"
    assert pictures.input_sample(report, run_dir) is None
    report.save(str(run_dir / "report.json"))
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 1 and "data.picture_input '../cache/inputs.npz' escapes the run directory" in result.output


def test_a_view_is_one_file(tmp_path, monkeypatch):
    import sys

    from coordinator.report import views

    folder = tmp_path / "more_views"
    folder.mkdir()
    (folder / "engines_txt.py").write_text(
        'FILE = "engines.txt"\n\n\ndef render(report, run_dir):\n'
        '    return "\\n".join(f"{r.engine} {r.status}" for r in report.results) + "\\n"\n')
    monkeypatch.setattr(views, "__path__", [*views.__path__, str(folder)])
    registry.cache_clear()
    try:
        report, run_dir = detector_report(tmp_path)
        write_report(report, run_dir)
        assert (run_dir / "engines.txt").read_text() == "torch ok\n"
    finally:
        registry.cache_clear()
        sys.modules.pop("coordinator.report.views.engines_txt", None)


def test_a_fleet_report_has_a_machine_axis(tmp_path):
    """Rows of two machine kinds: grouped by kind in every view, each compared with PyTorch on
    its own machine, each node described, a set of charts per kind."""
    report, run_dir = detector_report(tmp_path)
    rows = []
    for kind, torch_ms, ort_ms in (("cpu-a", 10.0, 5.0), ("cpu-b", 40.0, 10.0)):
        for engine, value in (("torch", torch_ms), ("ort", ort_ms)):
            rows.append(Row(engine=engine, status="ok", precision="fp32", precision_requested="fp32",
                            latency_ms=Latency.from_values([value] * 3), launcher="ray:venv", machine=kind,
                            node=f"10.0.0.{len(rows)} (node {kind})"))
    report.results = [rows[0], rows[2], rows[1], rows[3]]  # as they finished, side by side
    report.machines = {kind: {f"node of {kind}": {"cpu": f"{kind} CPU", "physical_cores": 4, "memory_gb": 8,
                                                  "os": "linux", "python": "3.11", "gpus": []}}
                       for kind in ("cpu-a", "cpu-b")}
    assert [r.machine for r in report.rows()] == ["cpu-a", "cpu-a", "cpu-b", "cpu-b"]
    assert report.speedup(rows[1]) == 2.0 and report.speedup(rows[3]) == 4.0  # against its own machine's torch
    write_report(report, run_dir)
    md = (run_dir / "report.md").read_text()
    assert "| ort | fp32 @cpu-a | ray:venv | ok | 5.00 |" in md and "| 2.00x |" in md and "| 4.00x |" in md
    assert "- **cpu-b**: node of cpu-b: CPU cpu-b CPU (4 physical cores)" in md
    html = (run_dir / "report.html").read_text()
    assert "Latency per engine on cpu-a" in html and "Latency per engine on cpu-b" in html
    assert "cpu-b: node of cpu-b" in html
    assert load_report(run_dir).to_dict() == report.to_dict()
    csv = (run_dir / "results.csv").read_text()
    assert "machine" in csv.splitlines()[0] and "cpu-b" in csv
