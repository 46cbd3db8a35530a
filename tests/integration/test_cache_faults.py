"""The cache every run shares, under concurrency, interruption and corruption, for real: two
`e2e bench` processes at once on one cache; SIGKILL at each phase of making an entry (the
`E2E_KILL_AT` hook, shared/faults.py); files truncated on disk; a full disk (a small tmpfs).
Each ends in correct rows, or in one clear line; nothing half written is ever read."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from coordinator.cache import entries
from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, load_samples, save_samples
from tests.fixtures.onnx_models import matmul_relu, matmul_relu_reference, matmul_relu_samples

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]


def bench(out: Path, cache: Path, *extra: str, env: dict = None, wait: bool = True, engines: str = "ort",
          precision: str = "fp16"):
    """`e2e bench` as its own process, run from the checkout (the reference imports the fixture model).
    In the engine's virtualenv: `auto` would pick a Docker image where one is built (the Docker
    tests build e2e-ort), whose container gets neither the kill hook nor this cache's venvs."""
    args = [sys.executable, "-c", "from coordinator.cli.app import main; main()", "bench", "--launcher", "venv",
            "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", engines, "--precision", precision,
            "--weights", "random", "--device", "cpu", "--warmup", "1", "--iterations", "3",
            "--out", str(out), "--cache-dir", str(cache), *extra]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    output = proc.communicate(timeout=600)[0]
    return proc.returncode, output


def rows(out: Path) -> dict:
    return {(r["engine"], r["precision_requested"]): r for r in json.loads((out / "report.json").read_text())["results"]}


def assert_right(out: Path, output: str) -> None:
    """Every row measured and right against the reference, and no traceback on the way."""
    assert "Traceback" not in output, output
    for key, row in rows(out).items():
        if row["status"] != "skipped":
            assert row["status"] == "ok", (key, row["reason"], output)
            assert row["engine"] == "torch" or row["parity"]["passed"], (key, row["parity"], output)


def partials(cache: Path) -> list:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*.partial-*"))


def whole(cache: Path) -> None:
    states = {e.name: e.state for e in entries(cache)}
    assert states and all(s == "whole" for s in states.values()), states


@pytest.fixture(scope="module")
def ort_venv(cache) -> Path:
    engine = discover()["ort"]
    VenvLauncher(cache).prepare(engine)
    return VenvLauncher(cache).env_dir(engine)


@pytest.fixture
def shared_cache(tmp_path, ort_venv) -> Path:
    """A fresh cache of its own, with the tests' ort environment linked in (made once)."""
    cache = tmp_path / "cache"
    (cache / "venvs").mkdir(parents=True)
    (cache / "venvs" / ort_venv.name).symlink_to(ort_venv)
    return cache


def test_two_benches_at_once_share_one_cache(shared_cache, tmp_path):
    procs = [bench(tmp_path / f"run{i}", shared_cache, wait=False, engines="torch,ort", precision="fp32,fp16")
             for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for i, output in enumerate(outputs):
        assert_right(tmp_path / f"run{i}", output)
        assert "making it again" not in output, output  # neither ever saw the other's half-made entry
    reports = [json.loads((tmp_path / f"run{i}" / "report.json").read_text()) for i in range(2)]
    assert reports[0]["model"]["sha256"] == reports[1]["model"]["sha256"]
    assert reports[0]["data"]["inputs_path"] == reports[1]["data"]["inputs_path"]
    assert sum(o.count("Exporting tests.fixtures.tiny.tiny_cnn") for o in outputs) == 1, outputs  # made once
    kinds = [e.kind for e in entries(shared_cache)]
    assert (kinds.count("models"), kinds.count("data"), kinds.count("engines")) == (1, 1, 1), entries(shared_cache)
    assert not partials(shared_cache)
    whole(shared_cache)


@pytest.mark.parametrize("phase", ["export", "inputs", "reference", "convert"])
def test_sigkill_at_a_phase_leaves_a_partial_that_the_next_run_never_uses(phase, shared_cache, tmp_path):
    code, output = bench(tmp_path / "killed", shared_cache, env={"E2E_KILL_AT": phase})
    if phase == "convert":  # the runner made the fp16 model and died: its row says so, the bench goes on
        assert code == 3, output
        row = rows(tmp_path / "killed")[("ort", "fp16")]
        assert row["status"] == "failed" and "SIGKILL" in row["reason"], row["reason"]
    else:  # the coordinator itself died
        assert code == -9, output
    left = partials(shared_cache)
    assert left, "the process was not killed while making its entry"

    code, output = bench(tmp_path / "next", shared_cache)
    assert code == 0, output
    assert_right(tmp_path / "next", output)
    assert not partials(shared_cache), left  # cleared by the run that made the entry
    whole(shared_cache)


def test_sigkill_while_creating_an_environment_then_it_is_made_again(tmp_path):
    cache = tmp_path / "cache"
    code, output = bench(tmp_path / "killed", cache, env={"E2E_KILL_AT": "venv"})
    assert code == -9, output
    code, output = bench(tmp_path / "next", cache)
    assert code == 0, output
    assert "environment in" in output and "is not marked ready (its creation was interrupted): creating it " \
           "again" in output, output
    assert_right(tmp_path / "next", output)

    # A venv that lost its engine (its files deleted) is found broken and made again, not run.
    (venv,) = [p for p in (cache / "venvs").glob("onnxruntime-*") if p.is_dir()]
    shutil.rmtree(next(venv.glob("lib/python*/site-packages/onnxruntime/capi")))
    code, output = bench(tmp_path / "again", cache)
    assert code == 0, output
    assert "is missing onnxruntime's onnxruntime/capi/" in output and "creating it again" in output, output
    assert_right(tmp_path / "again", output)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory, ort_venv) -> Path:
    """A cache with every entry of an ort fp16 bench in it: export, inputs, reference, fp16 model."""
    cache = tmp_path_factory.mktemp("warm") / "cache"
    (cache / "venvs").mkdir(parents=True)
    (cache / "venvs" / ort_venv.name).symlink_to(ort_venv)
    code, output = bench(cache.parent / "run", cache)
    assert code == 0, output
    return cache


DAMAGE = {  # what to truncate: the file under the cache, and the line that says it was found
    "model.onnx": ("models/*/model.onnx", "The cached ONNX export of tests.fixtures.tiny.tiny_cnn in"),
    "inputs.npz": ("data/*/inputs.npz", "The cached test inputs in"),
    "reference": ("data/*/reference-*.npz", "The cached PyTorch reference outputs in"),
    "converted": ("engines/ort/*-fp16.onnx", None),  # said in the runner's log and the row's settings
}


@pytest.mark.parametrize("damaged", list(DAMAGE))
def test_a_truncated_cache_file_is_found_and_made_again(damaged, warm_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(warm_cache, cache, symlinks=True)
    pattern, line = DAMAGE[damaged]
    (path,) = [p for p in cache.glob(pattern) if not p.name.endswith((".e2e-seal", ".lock"))]
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)

    code, output = bench(tmp_path / "run", cache)
    assert code == 0, output
    assert_right(tmp_path / "run", output)
    said = f"has {size // 2} bytes, {size} when it was written: making it again"
    if line:
        assert line in output and said in output, output
    else:
        row = rows(tmp_path / "run")[("ort", "fp16")]
        assert said.replace(": making it again", "") in row["settings"]["cache_remade"], row["settings"]
        assert said in (tmp_path / "run" / "logs" / "ort-fp16" / "runner.log").read_text()
    assert path.stat().st_size == size
    whole(cache)


def test_tvm_tuning_killed_then_truncated_is_tuned_again(cache, tmp_path, monkeypatch):
    """SIGKILL once the records are made (not yet published), then a record cut in half: each
    next run tunes again, and its outputs are right."""
    engine = discover()["tvm"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    samples = [{"x": s["x"]} for s in matmul_relu_samples()]  # one shape: MetaSchedule tunes static shapes
    save_samples(str(tmp_path / "inputs.npz"), samples)
    spec = RunSpec(engine="tvm", model_path=str(matmul_relu(tmp_path / "m.onnx")), threads=2,
                   inputs_path=str(tmp_path / "inputs.npz"), warmup=1, iterations=3,
                   engine_options={"trials": 4}, cache_dir=str(tmp_path / "cache"))
    monkeypatch.setenv("E2E_KILL_AT", "tuning")  # the venv launcher passes the environment on
    killed = launcher.run(engine, spec, tmp_path / "io0", timeout=900)
    assert killed.status == "failed" and "SIGKILL" in killed.reason, killed.reason
    assert partials(tmp_path / "cache") and not list((tmp_path / "cache").glob("*.tvm-tuning"))
    monkeypatch.delenv("E2E_KILL_AT")

    first = launcher.run(engine, spec, tmp_path / "io1", timeout=900)
    assert first.status == "ok" and first.settings["tuning"]["records"] == "miss", first.reason
    assert not partials(tmp_path / "cache")
    (records,) = (tmp_path / "cache").glob("*.tvm-tuning/database_tuning_record.json")
    size = records.stat().st_size
    with open(records, "r+b") as f:
        f.truncate(size // 2)

    second = launcher.run(engine, spec, tmp_path / "io2", timeout=900)
    assert second.status == "ok", second.reason
    assert second.settings["tuning"]["records"] == (
        f"remade: damaged: database_tuning_record.json has {size // 2} bytes, {size} when it was written")
    for sample, out in zip(samples, load_samples(str(tmp_path / "io2" / "outputs.npz"))):
        np.testing.assert_allclose(out["y"], matmul_relu_reference(sample), rtol=1e-5, atol=1e-6)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs, where the machine lets the tests mount one (root, no container veto)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass


def test_a_full_disk_under_the_cache_ends_in_one_line(small_disk, tmp_path):
    fill(small_disk)
    code, output = bench(tmp_path / "run", small_disk / "cache")
    assert code == 1, output
    lines = [ln for ln in output.splitlines() if ln.startswith("error:")]
    # the environments are sized against the free disk before anything is made: refused at once
    assert len(lines) == 1 and "not enough disk for the engine environments: ort need" in lines[0], output
    assert "Traceback" not in output, output
    assert not partials(small_disk / "cache")


def test_a_full_disk_under_the_run_keeps_the_rows_measured_and_resume_finishes(small_disk, shared_cache):
    out = small_disk / "run"
    # sequential: the torch row ends (and is saved) before ort hangs; interleaved, both would be loaded first
    proc = bench(out, shared_cache, "--timeout", "8", "--schedule", "sequential", env={"E2E_FAULT": "ort=hang"},
                 wait=False, engines="torch,ort", precision="fp32")
    deadline = time.time() + 300
    while not (out / "report.json").is_file():  # the torch row is saved: now the disk fills up
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.1)
    fill(small_disk)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, output
    lines = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "no space left on the device" in lines[0], output
    assert "holds 1 of the 2 row(s) measured" in lines[0] and "--resume" in lines[0], output
    assert list(rows(out)) == [("torch", "fp32")] and rows(out)[("torch", "fp32")]["status"] == "ok"

    (small_disk / "filler").unlink()
    code, output = subprocess.run([sys.executable, "-c", "from coordinator.cli.app import main; main()", "bench",
                                   "--resume", str(out)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  capture_output=True, text=True).returncode, ""
    assert code == 0
    assert [(k, r["status"]) for k, r in rows(out).items()] == [(("torch", "fp32"), "ok"), (("ort", "fp32"), "ok")]
