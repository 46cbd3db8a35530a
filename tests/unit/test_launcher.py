"""A runner process that crashes, hangs or writes garbage still ends as a row that says so."""
import sys
from pathlib import Path

import pytest

from coordinator.engines import Engine
from coordinator.launchers.process import protocol_path, read_result, run_process
from shared import RunSpec, save_samples
from tests.fixtures.onnx_models import matmul_relu_samples

ENGINE = Engine(id="numpy", name="numpy", folder=Path(__file__).parents[1] / "fixtures" / "numpy_engine",
                devices=("cpu",), precisions=("fp32",), environments=("host",))


def launch(tmp_path, timeout=60.0, **options):
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    spec = RunSpec(engine="numpy", model_path=str(tmp_path / "unused.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                   warmup=0, iterations=2, threads=3, engine_options=options)
    return run_process(sys.executable, ENGINE, spec, tmp_path / "io", timeout, [protocol_path(tmp_path / "cache")])


def test_a_normal_run_reads_back_the_result(tmp_path):
    result = launch(tmp_path)
    assert result.status == "ok", result.reason
    # the launcher sets every BLAS/OpenMP thread variable to the spec's thread count
    assert result.environment["thread_env"]["OMP_NUM_THREADS"] == "3"
    assert (tmp_path / "io" / "runner.log").read_text().startswith("e2e runner numpy starting at ")


def test_the_manifest_env_reaches_a_single_stream_runner_and_the_users_own_value_wins(tmp_path, monkeypatch):
    import dataclasses

    bound = dataclasses.replace(ENGINE, env=(("OMP_PROC_BIND", "close"), ("OMP_PLACES", "cores"),
                                             ("MALLOC_MMAP_MAX_", "0")))
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())

    def thread_env(concurrency, where):
        spec = RunSpec(engine="numpy", model_path=str(tmp_path / "unused.onnx"), warmup=0, iterations=2,
                       inputs_path=str(tmp_path / "inputs.npz"), scenario="throughput" if concurrency > 1 else "latency",
                       concurrency=concurrency, threads=2)
        result = run_process(sys.executable, bound, spec, tmp_path / where, 60, [protocol_path(tmp_path / "cache")])
        assert result.status == "ok", result.reason
        assert result.resources.page_faults_per_call is not None  # the kernel's count, over the timed calls
        return {**result.environment["thread_env"], **result.environment["allocator_env"]}

    for name in ("OMP_PROC_BIND", "OMP_PLACES", "MALLOC_MMAP_MAX_"):
        monkeypatch.delenv(name, raising=False)
    env = thread_env(1, "one")
    assert env["OMP_PROC_BIND"] == "close" and env["OMP_PLACES"] == "cores" and env["OMP_NUM_THREADS"] == "2"
    assert env["MALLOC_MMAP_MAX_"] == "0"
    # concurrent requests: binding would put every request's threads on the first core; the
    # allocator's setting holds for them too
    concurrent = thread_env(2, "two")
    assert "OMP_PROC_BIND" not in concurrent and concurrent["MALLOC_MMAP_MAX_"] == "0"
    monkeypatch.setenv("OMP_PROC_BIND", "false")  # the user's choice stands
    assert thread_env(1, "user")["OMP_PROC_BIND"] == "false"


def test_page_faults_a_call_are_counted_and_the_allocator_setting_removes_them(tmp_path, monkeypatch):
    """A block freed by glibc's malloc goes back to the OS and is faulted in again by the next call;
    the PyTorch engines' manifest `env` keeps it (see runners/torch/manifest.yaml)."""
    import dataclasses

    from coordinator.engines import discover

    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)

    def faults(env, where):
        spec = RunSpec(engine="numpy", model_path=str(tmp_path / "unused.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                       warmup=2, iterations=20, engine_options={"scratch_mb": 64})
        result = run_process(sys.executable, dataclasses.replace(ENGINE, env=env), spec, tmp_path / where, 60,
                             [protocol_path(tmp_path / "cache")])
        assert result.status == "ok", result.reason
        return result.resources.page_faults_per_call

    kept = tuple((k, v) for k, v in discover()["torch"].env if k.startswith("MALLOC_"))
    assert kept, "the torch manifest keeps freed memory"
    plain, with_kept = faults((), "plain"), faults(kept, "kept")
    assert plain > 10000  # 64 MB in 4 KiB pages: 16384 a call
    assert with_kept < 100


def test_a_relative_path_never_reaches_a_runner(tmp_path, monkeypatch):
    """The runner starts in its io folder: a path relative to the coordinator's working
    directory would name another file there (every row of a default run failed this way)."""
    monkeypatch.chdir(tmp_path)
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    spec = RunSpec(engine="numpy", model_path="unused.onnx", inputs_path="inputs.npz", iterations=1)
    result = run_process(sys.executable, ENGINE, spec, tmp_path / "io", 60, [protocol_path(tmp_path / "cache")])
    assert result.status == "failed" and "relative paths in the spec" in result.reason
    assert not (tmp_path / "io" / "runner.log").exists()  # nothing was launched


def test_a_crash_is_a_failed_row_naming_the_signal_and_stage(tmp_path):
    result = launch(tmp_path, fail_in="abort")
    assert (result.status, result.stage) == ("failed", "compile")
    assert "killed by SIGABRT" in result.reason


def test_a_hang_is_killed_and_reported_as_timeout(tmp_path):
    result = launch(tmp_path, timeout=3, fail_in="hang")
    assert (result.status, result.stage) == ("timeout", "compile")
    assert "no result after 3 s" in result.reason


@pytest.mark.parametrize("content, message", [("{\"engine\": \"x\", \"sta", "invalid result.json"),
                                              ("{\"engine\": \"x\", \"status\": \"great\"}", "status must be one of")])
def test_a_truncated_or_invalid_result_is_a_failed_row(tmp_path, content, message):
    (tmp_path / "result.json").write_text(content)
    result = read_result("x", tmp_path, 0)
    assert result.status == "failed" and message in result.reason


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "/tmp/outputs.npz", "sub/outputs.npz"])
def test_a_result_naming_outputs_outside_the_io_folder_is_refused(tmp_path, name):
    """A runner in a container is untrusted: the file it names is read by the coordinator."""
    (tmp_path / "result.json").write_text(f'{{"engine": "x", "status": "skipped", "outputs_file": "{name}"}}')
    result = read_result("x", tmp_path, 0)
    assert result.status == "failed" and "is not a file name in the io folder" in result.reason
