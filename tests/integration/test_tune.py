"""--tune end to end: ONNX Runtime's declared options searched (a short loop each), the best run
again in full as a second row marked tuned, which keeps the search and the options it chose."""
import json

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.engines import discover

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tune_adds_a_tuned_row_with_its_search(tmp_path, cache):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "ort", "--weights", "random", "--tune",
        "--tune-time", "0.5", "--max-time", "1", "--device", "cpu", "--launcher", "venv", "--out", str(out),
        "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    rows = {r["variant"]: r for r in report["results"]}
    assert set(rows) == {"", "tuned"} and rows[""]["status"] == "ok", rows[""]["reason"]
    tuned = rows["tuned"]
    declared = dict(discover()["ort"].tuning)
    tried = [t["options"] for t in tuned["search"]]
    assert len(tried) == len({json.dumps(o, sort_keys=True) for o in tried}) > 1
    assert all(set(o) == set(declared) and all(o[k] in declared[k] for k in o) for o in tried)
    assert tuned["tuned_options"] in tried and "tuned_options" not in tuned["settings"]  # ours, not the engine's
    assert all(t["status"] == "ok" and t["p50_ms"] > 0 and t["parity"] for t in tuned["search"])
    assert tuned["status"] == "ok" and tuned["parity"]["passed"]
    md = (out / "report.md").read_text()
    assert "## Tuning" in md and f"chose `{json.dumps(tuned['tuned_options'])}`" in md
