"""What the runner base class owns for every engine: the cached conversion with its log, the
device and precision checks against the manifest, the precision that was never read back, and
the one-line error text."""
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from shared import ProtocolError, Runner, RunSpec, one_line, save_samples
from shared.entry import _load_runner_class
from shared.caching import REFUSED
from shared.errors import UnsupportedError
from shared.manifest import declared
from shared.result import NOT_READ_BACK
from tests.fixtures.onnx_models import matmul_relu_samples

ROOT = Path(__file__).parents[2]
NUMPY_RUNNER = ROOT / "tests" / "fixtures" / "numpy_engine" / "runner.py"


class Converter(Runner):
    """A runner whose conversion is a file written by a fake tool."""


@pytest.fixture
def runner(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really onnx")
    return Converter(RunSpec(engine="x", model_path=str(model), inputs_path="/i.npz", cache_dir=str(tmp_path / "c")))


def tool(calls):
    def make(folder):
        calls.append(folder)
        Path(folder, "model.bin").write_text("converted")
        print("the tool says hello")
        return "the tool says hello\n"
    return make


def test_a_conversion_is_made_once_and_its_log_replayed_on_a_hit(runner, capsys):
    calls = []
    first = runner.convert_cached(".fake", ["v1"], tool(calls))
    assert first.converted and first.log == "the tool says hello\n" and len(calls) == 1
    assert first.folder == runner.cache_file(".fake", ["v1"])  # the key `cached` has always used
    assert Path(first.folder, "model.bin").read_text() == "converted"
    assert runner.settings == {"converter_log": str(Path(first.folder, "convert.log")), "conversion": "converted"}
    capsys.readouterr()

    again = Converter(runner.spec)
    second = again.convert_cached(".fake", ["v1"], tool(calls))
    assert not second.converted and len(calls) == 1 and second.folder == first.folder
    assert second.log == first.log and capsys.readouterr().out == first.log + "\n"  # the log, as printed then
    assert again.settings["conversion"] == "cached"


def test_the_log_may_have_its_own_name(runner):
    folder = runner.convert_cached(".fake", ["v1"], tool([]), log="pnnx.log").folder
    assert Path(folder, "pnnx.log").read_text() == "the tool says hello\n"
    assert runner.settings["converter_log"] == str(Path(folder, "pnnx.log"))


def test_uncached_converts_every_time_beside_the_cache_entry(runner):
    calls = []
    one = runner.convert_cached(".fake", ["v1"], tool(calls), cache=False)
    two = runner.convert_cached(".fake", ["v1"], tool(calls), cache=False)
    assert one.converted and two.converted and len(calls) == 2
    assert one.folder == two.folder == runner.cache_file(".fake", ["v1"]) + ".uncached"
    assert not Path(runner.cache_file(".fake", ["v1"])).exists()
    assert runner.settings["conversion"] == "converted"


def test_a_failed_conversion_leaves_no_entry_and_names_no_log(runner):
    def broken(folder):
        raise RuntimeError("the tool crashed")

    with pytest.raises(RuntimeError, match="the tool crashed"):
        runner.convert_cached(".fake", ["v1"], broken)
    assert not Path(runner.cache_file(".fake", ["v1"])).exists()
    assert "converter_log" not in runner.settings and "conversion" not in runner.settings
    assert not Path(runner.cache_file(".fake", ["v1"]) + REFUSED).exists()  # a crash is not a refusal: not kept


def test_a_refusal_is_given_again_at_its_stage_without_converting(runner):
    calls = []

    def refuses(folder):
        calls.append(folder)
        with runner.stage("compile"):
            raise UnsupportedError("no lowering for roi_align", operator="RoiAlign", node="/roi/RoiAlign")

    for r in (runner, Converter(runner.spec)):
        with pytest.raises(UnsupportedError) as raised:
            with r.stage("convert"):
                r.convert_cached(".fake", ["v1"], refuses)
        assert (raised.value.operator, raised.value.node) == ("RoiAlign", "/roi/RoiAlign")
        assert r._clock.failed == "compile"  # the stage it failed in, the second time too
    # what it is first (a row's reason is cut at 300 characters), then the converter's words
    assert len(calls) == 1 and str(raised.value).startswith("kept from the conversion of")
    assert str(raised.value).endswith(": no lowering for roi_align")
    assert r.settings["conversion"] == "refused before (cached)"
    # another tool version (another key) converts again
    with pytest.raises(UnsupportedError):
        Converter(runner.spec).convert_cached(".fake", ["v2"], refuses)
    assert len(calls) == 2


def test_one_line():
    assert one_line(RuntimeError("a\n  b\tc ")) == "a b c"
    assert one_line(ValueError("   ")) == "ValueError"
    assert one_line("x" * 400) == "x" * 299 + "…" and len(one_line("y" * 50, 10)) == 10
    assert one_line("short", 10) == "short"


@pytest.mark.parametrize("manifest", sorted((ROOT / "runners").glob("*/manifest.yaml")), ids=lambda p: p.parent.name)
def test_the_runner_reads_each_manifest_as_yaml_does(manifest):
    data = yaml.safe_load(manifest.read_text())
    found = declared(str(manifest.parent / "runner.py"))
    assert found["devices"] == data["devices"] and found["precisions"] == data["precisions"]


def test_a_manifest_it_cannot_read_says_how_to_write_it(tmp_path):
    (tmp_path / "manifest.yaml").write_text("name: X\ndevices:\n  - cpu\nprecisions: [fp32]\n")
    with pytest.raises(ProtocolError, match="write devices as a one-line list"):
        declared(str(tmp_path / "runner.py"))
    assert declared(str(tmp_path / "elsewhere" / "runner.py")) is None


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """The numpy fixture runner in a runner folder of its own, with a manifest, loaded as
    shared/entry.py loads a runner (as the module `e2e_runner`)."""
    folder = tmp_path / "numpy_engine"
    folder.mkdir()
    shutil.copy(NUMPY_RUNNER, folder / "runner.py")
    (folder / "manifest.yaml").write_text("name: Numpy\ndevices: [cpu]  # only\nprecisions: [fp32, bf16]\n"
                                          "note: numpy's matmul on the host\n")
    inputs = tmp_path / "inputs.npz"
    save_samples(str(inputs), matmul_relu_samples())
    monkeypatch.setitem(sys.modules, "e2e_runner", None)  # restored after the test
    cls = _load_runner_class(str(folder / "runner.py"))

    def run(**kw):
        spec = RunSpec(**{**dict(engine="numpy", model_path="unused.onnx", inputs_path=str(inputs), warmup=1,
                                 iterations=3), **kw})
        return cls(spec).run()[0]
    return run


def test_a_device_or_precision_the_manifest_does_not_declare_is_skipped_with_the_fix(engine):
    row = engine(device="cuda:0")
    assert row.status == "skipped" and row.stage is None and row.precision == ""
    assert row.reason == ("the numpy runner runs on cpu, not cuda (numpy's matmul on the host); "
                          "rerun with --device cpu")
    row = engine(precision="int8")
    assert row.status == "skipped"
    assert row.reason.startswith("the numpy runner offers fp32, bf16, not int8") and "--precision fp32" in row.reason


def test_a_precision_the_runner_never_set_is_not_read_back_not_the_one_asked(engine):
    row = engine(precision="bf16")
    assert row.status == "ok" and row.precision == NOT_READ_BACK


def test_a_row_that_failed_before_the_precision_was_known_has_none(engine):
    row = engine(engine_options={"fail_in": "compile"})
    assert row.status == "failed" and row.precision == ""
