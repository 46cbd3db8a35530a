"""A manifest's `verified`: the devices e2e's tests have run its engine on. An engine written
but never run (the GPU engines, on machines without a GPU) says so in `e2e engines` and on its rows."""
import csv
import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.cli.summary import availability
from coordinator.engines import _load, discover
from coordinator.report.document import Row
from coordinator.report.views import write_report
from shared import Latency
from shared.result import RunResult
from tests.unit.test_views import detector_report

GPU_ONLY = ("trt", "torch_tensorrt", "ort_cuda", "ort_trt")


def test_the_gpu_engines_are_never_verified_and_the_others_on_the_cpu():
    engines = discover()
    assert {e for e, engine in engines.items() if not engine.verified} == set(GPU_ONLY)
    assert all(engines[e].verified_text == "never" for e in GPU_ONLY)
    # the CUDA paths of the engines that also run on the CPU were never run either
    assert all(engine.verified == ("cpu",) for e, engine in engines.items() if e not in GPU_ONLY)


def _manifest(tmp_path, extra):
    folder = tmp_path / "x"
    folder.mkdir(exist_ok=True)
    (folder / "manifest.yaml").write_text("name: X\ndevices: [cpu, cuda]\nprecisions: [fp32]\nenvironments: [venv]\n" + extra)
    return _load(folder)


@pytest.mark.parametrize("extra, verified", [
    ("", ()), ("verified: never\n", ()), ("verified: cpu\n", ("cpu",)), ("verified: [cpu, cuda]\n", ("cpu", "cuda")),
])
def test_a_manifest_says_verified_never_unless_it_names_devices(tmp_path, extra, verified):
    assert _manifest(tmp_path, extra).verified == verified


@pytest.mark.parametrize("extra", ["verified: tpu\n", "verified: [cpu, never]\n", "verified: 3\n"])
def test_verified_names_only_the_engines_own_devices(tmp_path, extra):
    with pytest.raises(Exception, match="verified must be never or some of its devices|invalid manifest"):
        _manifest(tmp_path, extra)


def test_e2e_engines_shows_what_was_verified():
    result = CliRunner().invoke(app, ["engines", "--device", "cpu"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "│ never " in lines["trt"] and "│ cpu " in lines["ort"]


def test_an_engine_that_runs_here_but_was_never_run_on_this_device_says_so(monkeypatch):
    venv = SimpleNamespace(name="venv")
    monkeypatch.setattr("coordinator.cli.summary.choose", lambda engine, requested, device, launchers: (venv, None))
    monkeypatch.setattr("coordinator.cli.summary.skip_reason", lambda engine, device, precision: None)
    torch = discover()["inductor"]
    assert availability(torch, "cpu", {}) == "[green]yes[/] (venv)"
    assert "never run it on cuda" in availability(torch, "cuda:0", {})


def test_a_never_verified_row_says_so_in_the_views_and_the_data(tmp_path):
    report, run_dir = detector_report(tmp_path)
    ran = Row.make(discover()["trt"], "venv", "fp32", RunResult("trt", "ok", precision="fp32",
                                                                 latency_ms=Latency.from_values([1.0, 1.1, 1.2])))
    skipped = Row.make(discover()["ort_cuda"], "", "fp32", RunResult("ort_cuda", "skipped", reason="no GPU here"))
    tested = Row.make(discover()["ort"], "venv", "fp32", RunResult("ort", "ok", precision="fp32",
                                                                   latency_ms=Latency.from_values([1.0, 1.1, 1.2])))
    assert (ran.verified, skipped.verified, tested.verified) == ("never", "never", "cpu")
    assert ran.note() == "unverified: e2e's tests have never run trt"
    assert skipped.note() == "no GPU here; unverified: e2e's tests have never run ort_cuda"
    assert tested.note() == ""
    report.results += [ran, skipped, tested]
    write_report(report, run_dir)
    rows = {r["engine"]: r for r in json.loads((run_dir / "report.json").read_text())["results"]}
    assert (rows["trt"]["verified"], rows["ort"]["verified"], rows["torch"]["verified"]) == ("never", "cpu", "")
    md = (run_dir / "report.md").read_text()
    assert next(line for line in md.splitlines() if line.startswith("| trt ")).endswith(
        "| unverified: e2e's tests have never run trt |")
    assert "unverified: e2e&#39;s tests have never run trt" in (run_dir / "report.html").read_text()
    table = {r["engine"]: r for r in csv.DictReader((run_dir / "results.csv").open())}
    assert (table["trt"]["verified"], table["ort"]["verified"]) == ("never", "cpu")
