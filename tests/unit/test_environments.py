"""Environments are sized before any is made: a disk too small for the engines asked is refused
in one line, naming those that would fit, and nothing is created."""
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.run import environments
from coordinator.cli.app import app
from coordinator.engines import discover


@pytest.fixture
def small_disk(monkeypatch):
    """The real refusal path, with the free space the disk reports made small: 1.5 GB."""
    monkeypatch.setattr(environments, "free_mb", lambda cache: 1500.0)


def test_the_plan_counts_pytorch_once():
    engines = [discover()[e] for e in ("torchscript", "executorch", "ort")]
    planned = environments.plan(engines, cache=Path("/nonexistent/e2e-cache"))
    sizes = {p.engine.id: p.mb for p in planned}
    assert sizes["torchscript"] > environments.TORCH_MB  # the first that pins torch carries it
    assert sizes["executorch"] < environments.TORCH_MB and sizes["ort"] < 1000


@pytest.mark.parametrize("command", [["setup", "--engines", "ort,torchscript,mnn"],
                                     ["bench", "--model", "resnet18", "--weights", "random",
                                      "--engines", "ort,torchscript,mnn"]])
def test_a_disk_too_small_is_refused_before_anything_is_made(command, tmp_path, small_disk):
    cache = tmp_path / "cache"
    extra = ["--out", str(tmp_path / "run")] if command[0] == "bench" else []
    # --launcher venv: a built Docker image of an engine would take it out of the plan
    result = CliRunner().invoke(app, [*command, "--launcher", "venv", "--cache-dir", str(cache), *extra])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(" ".join(lines).split("error:")) == 2, result.output  # one error, one line (however wrapped)
    text = " ".join(result.output.split())
    assert "not enough disk for the engine environments" in text
    assert "these would fit: ort, mnn" in text and "1.5 GB is free" in text
    # nothing made: no environment, no export, no uv cache
    assert not (cache / "venvs").exists() and not (cache / "models").exists() and not (cache / "uv").exists()


def test_a_wrong_option_is_said_before_the_disk_is_sized(tmp_path, small_disk):
    """The user's mistake in the model or data options is their one line, whatever the disk holds
    (found running the unit tests in random order on a filling disk: the sizing spoke first)."""
    result = CliRunner().invoke(app, ["bench", "--model", "resnet18", "--inputs", "x.npz", "--launcher", "venv",
                                      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "--inputs gives the example inputs of a model factory" in " ".join(result.output.split())
    assert "not enough disk" not in result.output


def test_environments_that_fit_are_not_refused(tmp_path, small_disk):
    planned = environments.plan([discover()["ort"]], tmp_path)
    environments.check_space(planned, tmp_path)  # 0.2 GB of 1.5 GB: no error


def test_environments_are_made_side_by_side_and_a_stopped_bench_ends_them(tmp_path, monkeypatch):
    """Three at once; `cancel` (a bench that failed before it needed them) ends the installs under way."""
    import time

    from coordinator.launchers import VenvLauncher, venv

    monkeypatch.setattr(venv, "install_plan", lambda folder, requirements, cache: venv.Install(
        "fake", [["sleep", "30"]]))
    launcher = VenvLauncher(tmp_path, log=lambda _: None)
    engines = [discover()[e] for e in ("ort", "mnn", "openvino", "tvm")]
    planned = environments.plan(engines, tmp_path)
    lines = []
    futures = environments.make(launcher, planned, lines.append)
    time.sleep(1.0)
    assert sum(f.running() for f in futures.values()) == environments.WORKERS  # the fourth waits
    started = time.perf_counter()
    for future in futures.values():
        future.cancel()
    launcher.stopping.set()
    for future in futures.values():
        if not future.cancelled():
            with pytest.raises(Exception, match="cancelled"):
                future.result(timeout=10)
    assert time.perf_counter() - started < 5  # the sleeps were ended, not waited for
    assert not any((tmp_path / "venvs" / p.folder.name / ".e2e-ready").exists() for p in planned)


def test_setup_makes_the_environments_asked_with_a_line_each(tmp_path, monkeypatch):
    import sys

    from coordinator.launchers import venv

    monkeypatch.setattr(venv, "install_plan", lambda folder, requirements, cache: venv.Install(
        "fake", [[sys.executable, "-m", "venv", "--without-pip", str(folder)]]))
    cache = tmp_path / "cache"
    result = CliRunner().invoke(app, ["setup", "--engines", "ort,mnn,torch", "--launcher", "venv",
                                      "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "environment ort ready in" in text and "environment mnn ready in" in text, result.output
    assert "environments: 2 made in" in text  # torch runs in e2e's own Python: none for it
    assert venv.made_by(cache / "venvs" / next(p.name for p in (cache / "venvs").glob("onnxruntime-*")
                                               if p.is_dir())) == "fake"
