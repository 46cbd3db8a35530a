"""Fleet mode on a real Ray cluster started on this machine with `ray start` (loopback): a head,
which takes no rows, and two worker nodes standing for two machine kinds (their e2e-kind:NAME
resources). A bench over both kinds gives rows from each node, with the statuses and parity of
the same bench run locally; a worker killed mid-row gives a failed row naming it while the other
kind's rows complete, and `--resume` then runs only the rows that are missing, on a new node."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`ray start` processes, each in a process group of its own so one node can be killed."""

    def __init__(self, cache: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
        # The nodes run this checkout's e2e on the tests' cache (its engine environments), and the
        # head notices a dead node within seconds rather than Ray's default half minute.
        # Token authentication on, with a token of its own: Ray 2.60 turns it on for a head whenever
        # ~/.ray/auth_token exists (any local ray.init() writes one) but not for the nodes joining it,
        # so the test says which, for every process; the bench reaches the cluster the same way.
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "E2E_CACHE_DIR": str(cache),
                    "RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "1000",
                    "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3", **self.auth}
        self.nodes = {}
        self.start("head", "--head", "--port", str(self.port), "--num-cpus", "0", "--include-dashboard=false")

    def start(self, name: str, *args: str, kind: str = "") -> None:
        resources = ["--resources", json.dumps({"e2e-bench": 1, f"e2e-kind:{kind}": 1})] if kind else []
        address = [] if name == "head" else ["--address", self.address]
        self.nodes[name] = subprocess.Popen(
            [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--temp-dir", self.temp,
             "--disable-usage-stats", *address, *args, *resources],
            env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kind:
            self.wait(lambda kinds: kind in kinds)

    def kinds(self) -> list:
        probe = ("import ray; ray.init(address=%r, logging_level=40, log_to_driver=False); "
                 "print([k for n in ray.nodes() if n['Alive'] for k in n['Resources'] if k.startswith('e2e-kind:')])"
                 % self.address)
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=self.env, timeout=120)
        return [k.split(":", 1)[1] for k in eval(done.stdout.strip().splitlines()[-1])] if done.returncode == 0 else []

    def wait(self, ready, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready(self.kinds()):
                return
            time.sleep(1)
        raise AssertionError(f"the Ray cluster did not get ready: kinds {self.kinds()}")

    def kill(self, name: str) -> None:
        os.killpg(self.nodes[name].pid, signal.SIGKILL)
        self.nodes[name].wait()

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):
            try:
                self.kill(name)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def venvs(cache) -> Path:
    """The ort environment, made once in the tests' cache (the nodes and the local run share it)."""
    VenvLauncher(cache).prepare(discover()["ort"])
    return cache


@pytest.fixture
def cluster(venvs):
    cluster = Cluster(venvs)
    try:
        cluster.start("a", "--num-cpus", "1", kind="cpu-a")
        cluster.start("b", "--num-cpus", "1", kind="cpu-b")
        yield cluster
    finally:
        cluster.stop()


def bench(out: Path, cache: Path, *extra: str, wait: bool = True, env: dict = None):
    args = [sys.executable, "-c", "from coordinator.cli.app import main; main()", "bench", "--launcher", "venv",
            "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "torch,ort", "--weights", "random",
            "--device", "cpu", "--warmup", "1", "--out", str(out), "--cache-dir", str(cache), *extra]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    output = proc.communicate(timeout=900)[0]
    return proc.returncode, output


def rows(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    return {(r["machine"], r["engine"]): r for r in report["results"]}


def test_rows_of_each_kind_run_on_its_node_and_agree_with_the_local_run(cluster, venvs, tmp_path):
    code, local_output = bench(tmp_path / "local", venvs, "--iterations", "5")
    assert code == 0, local_output
    code, output = bench(tmp_path / "fleet", venvs, "--iterations", "5", "--hosts", "all-kinds",
                         "--ray-address", cluster.address, env=cluster.auth)
    assert code == 0, output
    local, fleet = rows(tmp_path / "local"), rows(tmp_path / "fleet")
    assert sorted(fleet) == [("cpu-a", "ort"), ("cpu-a", "torch"), ("cpu-b", "ort"), ("cpu-b", "torch")], output
    for (_kind, engine), row in fleet.items():
        mine = local[("", engine)]
        assert (row["status"], row["precision"]) == (mine["status"], mine["precision"]) == ("ok", "fp32"), row["reason"]
        assert row["parity"]["passed"], (row["parity"], output)  # against the reference the local run cached
        if not (engine == "torch" and mine["parity"] is None):  # the local PyTorch row made the reference
            assert mine["parity"]["passed"], mine["parity"]  # (an empty cache), else it agrees with the cached one
        assert row["launcher"] == f"ray:{mine['launcher']}", row["launcher"]
    # each kind's rows ran on that kind's node, and the report describes both nodes
    nodes = {kind: {row["node"] for (k, _), row in fleet.items() if k == kind} for kind in ("cpu-a", "cpu-b")}
    assert all(len(n) == 1 for n in nodes.values()) and nodes["cpu-a"] != nodes["cpu-b"], nodes
    machines = json.loads((tmp_path / "fleet" / "report.json").read_text())["machines"]
    assert {kind: sorted(m) for kind, m in machines.items()} == {k: sorted(n) for k, n in nodes.items()}
    assert all(d["physical_cores"] >= 1 for m in machines.values() for d in m.values())
    # what came back from the nodes is where a local row's files are
    for kind in ("cpu-a", "cpu-b"):
        logs = tmp_path / "fleet" / "logs" / f"ort-fp32@{kind}"
        assert (logs / "runner.log").is_file() and (logs / fleet[(kind, "ort")]["outputs_file"]).is_file()
        assert "inputs_path: received" in (logs / "fleet.log").read_text() or \
            "already on this node" in (logs / "fleet.log").read_text()
    md = (tmp_path / "fleet" / "report.md").read_text()
    assert "torch | fp32 @cpu-a | ray:host | ok" in md and "**cpu-b**:" in md, md


def test_a_node_killed_mid_row_fails_that_row_and_resume_runs_the_missing_ones(cluster, venvs, tmp_path):
    out = tmp_path / "fleet"
    # rows that take 20 s each (a median never known to 1e-6), so the kill lands inside one
    proc = bench(out, venvs, "--max-time", "20", "--target-ci", "0.000001", "--hosts", "all-kinds",
                 "--schedule", "sequential", "--ray-address", cluster.address, wait=False, env=cluster.auth)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "started" in line and "@cpu-b" in line:
            time.sleep(8)  # inside its timed loop
            cluster.kill("b")
            break
    output = "".join(lines) + proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, output
    got = rows(out)
    assert got[("cpu-a", "torch")]["status"] == got[("cpu-a", "ort")]["status"] == "ok", output
    killed = [row for (kind, _), row in got.items() if kind == "cpu-b"]
    assert len(killed) == 1 and killed[0]["status"] == "failed", output
    assert killed[0]["node"] in killed[0]["reason"] and "died" in killed[0]["reason"], killed[0]["reason"]
    report = json.loads((out / "report.json").read_text())
    assert any("1 row(s) of machine kind cpu-b did not run" in n for n in report["notes"]), report["notes"]

    cluster.start("b2", "--num-cpus", "1", kind="cpu-b")  # the kind is back, on a new node
    proc = subprocess.run([sys.executable, "-c", "from coordinator.cli.app import main; main()", "bench", "--resume", str(out)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **cluster.auth}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = json.loads((out / "report.json").read_text())["results"]
    assert len(after) == 4, [(r["machine"], r["engine"], r["status"]) for r in after]
    missing = [r for r in after if (r["machine"], r["engine"]) not in got]
    assert len(missing) == 1 and missing[0]["status"] == "ok" and missing[0]["node"] != killed[0]["node"], missing


def test_a_node_killed_mid_rounds_fails_its_rows_naming_it_while_the_other_node_finishes(cluster, venvs, tmp_path):
    """Interleaved (the default): each node's rows are loaded there at once by the node's actor and
    timed in rounds; a node that dies takes its loaded rows with it, the other kind's complete."""
    out = tmp_path / "fleet"
    # rounds that go on for 2 x 20 s (ratios never known to 1e-6), so the kill lands among them
    proc = bench(out, venvs, "--rounds-budget", "20", "--target-ratio", "0.000001", "--slice-time", "0.2",
                 "--hosts", "all-kinds", "--ray-address", cluster.address, wait=False, env=cluster.auth)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "in rounds @cpu-b" in line and "round 2:" in line:
            cluster.kill("b")
            break
    output = "".join(lines) + proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, output
    got = rows(out)
    for engine in ("torch", "ort"):
        a, b = got[("cpu-a", engine)], got[("cpu-b", engine)]
        assert a["status"] == "ok" and a["rounds"]["stop"] == "budget", output
        assert b["status"] == "failed" and b["node"] in b["reason"] and "died" in b["reason"], b["reason"]
    assert got[("cpu-a", "ort")]["rounds"]["vs_reference"]["rounds"] >= 2  # paired with torch on its own node


def test_rows_of_one_kind_shared_among_its_nodes_are_each_paired_with_a_reference_on_their_own_node(
        cluster, venvs, tmp_path):
    """Two nodes of kind cpu-a share its rows; the node whose share lacks the reference loads it as a
    partner (timed with its rows, no row of its own), so every ratio is paired on the row's node."""
    cluster.start("a2", "--num-cpus", "1", kind="cpu-a")
    cluster.wait(lambda kinds: kinds.count("cpu-a") == 2)
    out = tmp_path / "fleet"
    code, output = bench(out, venvs, "--rounds-budget", "2", "--slice-time", "0.1", "--hosts", "cpu-a",
                         "--ray-address", cluster.address, env=cluster.auth)
    assert code == 0, output
    got = rows(out)
    torch, ort = got[("cpu-a", "torch")], got[("cpu-a", "ort")]
    assert torch["status"] == ort["status"] == "ok", output
    assert torch["node"] != ort["node"], output  # one row on each node of the kind
    assert "(the reference, to pair with)" in output, output
    ratio = ort["rounds"]["vs_reference"]
    assert ratio is not None and ratio["rounds"] >= 2 and ratio["low"] <= ratio["value"] <= ratio["high"], ort["rounds"]
