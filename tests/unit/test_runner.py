import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared import RunResult, RunSpec, load_samples, save_samples
from tests.fixtures.onnx_models import matmul_relu, matmul_relu_reference, matmul_relu_samples

RUNNER = Path(__file__).parents[1] / "fixtures" / "numpy_engine" / "runner.py"
ROOT = Path(__file__).parents[2]


def load_runner_class():
    spec = importlib.util.spec_from_file_location("numpy_matmul", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NumpyRunner


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "inputs.npz"
    save_samples(str(path), matmul_relu_samples())
    return path


def make_spec(inputs, **kw):
    base = dict(engine="numpy", model_path="unused.onnx", inputs_path=str(inputs), warmup=1, iterations=5)
    return RunSpec(**{**base, **kw})


def test_run_measures_and_keeps_outputs_of_every_input(inputs):
    result, outputs = load_runner_class()(make_spec(inputs, iterations=7)).run()
    assert result.status == "ok", result.reason
    assert result.latency_ms.count == 7 and result.latency_ms.min > 0
    assert result.first_inference_ms > 0 and result.throughput_per_s > 0
    assert set(result.stage_seconds) == {"setup", "load", "convert", "compile", "run"}
    assert result.resources.peak_rss_mb > 0
    assert result.settings == {"threads": 1} and result.engine_version == np.__version__
    for sample, out in zip(matmul_relu_samples(), outputs):
        np.testing.assert_allclose(out["y"], matmul_relu_reference(sample), rtol=1e-6)


def test_warmup_starts_with_the_parity_pass_and_its_later_half_gives_the_phases(inputs):
    calls = []

    class Phased(load_runner_class()):
        instrumented = False

        def instrument_impl(self, on):
            self.instrumented = on

        def infer_impl(self, feeds):
            calls.append(self.instrumented)
            if self.instrumented:  # 2.0, 3.0, ... ms: the later calls differ from the earlier
                times = self.phase_ms.setdefault("inference", [])
                times.append(2.0 + len(times))
            return super().infer_impl(feeds)

    result, outputs = Phased(make_spec(inputs, warmup=4, iterations=5, repeats=3)).run()
    assert result.status == "ok", result.reason
    # first inference alone, 4 warm-up calls (the second input's, kept, first), all
    # instrumented; 3 x 5 timed calls never are
    assert calls == [False] + [True] * 4 + [False] * 15
    assert len(outputs) == 2 and result.latency_ms.count == 15
    assert result.measurement.warmup_calls == 4 and result.measurement.stop == "count"
    # phases from the later half of the warm-up calls: 4.0 and 5.0 (the first two were 2.0, 3.0)
    assert len(result.repeat_p50_ms) == 3 and result.breakdown_ms == {"inference": 4.5}


def test_warmup_is_bounded_by_time_but_every_input_runs_for_parity(inputs):
    class Slow(load_runner_class()):
        def infer_impl(self, feeds):
            import time
            time.sleep(0.05)
            return super().infer_impl(feeds)

    result, outputs = Slow(make_spec(inputs, warmup=100, warmup_time_s=0.12, iterations=2)).run()
    assert len(outputs) == 2  # both inputs' outputs, whatever the time bound
    assert 1 <= result.measurement.warmup_calls <= 4 and result.measurement.warmup_s < 1.0


def test_the_loop_stops_once_the_median_is_known(inputs):
    """No --iterations: at least 10 calls, then until p50's 95% interval is within +-target."""
    result, _ = load_runner_class()(make_spec(inputs, iterations=None, target_ci=0.2, max_time_s=30)).run()
    m, lat = result.measurement, result.latency_ms
    assert m.stop == "converged" and lat.count >= 10 and lat.ci_halfwidth() <= 0.2
    assert lat.p50_ci95[0] <= lat.p50 <= lat.p50_ci95[1]
    # every timed call is kept with the input it ran on; statistics per input too
    assert len(m.latencies_ms) == lat.count and m.input_index[:4] == [0, 1, 0, 1]
    assert set(result.per_input_ms) == {"0", "1"} and sum(x.count for x in result.per_input_ms.values()) == lat.count
    assert m.gc == "collected, frozen and disabled during the timed loops"


def test_the_budget_ends_a_loop_that_does_not_converge(inputs):
    class Erratic(load_runner_class()):
        def infer_impl(self, feeds):
            import random
            import time
            time.sleep(random.Random(len(self.phase_ms.setdefault("n", []))).choice([0.001, 0.02]))
            self.phase_ms["n"].append(0.0)
            return super().infer_impl(feeds)

    result, _ = Erratic(make_spec(inputs, iterations=None, target_ci=0.001, max_time_s=0.5)).run()
    assert result.measurement.stop == "budget" and 0.5 <= result.measurement.timed_s < 1.5


def test_timed_calls_run_with_the_collector_off_and_outputs_freed_after_the_clock(inputs):
    import gc
    import weakref

    seen = []

    class Watched(load_runner_class()):
        def infer_impl(self, feeds):
            out = super().infer_impl(feeds)
            holder = type("Out", (dict,), {})(out)
            seen.append((gc.isenabled(), weakref.ref(holder)))
            return holder

        def outputs_impl(self, raw):
            return dict(raw)

    result, _ = Watched(make_spec(inputs, warmup=0, iterations=3)).run()
    assert result.status == "ok", result.reason
    assert [enabled for enabled, _ in seen[-3:]] == [False] * 3 and gc.isenabled()
    assert all(ref() is None for _, ref in seen)  # nothing kept a timed call's output alive


def test_min_time_keeps_measuring(inputs):
    result, _ = load_runner_class()(make_spec(inputs, iterations=1, min_time_s=0.2)).run()
    assert result.latency_ms.count > 1


@pytest.mark.parametrize("fail_in, status, stage", [
    ("convert", "unsupported", "convert"), ("compile", "failed", "compile"), ("skip", "skipped", None),
])
def test_errors_become_rows_with_their_stage(inputs, fail_in, status, stage):
    result, outputs = load_runner_class()(make_spec(inputs, engine_options={"fail_in": fail_in})).run()
    assert (result.status, result.stage, outputs) == (status, stage, [])
    assert result.reason
    if status == "unsupported":
        assert (result.error.operator, result.error.node) == ("Foo", "foo_1")


def test_unknown_engine_option_names_the_valid_ones(inputs):
    result, _ = load_runner_class()(make_spec(inputs, engine_options={"nope": 1})).run()
    assert result.status == "failed" and "unknown engine option(s) nope" in result.reason
    assert "fail_in" in result.reason


def test_entry_point_writes_result_and_outputs(tmp_path, inputs):
    make_spec(inputs).save(str(tmp_path / "spec.json"))
    subprocess.run([sys.executable, "-m", "shared.entry", "--runner", str(RUNNER), "--io", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    result = RunResult.load(str(tmp_path / "result.json"))
    assert result.status == "ok" and result.outputs_file == "outputs.npz"
    assert len(load_samples(str(tmp_path / "outputs.npz"))) == 2


def test_protocol_package_is_python38_compatible():
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    assert vermin, "vermin is a test dependency: pip install -e '.[test]'"
    out = subprocess.run([vermin, "--no-tips", "--violations", "-t=3.8-",
                          "--eval-annotations", str(ROOT / "shared")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_gpu_figures_come_from_the_drivers_samples_within_the_loop():
    """NVML keeps its own sample buffer: the window reads the samples of its own time span
    after the loop (no sampling thread). The driver is faked here; the arithmetic is ours."""
    import os
    import time
    from types import SimpleNamespace as NS

    from shared.monitor import ResourceWindow

    class FakeNvml:
        NVML_GPU_UTILIZATION_SAMPLES, NVML_TOTAL_POWER_SAMPLES = 1, 0
        NVMLError = RuntimeError

        def __init__(self):
            self.stamps = []

        def nvmlDeviceGetMemoryInfo(self, handle):
            return NS(used=3 * 2**30)

        def nvmlDeviceGetComputeRunningProcesses(self, handle):
            return [NS(pid=os.getpid(), usedGpuMemory=2**30), NS(pid=1, usedGpuMemory=2**31)]

        def nvmlDeviceGetSamples(self, handle, kind, since):
            before, inside = since - 5_000_000, since + 1
            values = {1: (100, 40, 60), 0: (300_000, 200_000, 250_000)}[kind]  # %, mW
            return 1, [NS(timeStamp=t, sampleValue=NS(uiVal=v)) for t, v in zip((before, inside, inside), values)]

    window = ResourceWindow()
    window._nvml = (FakeNvml(), "gpu0")
    with window:
        time.sleep(0.01)
    gpu = window.resources().gpu
    assert gpu["device_memory_used_mb"] == 3072 and gpu["process_memory_mb"] == 1024
    assert gpu["utilisation_percent_mean"] == 50 and gpu["utilisation_percent_max"] == 60  # 100 was before
    assert gpu["power_w_mean"] == 225 and gpu["power_w_samples"] == 2


def test_cache_file_follows_the_model_its_external_data_options_and_calibration(inputs, tmp_path):
    """Weights over 2 GB sit beside an unchanged graph file: changing them must change the key;
    a log written into the same folder must not. The coordinator's digest, when given, is the key."""
    (tmp_path / "m").mkdir()
    model = matmul_relu(tmp_path / "m" / "model.onnx", external_data=True)  # weights in model.onnx.data
    runner = load_runner_class()(make_spec(inputs, model_path=str(model), cache_dir=str(tmp_path / "cache"),
                                           model_files=["model.onnx.data"]))
    samples = matmul_relu_samples()
    first = runner.cache_file(".x", ["v1"], samples)
    assert first == runner.cache_file(".x", ["v1"], samples) and first.startswith(str(tmp_path / "cache"))
    assert first != runner.cache_file(".x", ["v2"], samples) != runner.cache_file(".x", ["v1"], samples[:1])
    (tmp_path / "m" / "bench.log").write_text("a run's log, beside the model")
    assert first == runner.cache_file(".x", ["v1"], samples)
    (tmp_path / "m" / "model.onnx.data").write_bytes(b"new weights" * 5)
    assert first != runner.cache_file(".x", ["v1"], samples)
    runner.spec = runner.spec.replace(model_sha256="ab" * 32)  # the coordinator's digest: no file is read
    model.unlink()
    keyed = runner.cache_file(".x", ["v1"], samples)
    assert keyed != first and keyed == runner.cache_file(".x", ["v1"], samples)
