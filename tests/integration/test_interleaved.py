"""The default schedule end to end: two real engines loaded at once, timed in rounds, compared by
paired ratios, and the verdict at the top of every view."""
import json
import math
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.run.round_stats import MIN_ROUNDS, trimmed_mean

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def bench(out, cache, *extra):
    """torch and ort on a tiny CNN: the report, and what the terminal showed."""
    result = CliRunner().invoke(app, [
        "bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "torch,ort", "--weights", "random",
        "--device", "cpu", "--launcher", "venv", "--out", str(out), "--cache-dir", str(cache), *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text()), result


def test_two_engines_in_rounds_give_paired_ratios_and_a_verdict(tmp_path, cache):
    out = tmp_path / "run"
    report, result = bench(out, cache, "--rounds-budget", "10", "--slice-time", "0.1")  # 10 rounds at least, loaded or not
    rows = {r["engine"]: r for r in report["results"]}
    torch, ort = rows["torch"], rows["ort"]
    assert torch["status"] == ort["status"] == "ok", (torch["reason"], ort["reason"])
    assert report["setup"]["config"]["rounds"]["schedule"] == "interleaved"
    t, o = torch["rounds"], ort["rounds"]
    # one slice each per round, the same rounds: the figures are paired
    assert len(t["round_p50_ms"]) == len(o["round_p50_ms"]) >= MIN_ROUNDS + 1  # and the audit round
    assert o["stop"] in ("converged", "budget") and o["vs_reference"]["rounds"] == len(o["round_p50_ms"])
    ratio = [a / b for a, b in zip(t["round_p50_ms"], o["round_p50_ms"])]
    assert float(trimmed_mean(np.asarray(ratio))) == pytest.approx(o["vs_reference"]["value"])  # paired per round
    assert o["vs_reference"]["low"] <= o["vs_reference"]["value"] <= o["vs_reference"]["high"]
    assert ort["latency_ms"]["p50"] == o["p50_ms"]["value"]  # the row's p50: over rounds
    assert ort["parity"]["passed"]
    # the reference ran in two processes, side by side in the rounds: their gap widens every interval
    assert t["processes"] == 2 and o["processes"] == 1 and t["process_spread"] == o["process_spread"] > 0
    assert (out / "logs" / "torch-fp32-process2" / "result.json").exists()
    # the sessions' pipes are gone with them: the run folder copies like any other
    assert not [p for p in out.rglob("*") if p.is_fifo()]
    shutil.copytree(out, tmp_path / "copy")
    # the reference and ORT keep their freed memory (their manifests' env), and say so
    assert torch["environment"]["allocator_env"]["MALLOC_MMAP_MAX_"] == "0"
    assert ort["environment"]["allocator_env"]["MALLOC_MMAP_MAX_"] == "0"
    assert torch["resources"]["page_faults_per_call"] is not None
    # each process's rounds are kept: the row's round value is their geometric mean
    first, second = t["process_round_p50_ms"]
    assert [math.sqrt(a * b) for a, b in zip(first, second)] == pytest.approx(t["round_p50_ms"])
    floor = 1.96 * o["process_spread"] * 1.5 ** 0.5
    e = o["vs_reference"]
    assert e["low"] <= e["value"] * math.exp(-floor) * 1.0001 and e["high"] >= e["value"] * math.exp(floor) * 0.9999
    for r in (t, o):  # each waiting runner's CPU was measured, and the caching audit ran
        assert r["waiting_cpu_percent"] >= 0 and r["settle_ms"] >= 0 and r["repeated_over_rotated"] > 0
    verdict = "Deploy ort fp32" if o["vs_reference"]["value"] > 1 else "Deploy torch fp32"
    assert verdict in result.output  # the terminal summary
    md = (out / "report.md").read_text()
    assert md.index("## Decision") < md.index("## Results") and verdict in md
    assert "## Interleaved rounds" in md


def test_the_sequential_schedule_keeps_one_window_per_row(tmp_path, cache):
    report, result = bench(tmp_path / "run", cache, "--iterations", "5", "--schedule", "sequential")
    rows = {r["engine"]: r for r in report["results"]}
    assert all(r["rounds"] is None and r["latency_ms"]["count"] == 5 for r in rows.values())
    assert "Deploy" in result.output
