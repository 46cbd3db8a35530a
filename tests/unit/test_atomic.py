"""shared/atomic.py on real files and real processes: an entry is made once however many
processes want it at once, is never seen half made, and a damaged one is made again."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared import atomic

ROOT = Path(__file__).parents[2]

# A process that makes the entry (a folder of two files) slowly, noting that it did.
MAKER = """
import os, sys, time
from shared import atomic
entry, makers = sys.argv[1], sys.argv[2]
def make(tmp):
    with open(makers, "a") as f:
        f.write("%d\\n" % os.getpid())
    os.mkdir(tmp)
    with open(os.path.join(tmp, "a.bin"), "wb") as f:
        f.write(b"a" * 100000)
    time.sleep(1)  # the other process arrives while this one is still making it
    with open(os.path.join(tmp, "b.bin"), "wb") as f:
        f.write(b"b" * 100000)
print(atomic.ensure(entry, make, "the entry"))
print(sorted(os.listdir(entry)), atomic.problem(entry))
"""


def test_processes_that_want_one_entry_at_once_make_it_once(tmp_path):
    entry, makers = tmp_path / "cache" / "entry", tmp_path / "makers"
    procs = [subprocess.Popen([sys.executable, "-c", MAKER, str(entry), str(makers)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = sorted(p.communicate(timeout=60)[0] for p in procs)
    assert all(p.returncode == 0 for p in procs), outputs
    assert len(makers.read_text().split()) == 1  # one maker; the others waited and used its entry
    assert [o.splitlines()[0] for o in outputs] == ["hit", "hit", "made"]
    assert all(o.splitlines()[1] == "['.e2e-seal', 'a.bin', 'b.bin'] None" for o in outputs)
    assert sorted(os.listdir(entry.parent)) == ["entry", "entry.lock"]  # no partial left


def test_a_file_entry_is_sealed_beside_it_and_damage_is_found(tmp_path):
    path = str(tmp_path / "model.onnx")
    assert atomic.ensure(path, lambda tmp: Path(tmp).write_bytes(b"x" * 1000), "the model") == "made"
    assert atomic.problem(path) is None and os.path.isfile(path + atomic.SEAL)
    said = []

    Path(path).write_bytes(b"x" * 500)  # truncated
    assert atomic.problem(path) == "damaged: model.onnx has 500 bytes, 1000 when it was written"
    assert atomic.ensure(path, lambda tmp: Path(tmp).write_bytes(b"x" * 1000), "the model", log=said.append) == \
        "remade: damaged: model.onnx has 500 bytes, 1000 when it was written"
    assert said == [f"the model in {path} is damaged: model.onnx has 500 bytes, 1000 when it was written: "
                    "making it again"]
    assert atomic.problem(path) is None

    Path(path).write_bytes(b"y" * 1000)  # same size, other bytes: the digest sees it
    assert atomic.problem(path) == "damaged: model.onnx differs from what was written (sha256)"
    os.unlink(path + atomic.SEAL)  # what a writer killed between the rename and the seal leaves
    assert atomic.problem(path).startswith("not sealed")


def test_a_failing_make_leaves_nothing(tmp_path):
    path = str(tmp_path / "entry")

    def make(tmp):
        os.mkdir(tmp)
        Path(tmp, "half").write_bytes(b"h")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as caught:
        atomic.ensure(path, make, "the entry")
    assert caught.value.filename == path  # the one line names what could not be written
    assert sorted(os.listdir(tmp_path)) == ["entry.lock"]


def test_partials_of_dead_writers_are_removed_by_the_next_maker(tmp_path):
    path = tmp_path / "entry"
    dead = tmp_path / ".entry.partial-99999-abc"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"half")
    assert atomic.ensure(str(path), lambda tmp: os.mkdir(tmp), "the entry") == "made"
    assert not dead.exists()
    assert json.loads((path / atomic.SEAL).read_text())["files"] == {}


@pytest.mark.parametrize("seal", ["", "{", '{"files": 3}', '{"files": {"model.onnx": 5}}', '{"files": {"a": [1]}}'])
def test_a_damaged_seal_means_not_sealed(tmp_path, seal):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x")
    Path(str(path) + atomic.SEAL).write_text(seal)
    assert atomic.problem(str(path)).startswith("not sealed")
