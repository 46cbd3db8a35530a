"""The OpenPPL runner's engine creation with a stand-in for pyppl.nn (its image alone has ppl.nn):
the engine options set, the precision an fp32 model runs at, and what the row's settings say."""
from pathlib import Path
from types import SimpleNamespace

from shared import RunSpec
from tests.unit.test_runner_modules import load_runner

openppl = load_runner(Path(__file__).parents[2] / "runners" / "openppl" / "runner.py")


def fake_pplnn():
    made = []

    def factory():
        return SimpleNamespace(Create=lambda options: made.append(options) or SimpleNamespace(
            Configure=lambda *args: 0))

    x86 = SimpleNamespace(EngineOptions=SimpleNamespace, MM_MRU="mru", MM_COMPACT="compact", EngineFactory=factory())
    cuda = SimpleNamespace(EngineOptions=SimpleNamespace, MM_BEST_FIT="best", MM_COMPACT="compact",
                           EngineFactory=factory(), ENGINE_CONF_USE_DEFAULT_ALGORITHMS=1, ENGINE_CONF_SET_INPUT_DIMS=2)
    return SimpleNamespace(x86=x86, cuda=cuda), made


def runner(device, **options):
    r = openppl.OpenPPLRunner(RunSpec(engine="openppl", model_path="m.onnx", inputs_path="i.npz", device=device))
    r.options, r.rc_ok = openppl.Options(**options), 0
    r.ret_str = str
    return r


def test_the_x86_engine_runs_fp32(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    pplnn, made = fake_pplnn()
    r = runner("cpu", mm_policy="mem")
    r._create_engine(pplnn, [[1, 3]])
    assert made[0].mm_policy == "compact" and r.precision == "fp32" and r.precision_detail == {}
    assert list(r.settings) == ["engine", "isa", "omp_num_threads", "mm_policy"]
    assert r.settings["engine"] == "x86" and r.settings["omp_num_threads"] == "2" and r.settings["mm_policy"] == "mem"


def test_the_cuda_engine_runs_fp16_and_says_where():
    pplnn, made = fake_pplnn()
    r = runner("cuda:1", quick_select=True)
    r._create_engine(pplnn, [[1, 3]])
    assert (made[0].device_id, made[0].mm_policy) == (1, "best") and r.precision == "fp16"
    assert r.settings == {"engine": "cuda", "device_id": 1, "quick_select": True, "input_dims_hint": [[1, 3]],
                          "mm_policy": "perf"}
    assert set(r.precision_detail) == {"fp16", "fp32", "conversions"}
