"""The trained digits CNN (examples/digits) on its committed held-out folder, through the real
venv launcher at every precision, int8 calibrated on its training images: each measured row's
top-1 is a real one, beside PyTorch's, with its drop. Rows an engine does not offer are skipped by e2e, saying so."""
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
PRECISIONS = ("fp32", "bf16", "int8")


def test_trained_digits_top1_on_every_engine_and_precision(tmp_path, cache):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "bench", "--model", "examples.digits.model:digits_cnn", "--input-size", "32x32", "--dataset", str(DIGITS / "heldout"),
        "--calibration", str(DIGITS / "calibration"),
        "--engines", "torch,ort,openvino", "--precision", ",".join(PRECISIONS), "--warmup", "1",
        "--rounds-budget", "2", "--slice-time", "0.1", "--device", "cpu", "--launcher", "venv",
        "--out", str(out), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["weights"]["kind"] == "factory"  # the committed, trained weights ran
    assert report["data"]["count"] == 200 and report["data"]["evaluation"]["kind"] == "imagefolder"
    rows = {(r["engine"], r["precision_requested"]): r for r in report["results"]}
    reference = rows[("torch", "fp32")]["accuracy"]["value"]
    assert reference > 0.95  # 0.99 when trained: far above chance (0.1)
    for (engine, precision), row in rows.items():
        if row["status"] == "skipped":
            assert f"does not offer {precision}" in row["reason"]
            continue
        assert row["status"] == "ok", (engine, precision, row["reason"])
        acc = row["accuracy"]
        assert acc["metric"] == "top-1" and acc["value"] > 0.8, (engine, precision, acc)
        assert acc["reference"] == pytest.approx(reference)
        assert acc["drop"] == pytest.approx(reference - acc["value"])
        assert acc["drop"] < 0.05, (engine, precision, acc)  # a real model keeps its accuracy
        assert row["precision"]  # what the engine really ran, read back
        if row["precision"] == "int8":  # calibrated on training images, scored on held-out ones
            assert re.search(r"\b50 (calibration )?input\(s\)", row["settings"]["quantization"]), row["settings"]
    # each precision measured by at least one engine, fp32 by every one: torch's bf16 autocast and
    # ORT's static int8 run on any x86 CPU
    assert all(rows[(e, "fp32")]["status"] == "ok" for e in ("torch", "ort", "openvino"))
    for precision in PRECISIONS[1:]:
        assert any(r["status"] == "ok" and r["precision"] == precision
                   for (_, p), r in rows.items() if p == precision), precision
