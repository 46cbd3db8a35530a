"""Every engine that lists cuda, run on an NVIDIA GPU against PyTorch on the same GPU: what a
manifest's `verified` may name cuda for (`pytest -m gpu` on a GPU machine). Without a GPU each
skips with the coordinator's own reason."""
import json

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.engines import REFERENCE, discover, skip_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.gpu]

ON_CUDA = [e for e, engine in discover().items() if "cuda" in engine.devices]


@pytest.mark.parametrize("engine", ON_CUDA)
def test_an_engine_that_lists_cuda_runs_there_and_agrees_with_pytorch(engine, tmp_path, cache):
    reason = skip_reason(discover()[engine], "cuda:0", "fp32")
    if reason:
        pytest.skip(reason)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--weights", "random", "--engines", f"{REFERENCE},{engine}",
        "--device", "cuda:0", "--warmup", "1", "--iterations", "3", "--out", str(out), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    rows = {r["engine"]: r for r in json.loads((out / "report.json").read_text())["results"]}
    row = rows[engine]
    assert row["status"] == "ok", row["reason"]
    assert row["resources"]["gpu"], "no GPU figures: did it run on the CPU?"
    if engine != REFERENCE:
        assert row["parity"]["passed"], row["parity"]
