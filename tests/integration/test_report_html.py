"""report.html rendered by a real browser (headless Chromium): the decision first, content,
pictures, no console errors, and strings from engines escaped."""
import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.report.document import load_report
from coordinator.report.verdict import decide
from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<script>console.error('injected')</script><b>bold</b>"


def render(page, screenshot=None, window="1200,2400"):
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            f"--window-size={window}"]
    argv += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run(argv + [page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def overflow(page, tmp_path):
    """How far the page at 1280 px is wider than the window (0: no horizontal scrolling), read by a
    script in a copy: the report itself has none."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", "<script>const d = document.documentElement; "
                                              "document.title = `overflow ${d.scrollWidth - d.clientWidth}`</script></body>"))
    dom, _ = render(probe, window="1280,2000")
    return int(re.search(r"<title>overflow (-?\d+)</title>", dom).group(1))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_html_in_a_browser(tmp_path, cache):
    _, out, rows, _ = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_faster_rcnn",
                            "--engines", "torch,ort,trt", "--iterations", "2", "--warmup", "0")
    dom, console = render(out / "report.html")
    assert console == []
    for heading in ("Decision", "Results", "Cold start and steady state", "Outputs: parity with PyTorch",
                    "Resource usage", "Setup", "Device", "Model", "Test data"):
        assert f">{heading}" in dom
    assert len(re.findall(r"<svg", dom)) == 4  # the decision's ranking, latency bars, distribution, speed-up
    assert len(re.findall(r'<img alt="detections of', dom)) == 2  # torch and ort, trt was skipped
    assert "TensorRT does not run on cpu" in dom

    # The page opens with the decision, which names the fastest passing row.
    best = decide(load_report(out)).best
    assert best is not None
    assert re.search(r"<h2[^>]*>", dom).group(0) == '<h2 id="decision">'
    decision = dom[dom.index('<h2 id="decision">'):dom.index('<h2 id="results">')]
    assert f"Deploy {best.label()}:" in decision and "<svg" in decision

    # A message from an engine is text, never markup: rewrite one and regenerate the views.
    report = json.loads((out / "report.json").read_text())
    next(r for r in report["results"] if r["engine"] == "trt")["reason"] = HOSTILE  # a row whose reason shows
    (out / "report.json").write_text(json.dumps(report))
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0
    dom, console = render(out / "report.html")
    assert console == [] and "&lt;script&gt;" in dom and "<b>bold</b>" not in dom
    assert overflow(out / "report.html", tmp_path) == 0  # a long unbroken message included
