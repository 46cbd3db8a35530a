"""The report's typed sections: a report.json of the previous e2e still loads and renders, a new
one keeps each setting once (in setup.config) and round-trips."""
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.run.report_start import setup as _setup
from coordinator.cli.app import app
from coordinator.config import BenchConfig
from coordinator.errors import UsageError
from coordinator.report.document import Report
from coordinator.report.setup import COPIES
from shared.errors import ProtocolError
from tests.fixtures.reports import REPORT_V1, report_v1

SECTIONS = ("setup", "device", "model", "data")


def test_a_report_of_the_previous_version_loads_and_renders(tmp_path):
    shutil.copy(REPORT_V1, tmp_path / "report.json")
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = Report.load(str(tmp_path / "report.json"))
    assert report.setup.setting("threads") == 2 and report.setup.setting("min_time") == 0.0
    assert report.model.name == "tests.fixtures.tiny.tiny_cnn" and report.model.inputs[0].shape[1] == 3
    assert report.data.count == 3 and report.device.physical_cores == 2
    md = (tmp_path / "report.md").read_text()
    assert "device `cpu`, threads 2 for every engine" in md and "a fixed 3 timed calls" in md
    assert "<th>threads</th><td>2</td>" in (tmp_path / "report.html").read_text().replace("\n", "")
    # its sections are written back as they were: the flat config and the copies of its fields included
    old, new = json.loads(REPORT_V1.read_text()), json.loads((tmp_path / "report.json").read_text())
    assert {k: new[k] for k in SECTIONS} == {k: old[k] for k in SECTIONS}


def test_an_older_report_reads_its_settings_from_the_copies(tmp_path):
    """Before setup.config (and before --max-time, kept pictures, launchers): the copies are all."""
    old = json.loads(REPORT_V1.read_text())
    del old["setup"]["config"], old["setup"]["e2e_commit"], old["setup"]["max_time_s"], old["data"]["calibration"]
    old["device"]["container_runtime"] = {"docker": "27.0"}  # what `launchers` was called then
    (tmp_path / "report.json").write_text(json.dumps(old))
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = Report.load(str(tmp_path / "report.json"))
    assert report.setup.setting("threads") == 2 and report.setup.setting("warmup_time") == 10.0
    assert report.setup.setting("max_time") is None and report.setup.config is None
    assert report.device.legacy == {"container_runtime": {"docker": "27.0"}}
    assert "threads 2 for every engine" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["device"]["container_runtime"] == {"docker": "27.0"}
    resumed = CliRunner().invoke(app, ["bench", "--resume", str(tmp_path)])
    assert resumed.exit_code == 1 and "no saved settings" in resumed.output, resumed.output


def test_a_new_report_keeps_each_setting_once_and_round_trips(tmp_path):
    cfg = BenchConfig.of(model="resnet18", threads=3, iterations=5, out=tmp_path, input_size=(224, 320))
    report = report_v1(setup=_setup(cfg))
    report.setup.phase_seconds = {"export_s": 1.0, "total_s": 2.0}
    report.save(str(tmp_path / "report.json"))
    setup = json.loads((tmp_path / "report.json").read_text())["setup"]
    assert list(setup) == ["e2e_commit", "config", "copy_policy", "timed_region", "phase_seconds"]
    assert list(setup["config"]) == ["model", "execution", "points", "tuning", "timing", "rounds", "data",
                                     "reporting", "fleet"]  # nested by section
    assert setup["config"]["execution"]["threads"] == 3 and setup["config"]["model"]["name"] == "resnet18"
    assert not set(setup) & set(COPIES.values())
    loaded = Report.load(str(tmp_path / "report.json"))
    assert loaded == report and loaded.to_dict() == report.to_dict() and loaded.setup.config == cfg
    assert loaded.setup.setting("threads") == 3 and loaded.setup.setting("min_time") == 0.0


def test_an_older_reports_flat_config_reads_into_the_typed_config_and_is_written_back_flat(tmp_path):
    old = json.loads(REPORT_V1.read_text())
    flat = old["setup"]["config"]  # by option name, as e2e wrote it before the sections
    report = Report.from_dict(old)
    cfg = report.setup.config
    assert (cfg.model.name, cfg.execution.threads, cfg.timing.iterations) == ("tests.fixtures.tiny:tiny_cnn", 2, 3)
    assert cfg.execution.engines == "torch,openvino" and cfg.reporting.out == tmp_path.root / Path("tmp/oldreport")
    assert cfg.points.scenarios == ["latency"]  # an option it predates: its default, as that run did
    assert report.to_dict()["setup"]["config"] == flat  # as read, with its schema_version
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg == BenchConfig.from_dict(flat)  # one migration, both shapes
    (tmp_path / "report.json").write_text(json.dumps({**old, "run_dir": str(tmp_path)}))
    resumed = CliRunner().invoke(app, ["bench", "--resume", str(tmp_path), "--threads", "1"])
    assert resumed.exit_code == 1 and "drop --threads" in resumed.output, resumed.output


def test_a_bad_saved_config_is_one_clear_error():
    data = json.loads(REPORT_V1.read_text())
    data["setup"]["config"] = {"model": {"name": "resnet18"}, "timing": {"warmpu": 1}}
    with pytest.raises(UsageError, match=r"report.json setup.config: unknown key\(s\) timing.warmpu"):
        Report.from_dict(data)


def test_unknown_keys_fail_and_none_is_not_written():
    data = json.loads(REPORT_V1.read_text())
    data["model"]["bogus"] = 1
    with pytest.raises(ProtocolError, match=r"Report.model: unknown field\(s\) bogus"):
        Report.from_dict(data)
    model = report_v1().model
    model.torch = model.export_seconds = None  # an ONNX file given as is: never exported
    assert "torch" not in model.to_dict() and "export_seconds" not in model.to_dict()
    assert "picture_input" not in report_v1().to_dict()["data"]  # not a family that draws
