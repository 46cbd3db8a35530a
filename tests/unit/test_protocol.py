import json

import numpy as np
import pytest

from shared import Latency, ProtocolError, RunResult, RunSpec, load_samples, save_samples


def spec(**kw):
    return RunSpec(engine="ort", model_path="m.onnx", inputs_path="i.npz", **kw)


def test_spec_round_trip(tmp_path):
    s = spec(precision="bf16", threads=2, engine_options={"a": 1})
    s.save(str(tmp_path / "spec.json"))
    assert RunSpec.load(str(tmp_path / "spec.json")) == s


@pytest.mark.parametrize("data, message", [
    ({"engine": "ort", "model_path": "m", "inputs_path": "i", "precision": "fp8"}, "precision must be one of"),
    ({"engine": "ort", "model_path": "m", "inputs_path": "i", "warmup": "5"}, "RunSpec.warmup: expected an integer"),
    ({"engine": "ort", "model_path": "m", "inputs_path": "i", "colour": 1}, "unknown field(s) colour"),
    ({"engine": "ort", "inputs_path": "i"}, "missing field 'model_path'"),
    ({"engine": "ort", "model_path": "m", "inputs_path": "i", "schema_version": 99}, "different e2e versions"),
    ({"engine": "ort", "model_path": "m", "inputs_path": "i", "device": "gpu"}, "device must be"),
    ([1, 2], "expected an object"),
])
def test_spec_rejects_bad_input_with_a_message(data, message):
    with pytest.raises(ProtocolError, match=None) as e:
        RunSpec.from_dict(data)
    assert message in str(e.value)


def test_unreadable_spec_is_a_protocol_error(tmp_path):
    (tmp_path / "spec.json").write_text("{not json")
    with pytest.raises(ProtocolError, match="cannot read"):
        RunSpec.load(str(tmp_path / "spec.json"))


def test_latency_statistics_match_numpy():
    values = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.0]
    lat = Latency.from_values(values)
    for q in (50, 90, 95, 99):
        assert getattr(lat, f"p{q}") == pytest.approx(np.percentile(values, q))
    assert lat.mean == pytest.approx(np.mean(values))
    assert lat.std == pytest.approx(np.std(values, ddof=1))
    assert (lat.min, lat.max, lat.count) == (1.0, 10.0, 7)
    assert lat.cv == pytest.approx(lat.std / lat.mean)


def test_ok_result_needs_latency():
    with pytest.raises(ValueError, match="latency"):
        RunResult(engine="ort", status="ok")


def test_result_round_trip_with_nested_records(tmp_path):
    r = RunResult(engine="ort", status="ok", latency_ms=Latency.from_values([1.0, 2.0]), settings={"x": [1]})
    r.save(str(tmp_path / "r.json"))
    assert RunResult.load(str(tmp_path / "r.json")) == r
    assert json.loads((tmp_path / "r.json").read_text())["latency_ms"]["p50"] == 1.5


def test_samples_round_trip_keeps_order_names_and_dtypes(tmp_path):
    samples = [{"b": np.arange(3, dtype=np.int64), "a": np.ones((2, 2), np.float32)}, {"b": np.zeros(0), "a": np.eye(2)}]
    save_samples(str(tmp_path / "s.npz"), samples)
    back = load_samples(str(tmp_path / "s.npz"))
    assert [list(s) for s in back] == [["b", "a"], ["b", "a"]]
    for got, want in zip(back, samples):
        for k in want:
            assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k])


def test_samples_reject_foreign_npz(tmp_path):
    np.savez(tmp_path / "x.npz", plain=np.ones(2))
    with pytest.raises(ProtocolError, match="not '<index>/<name>'"):
        load_samples(str(tmp_path / "x.npz"))


def test_the_reference_is_kept_per_device_and_torch_version(tmp_path):
    """A CUDA reference must never judge a later CPU run of the same inputs."""
    from importlib.metadata import version

    from coordinator.model.testdata import reference_file

    cpu, cuda = reference_file(tmp_path, "cpu"), reference_file(tmp_path, "cuda:0")
    assert cpu != cuda and cpu.parent == tmp_path
    assert f"torch{version('torch')}" in cpu.name
