"""`e2e cache list|clear` on a real cache folder made by shared/atomic.py."""
import os
import time
from pathlib import Path

from typer.testing import CliRunner

from coordinator.cli.app import app
from shared import atomic

runner = CliRunner()
DAY = 86400


def make_cache(root: Path) -> Path:
    cache = root / "cache"
    for entry, size in (("models/tiny-1", 3000), ("data/abc-def", 2_000_000), ("engines/ort/x-fp16.onnx", 500),
                        ("engines/tvm/y.tvm-tuning", 700)):
        path = cache / entry

        def make(tmp: str, size: int = size, folder: bool = not entry.endswith(".onnx")) -> None:
            if folder:
                os.mkdir(tmp)
                Path(tmp, "file").write_bytes(b"x" * size)
            else:
                Path(tmp).write_bytes(b"x" * size)

        atomic.ensure(str(path), make, entry)
    venv = cache / "venvs" / "ort-123"
    (venv / "bin").mkdir(parents=True)
    (venv / ".e2e-ready").write_text("")
    (cache / "models" / ".tiny-2.partial-4242-xyz").mkdir()  # a writer killed while exporting
    old = time.time() - 10 * DAY
    for path in [cache / "data" / "abc-def", cache / "data" / "abc-def" / atomic.SEAL]:
        os.utime(path, (old, old))
    return cache


def test_list_shows_every_entry_by_kind_with_size_and_state(tmp_path):
    cache = make_cache(tmp_path)
    with open(cache / "models" / "tiny-1" / "file", "r+b") as f:
        f.truncate(10)
    result = runner.invoke(app, ["cache", "list", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "│" in ln]
    kinds = [ln.split("│")[1].strip() for ln in lines]
    assert kinds == ["models", "data", "venvs", "engines", "tuning", "partial"], result.output
    assert "2.0" in lines[1] and "10d" in lines[1]  # MB, age
    assert "damaged: file has 10 bytes, 3000 when it was written" in result.output
    assert "stale (not made for this checkout" in result.output  # ort-123: no checkout's venv
    assert "6 entries" in result.output


def test_clear_older_than_removes_only_old_entries_and_kinds_pick(tmp_path):
    cache = make_cache(tmp_path)
    result = runner.invoke(app, ["cache", "clear", "--older-than", "7d", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "removed data" in result.output and "1 entries removed, 2.0 MB freed" in result.output
    assert not (cache / "data" / "abc-def").exists() and (cache / "models" / "tiny-1").exists()

    result = runner.invoke(app, ["cache", "clear", "partial", "tuning", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert not (cache / "models" / ".tiny-2.partial-4242-xyz").exists()
    assert not (cache / "engines" / "tvm" / "y.tvm-tuning").exists()
    assert (cache / "engines" / "ort" / "x-fp16.onnx").exists()


def test_clear_leaves_an_entry_a_run_is_making(tmp_path):
    cache = make_cache(tmp_path)
    with atomic.locked(str(cache / "models" / "tiny-1")):  # as ensure() holds it while making
        result = runner.invoke(app, ["cache", "clear", "models", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert (cache / "models" / "tiny-1").exists() and "0 entries removed" in result.output


def test_bad_age_and_kind_are_one_line(tmp_path):
    for args, message in ((["--older-than", "soon"], "--older-than 'soon': give a number and a unit"),
                          (["weights"], "unknown cache kind weights; valid: models")):
        result = runner.invoke(app, ["cache", "clear", *args, "--cache-dir", str(tmp_path)])
        assert result.exit_code == 1 and message in result.output, result.output


def test_an_engines_own_cache_is_listed_as_such_not_as_damaged(tmp_path):
    own = tmp_path / "cache" / "engines" / "inductor" / ("inductor-2.14.1" + atomic.OWN_CACHE)
    (own / "fxgraph").mkdir(parents=True)  # Inductor writes and checks its entries itself: no seal
    result = runner.invoke(app, ["cache", "list", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "the engine's own cache" in result.output and "not sealed" not in result.output


def test_files_hard_linked_from_uv_s_cache_are_shared_and_on_disk_once(tmp_path):
    cache = tmp_path / "cache"
    (cache / "uv" / "archive").mkdir(parents=True)
    (cache / "uv" / "archive" / "lib.so").write_bytes(b"x" * 3_000_000)
    venv = cache / "venvs" / "ort-123"
    (venv / "bin").mkdir(parents=True)
    os.link(cache / "uv" / "archive" / "lib.so", venv / "bin" / "lib.so")  # as uv installs
    result = runner.invoke(app, ["cache", "list", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    rows = {ln.split("│")[1].strip(): ln.split("│")[3:5] for ln in result.output.splitlines() if "│" in ln}
    assert [c.strip() for c in rows["venvs"]] == ["3.0", "3.0"] and [c.strip() for c in rows["uv"]] == ["3.0", "3.0"]
    assert "6.0 MB listed, 3.0 MB on disk (hard links counted once)" in result.output
