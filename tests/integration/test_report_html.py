"""report.html rendered by a real browser (headless Chromium): content, pictures, no console
errors, and strings from engines escaped."""
import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from coordinator.cli import app
from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<script>console.error('injected')</script><b>bold</b>"


def render(page, screenshot=None):
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    argv += [f"--screenshot={screenshot}", "--window-size=1200,2400"] if screenshot else ["--dump-dom"]
    done = subprocess.run(argv + [page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_html_in_a_browser(tmp_path, cache):
    _, out, rows, _ = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_faster_rcnn",
                            "--engines", "torch,ort,trt", "--iterations", "2", "--warmup", "0")
    dom, console = render(out / "report.html")
    assert console == []
    for heading in ("Verdict", "Results", "Cold start and steady state", "Outputs: parity with PyTorch",
                    "Resource usage", "Setup", "Device", "Model", "Test data"):
        assert f">{heading}" in dom
    assert len(re.findall(r"<svg", dom)) == 3  # latency bars, distribution, speed-up
    assert len(re.findall(r'<img alt="detections of', dom)) == 2  # torch and ort, trt was skipped
    assert "TensorRT does not run on cpu" in dom

    # A message from an engine is text, never markup: rewrite one and regenerate the views.
    report = json.loads((out / "report.json").read_text())
    report["results"][-1]["reason"] = HOSTILE
    (out / "report.json").write_text(json.dumps(report))
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0
    dom, console = render(out / "report.html")
    assert console == [] and "&lt;script&gt;" in dom and "<b>bold</b>" not in dom
