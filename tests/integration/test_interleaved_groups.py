"""When memory does not hold every runner, the rows are timed in groups, each holding the reference."""
import json

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.run import resident

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_rows_that_do_not_fit_together_are_timed_in_groups_that_each_hold_the_reference(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(resident, "memory_low", lambda: True)  # a machine where each runner fills memory
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "torch,ort,openvino", "--weights", "random",
        "--device", "cpu", "--launcher", "venv", "--rounds-budget", "2", "--slice-time", "0.05", "--out", str(out),
        "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    rows = {r["engine"]: r for r in json.loads((out / "report.json").read_text())["results"]}
    assert sorted(rows) == ["openvino", "ort", "torch"]  # the reference's row once
    assert all(r["status"] == "ok" for r in rows.values()), [r["reason"] for r in rows.values()]
    assert (rows["ort"]["rounds"]["group"], rows["openvino"]["rounds"]["group"]) == (0, 1)
    for engine in ("ort", "openvino"):  # each paired with the reference loaded in its own group
        assert rows[engine]["rounds"]["vs_reference"]["rounds"] >= 2 and rows[engine]["parity"]["passed"]
    assert "timing them as group 1 first" in result.output
