"""Fault injection through both launchers: the real ORT runner is made to crash, exit, hang,
run out of memory, write a broken result or broken outputs (shared/faults.py), for real, in
its virtualenv and in its container. Each fault must end as a row that names its cause while
the next engine still runs and the report is still written; SIGTERM must stop the running
engine, save what was measured, and `--resume` must finish the run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]

LAUNCHERS = [pytest.param("venv"), pytest.param("docker", marks=pytest.mark.docker)]
MEMORY_LIMIT_MB = {"venv": 1500, "docker": 512}  # venv: address space (the engine is mapped in it)

# fault: status, stage, what the reason (or the parity note) must say
FAULTS = {
    "abort": ("failed", "load", "Fatal Python error: Aborted"),  # in Debian's Python, then SIGSEGV
    "exit": ("failed", "load", "exited with code 3"),
    "hang": ("timeout", "load", "was killed"),
    "oom": ("failed", "load", "out of memory"),
    "truncated_result": ("failed", "run", "invalid result.json"),
    "invalid_result": ("failed", "run", "invalid result.json"),
    "nan": ("ok", None, "non-finite values"),
    "wrong_shape": ("ok", None, "shape [9], reference [1, 10]"),
    "mixed_precision": ("failed", "run", "reported precision 'fp16 (conv/gemm)', which is not one of fp32"),
}


@pytest.fixture
def launcher_ready(request, cache):
    if request.param == "docker":
        request.getfixturevalue("built_images")
    return request.param


def bench_args(out: Path, cache: Path, launcher: str, *extra: str) -> list:
    return ["bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "ort,openvino", "--weights", "random",
            "--device", "cpu", "--warmup", "1", "--iterations", "3", "--launcher", launcher, "--out", str(out),
            "--cache-dir", str(cache), *extra]


@pytest.mark.parametrize("launcher_ready", LAUNCHERS, indirect=True)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_fault_ends_as_a_row_naming_its_cause(fault, launcher_ready, tmp_path, cache):
    launcher, out = launcher_ready, tmp_path / "run"
    result = CliRunner().invoke(app, bench_args(out, cache, launcher, "--timeout", "20", "--memory-limit",
                                                str(MEMORY_LIMIT_MB[launcher])), env={"E2E_FAULT": f"ort={fault}"})
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    rows = {r["engine"]: r for r in report["results"]}
    ort, openvino = rows["ort"], rows["openvino"]
    # the injection is recorded, and every report's first line says so
    assert report["setup"]["faults"] == {"E2E_FAULT": f"ort={fault}"} and (ort["fault"], openvino["fault"]) == (fault, "")
    headline = f"FAULT INJECTED (test hooks, shared/faults.py): E2E_FAULT=ort={fault}"
    assert (out / "report.md").read_text().splitlines()[0].endswith(headline)
    assert headline in (out / "report.html").read_text().split("</h1>")[0]
    assert headline in result.output.split("e2e: ")[0]  # the summary table's title, above its first line
    status, stage, cause = FAULTS[fault]
    assert (ort["status"], ort["stage"], ort["launcher"]) == (status, stage, launcher), ort["reason"]
    if status == "ok":  # the run worked, the outputs did not: parity says why
        assert not ort["parity"]["passed"] and cause in json.dumps(ort["parity"])
    else:
        assert cause in ort["reason"], ort["reason"]
    assert openvino["status"] == "ok" and openvino["parity"]["passed"]  # the next engine still ran
    assert "ort" in (out / "report.html").read_text() and (out / "report.md").is_file()


@pytest.mark.parametrize("schedule", ["sequential", "interleaved"])
@pytest.mark.parametrize("launcher_ready", LAUNCHERS, indirect=True)
def test_sigterm_stops_the_engine_keeps_the_rows_and_resume_finishes(launcher_ready, schedule, tmp_path, cache):
    """Sequential: openvino's row is done before ort hangs, and kept. Interleaved: openvino is
    loaded and waiting, nothing measured yet; its runner is stopped too, and no row is kept."""
    launcher, out = launcher_ready, tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "E2E_FAULT": "ort=hang"}
    args = bench_args(out, cache, launcher, "--schedule", schedule)
    args[args.index("ort,openvino")] = "openvino,ort"  # one row done before the hang
    proc = subprocess.Popen([sys.executable, "-c", "from coordinator.cli.app import main; main()", *args],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    io_dir = out / "logs" / "ort-fp32"
    deadline = time.time() + 300
    while not (io_dir / "stage").is_file() or (io_dir / "stage").read_text() != "load":
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    report = json.loads((out / "report.json").read_text())
    kept = ["openvino"] if schedule == "sequential" else []
    assert report["interrupted"] and [r["engine"] for r in report["results"]] == kept
    assert any("--resume" in n for n in report["notes"])
    assert not leftovers(io_dir, launcher) and not leftovers(out / "logs" / "openvino-fp32", launcher)

    result = CliRunner().invoke(app, ["bench", "--resume", str(out)])  # no fault this time
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert not report["interrupted"]
    assert sorted((r["engine"], r["status"]) for r in report["results"]) == [("openvino", "ok"), ("ort", "ok")]


def leftovers(io_dir: Path, launcher: str) -> list:
    """Runner processes or containers of this run still alive."""
    if launcher == "docker":
        from coordinator.images import build as images

        return images.client().containers.list(all=True, filters={"label": f"e2e.io={io_dir.resolve()}"})
    return [p for p in psutil.process_iter(["cmdline"]) if str(io_dir) in " ".join(p.info["cmdline"] or [])]
