"""Every CPU engine, for real, in its own virtualenv, on a tiny ONNX graph."""
import json

import numpy as np
import pytest

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, load_samples, save_samples
from tests.fixtures.onnx_models import conv_then_nonzero, matmul_relu, matmul_relu_reference, matmul_relu_samples

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("engine_id", ["ort", "openvino", "tvm"])
def test_engine_runs_in_its_own_environment(engine_id, cache, tmp_path):
    engine = discover()[engine_id]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    samples = matmul_relu_samples()
    save_samples(str(tmp_path / "inputs.npz"), samples)
    spec = RunSpec(engine=engine_id, model_path=str(matmul_relu(tmp_path / "m.onnx")),
                   inputs_path=str(tmp_path / "inputs.npz"), warmup=1, iterations=5, threads=2)

    result = launcher.run(engine, spec, tmp_path / "io", timeout=600)

    assert result.status == "ok", f"{result.reason}\n{(tmp_path / 'io' / 'runner.log').read_text()}"
    assert result.engine_version and result.precision == "fp32"
    assert result.latency_ms.count == 5
    # isolated: the runner ran on the engine's own interpreter, not the coordinator's
    assert result.environment["executable"].startswith(str(cache / "venvs"))
    outputs = load_samples(str(tmp_path / "io" / "outputs.npz"))
    for sample, out in zip(samples, outputs):
        np.testing.assert_allclose(out["y"], matmul_relu_reference(sample), rtol=1e-5, atol=1e-6)


def test_tvm_makes_a_truncated_specialised_model_again_with_one_line(cache, tmp_path):
    """The shape-specialised export (shared/specialise.py) is one sealed cache entry, a folder of
    model.onnx and specialise.json: a file of it cut short is found by the next run, said in one
    line and made again."""
    engine = discover()["tvm"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    samples = matmul_relu_samples()  # one shape: specialised
    save_samples(str(tmp_path / "inputs.npz"), samples)
    spec = RunSpec(engine="tvm", model_path=str(matmul_relu(tmp_path / "m.onnx")), threads=2,
                   inputs_path=str(tmp_path / "inputs.npz"), warmup=1, iterations=3, cache_dir=str(tmp_path / "cache"))

    first = launcher.run(engine, spec, tmp_path / "io1", timeout=600)
    assert first.status == "ok", f"{first.reason}\n{(tmp_path / 'io1' / 'runner.log').read_text()}"
    (entry,) = (tmp_path / "cache").glob("*-specialised.onnx")
    assert sorted(p.name for p in entry.iterdir()) == [".e2e-seal", "model.onnx", "specialise.json"]
    assert first.settings["specialised"] == json.loads((entry / "specialise.json").read_text())
    model = entry / "model.onnx"
    size = model.stat().st_size
    with open(model, "r+b") as f:
        f.truncate(size // 2)

    second = launcher.run(engine, spec, tmp_path / "io2", timeout=600)
    assert second.status == "ok", second.reason
    said = f"damaged: model.onnx has {size // 2} bytes, {size} when it was written"
    assert second.settings["cache_remade"] == f"{entry.name}: {said}", second.settings
    assert second.settings["specialised"] == first.settings["specialised"]
    log = (tmp_path / "io2" / "runner.log").read_text()
    assert [line for line in log.splitlines() if "making it again" in line] == [
        f"The cached specialised.onnx in {entry} is {said}: making it again"], log
    assert model.stat().st_size == size
    for sample, out in zip(samples, load_samples(str(tmp_path / "io2" / "outputs.npz"))):
        np.testing.assert_allclose(out["y"], matmul_relu_reference(sample), rtol=1e-5, atol=1e-6)


def test_tvm_tunes_once_then_reuses_its_records(cache, tmp_path):
    """MetaSchedule really measures candidates (every build once failed on a worker timeout), and
    a second run with the same settings applies the cached records without tuning again."""
    engine = discover()["tvm"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    samples = [{"x": s["x"]} for s in matmul_relu_samples()]  # one shape: MetaSchedule tunes static shapes
    save_samples(str(tmp_path / "inputs.npz"), samples)
    spec = RunSpec(engine="tvm", model_path=str(matmul_relu(tmp_path / "m.onnx")), threads=2,
                   inputs_path=str(tmp_path / "inputs.npz"), warmup=1, iterations=3,
                   engine_options={"trials": 4}, cache_dir=str(tmp_path / "cache"))

    first = launcher.run(engine, spec, tmp_path / "io1", timeout=900)
    assert first.status == "ok", f"{first.reason}\n{(tmp_path / 'io1' / 'runner.log').read_text()}"
    tuning = first.settings["tuning"]
    assert tuning["records"] == "miss" and tuning["tasks"] >= 1 and tuning["measured"] >= 1, tuning
    assert first.settings["pipeline"] == "static_shape_tuning"
    for sample, out in zip(samples, load_samples(str(tmp_path / "io1" / "outputs.npz"))):
        np.testing.assert_allclose(out["y"], matmul_relu_reference(sample), rtol=1e-5, atol=1e-6)

    second = launcher.run(engine, spec, tmp_path / "io2", timeout=900)
    assert second.status == "ok", second.reason
    assert second.settings["tuning"] == dict(tuning, records="hit")
    assert second.stage_seconds["compile"] < first.stage_seconds["compile"] / 2
    for sample, out in zip(samples, load_samples(str(tmp_path / "io2" / "outputs.npz"))):
        np.testing.assert_allclose(out["y"], matmul_relu_reference(sample), rtol=1e-5, atol=1e-6)


def test_tvm_tunes_the_static_kernels_of_a_model_with_data_dependent_ones(cache, tmp_path):
    """A detector's tail (after NonZero, NMS) has kernels of symbolic shape, which MetaSchedule
    cannot measure: only the static ones are tuned (and of those only the ones holding at least
    `min_task_share` of the FLOPs), the others keep the default schedule, and the outputs stay
    right. An opaque kernel (ScatterElements) does not stop the weights' prepacking."""
    from onnx.reference import ReferenceEvaluator

    engine = discover()["tvm"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    model = conv_then_nonzero(tmp_path / "m.onnx")
    samples = [{"x": np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)} for i in range(2)]
    save_samples(str(tmp_path / "inputs.npz"), samples)
    spec = RunSpec(engine="tvm", model_path=str(model), threads=2, inputs_path=str(tmp_path / "inputs.npz"),
                   warmup=1, iterations=3, engine_options={"trials": 4}, cache_dir=str(tmp_path / "cache"))

    result = launcher.run(engine, spec, tmp_path / "io", timeout=900)
    assert result.status == "ok", f"{result.reason}\n{(tmp_path / 'io' / 'runner.log').read_text()}"
    tuning = result.settings["tuning"]
    assert tuning["tasks"] >= 1 and tuning["measured"] >= 1, tuning
    assert tuning["symbolic_tasks"] >= 1 and tuning["opaque_tasks"] == 1, tuning  # left to the default schedule
    # the convolution is tuned; the element-wise kernel beside it, a sliver of the FLOPs, is not
    assert tuning["tasks"] == 1 and tuning["small_tasks"] == 1 and tuning["min_task_share"] == 0.001, tuning
    reference = ReferenceEvaluator(str(model))
    for sample, out in zip(samples, load_samples(str(tmp_path / "io" / "outputs.npz"))):
        y, mean_index = reference.run(None, sample)
        np.testing.assert_allclose(out["y"], y, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["mean_index"], mean_index, rtol=1e-5)
