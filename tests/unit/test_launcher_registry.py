"""Launchers: found by scanning coordinator/launchers/ (a module or a folder of modules), each one
implementing the `Launcher` interface and saying which kind of environment it uses, and one
policy choosing an engine's launcher, among this machine's launchers using an environment its
manifest declares, for `e2e bench` and `e2e engines`. The Ray launcher is found as the others
are, but is a launcher of other machines: picked by --hosts, never by --launcher or `auto`. No
Docker daemon nor Ray cluster is asked: the policy tests use fake launchers."""
import inspect
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import pytest

import coordinator.launchers as launchers_package
from coordinator.config import BenchConfig
from coordinator.engines import ENVIRONMENTS, RUNNERS_DIR as RUNNERS, _load, discover
from coordinator.errors import UsageError
from coordinator.launchers import (AUTO, NODES, DockerLauncher, HostLauncher, LaunchSettings, Launcher,
                                   VenvLauncher, check, choose, create_all, launcher_classes, names)
from coordinator.launchers.ray.cluster import Node
from coordinator.launchers.ray.launcher import RayLauncher
from coordinator.launchers.registry import launcher_classes as cached_classes
from coordinator.cli.summary import availability

INTERFACE = ("create", "unavailable", "prepare", "run", "describe", "provenance")


def test_the_registry_finds_every_launcher_in_auto_order():
    """The Ray launcher too, in its folder (coordinator/launchers/ray/launcher.py)."""
    assert launcher_classes() == {"host": HostLauncher, "docker": DockerLauncher, "venv": VenvLauncher,
                                  "ray": RayLauncher}
    assert names().index("docker") < names().index("venv")  # auto: the image first


def test_each_launcher_says_which_environment_it_uses_and_every_environment_has_one():
    assert {name: (cls.environment, cls.selected_by) for name, cls in launcher_classes().items()} == \
        {"host": ("host", "--launcher"), "docker": ("docker", "--launcher"), "venv": ("venv", "--launcher"),
         "ray": (NODES, "--hosts")}  # the Ray launcher runs rows with each node's own launcher
    assert {cls.environment for cls in launcher_classes().values()} - {NODES} == set(ENVIRONMENTS)
    declared = {env for engine in discover().values() for env in engine.environments}
    assert declared == set(ENVIRONMENTS)


@pytest.mark.parametrize("cls", [HostLauncher, VenvLauncher, DockerLauncher, RayLauncher])
def test_each_launcher_implements_the_whole_interface(cls, tmp_path):
    assert set(Launcher.__abstractmethods__) == set(INTERFACE)
    assert not inspect.isabstract(cls)
    for method in INTERFACE:
        assert getattr(cls, method) is not getattr(Launcher, method), f"{cls.__name__} lacks {method}"
    assert list(inspect.signature(cls.unavailable).parameters) == ["self", "engine", "device"]
    assert list(inspect.signature(cls.run).parameters) == ["self", "engine", "spec", "io_dir", "timeout"]
    if cls.environment == NODES:  # made per node by the fleet, from a cluster and a node
        with pytest.raises(TypeError, match="made per node by the fleet"):
            cls.create(LaunchSettings(tmp_path))
        return
    launcher = cls.create(LaunchSettings(tmp_path, memory_limit_mb=512))
    assert isinstance(launcher, Launcher) and launcher.name in names()


def test_making_the_launchers_asks_no_daemon_and_provenance_names_the_environment(tmp_path):
    made = create_all(LaunchSettings(tmp_path, memory_limit_mb=512))
    assert list(made) == ["host", "docker", "venv"]  # this machine's: the Ray launcher is made per node
    assert made["docker"]._client is None and made["docker"].memory_limit_mb == 512
    ort, torch = discover()["ort"], discover()["torch"]
    assert str(made["venv"].env_dir(ort)) in made["venv"].provenance(ort)
    assert "requirements.txt sha256" in made["venv"].provenance(ort)
    assert made["host"].provenance(torch).startswith(sys.executable) and "torch " in made["host"].provenance(torch)
    assert made["host"].describe() == {} and made["venv"].describe() == {}


def test_config_takes_auto_and_every_registered_launcher():
    for name in (AUTO, *names()):
        assert BenchConfig.of(model="-", launcher=name).execution.launcher == name
    with pytest.raises(UsageError, match="unknown launcher 'rya'; valid: auto, host, docker, venv, ray"):
        BenchConfig.of(model="-", launcher="rya")


RAY_REFUSED = ("--launcher ray: the ray launcher runs each row on another machine with that machine's own "
               "launcher; pick the machines with --hosts and their launcher with --launcher (auto, host, docker, venv)")


def test_launcher_ray_is_refused_in_one_line_saying_to_use_hosts(tmp_path):
    """--launcher picks a machine's launcher (on a fleet node, the node's own), --hosts the machines."""
    with pytest.raises(UsageError) as refused:
        check("ray")
    assert str(refused.value) == RAY_REFUSED
    for name in (AUTO, "host", "docker", "venv", "nonesuch"):  # the policy says what is wrong with these
        check(name)
    made = create_all(LaunchSettings(tmp_path))
    with pytest.raises(UsageError, match="pick the machines with --hosts"):  # a bench here, `e2e setup`
        choose(discover()["ort"], "ray", "cpu", made)
    from coordinator.run.fleet import FleetRun

    cfg = BenchConfig.of(model="-", launcher="ray", hosts="all-kinds")  # the fleet's nodes: before connecting
    with pytest.raises(UsageError, match="pick the machines with --hosts"):
        FleetRun(cfg)


def test_auto_never_picks_ray_here_nor_on_a_fleet_node(tmp_path):
    """A node chooses its launcher with create_all and choose, as a bench here does."""
    made = create_all(LaunchSettings(tmp_path))
    assert "ray" not in made
    for engine in discover().values():
        for device in engine.devices:
            launcher, _ = choose(engine, AUTO, device, made)
            assert launcher is None or launcher.environment != NODES


class FakeFleet:
    def describe(self) -> dict:
        return {"ray": "2.x", "address": "10.0.0.1:6379"}


def test_the_fleet_makes_one_ray_launcher_per_node_which_answers_as_a_launcher():
    gpu, cpu = Node("a" * 56, "a100", "10.0.0.5", gpus=1.0), Node("b" * 56, "epyc", "10.0.0.6")
    ort = discover()["ort"]
    for node in (gpu, cpu):
        launcher = RayLauncher(FakeFleet(), node, "venv", memory_limit_mb=512)
        assert isinstance(launcher, Launcher) and launcher.name in names()
        assert launcher.unavailable(ort, "cpu") is None  # the node's own launcher decides the rest
        assert launcher.ran_with() == "ray" and launcher.provenance(ort) == f"node {node.label()}"
        assert launcher.describe() == {"ray": "2.x", "address": "10.0.0.1:6379"}
    assert "has no GPU" in RayLauncher(FakeFleet(), cpu, AUTO).unavailable(ort, "cuda")
    assert RayLauncher(FakeFleet(), gpu, AUTO).unavailable(ort, "cuda") is None


class Fake:
    """A launcher as the policy sees it: a name, the environment it uses, pinned or not, and an
    answer to `unavailable`."""

    def __init__(self, name: str, why: Optional[str] = None, pinned: bool = False) -> None:
        self.name, self.environment, self.why, self.pinned = name, name, why, pinned

    def unavailable(self, engine, device: str = "cpu") -> Optional[str]:
        return self.why if self.environment in engine.environments else None


def fakes(docker: Optional[str] = None, venv: Optional[str] = None) -> dict:
    return {"host": Fake("host", pinned=True), "docker": Fake("docker", docker), "venv": Fake("venv", venv)}


def engine(*environments: str, note: str = ""):
    return replace(discover()["ort"], environments=environments, note=note)


def test_auto_takes_the_image_when_it_is_there_else_the_virtualenv():
    ort = engine("venv", "docker")
    assert choose(ort, AUTO, "cpu", fakes())[0].name == "docker"
    launcher, reason = choose(ort, AUTO, "cpu", fakes(docker="image e2e-ort is not built"))
    assert (launcher.name, reason) == ("venv", None)


def test_auto_with_nothing_available_says_why():
    launcher, reason = choose(engine("docker"), AUTO, "cpu", fakes(docker="image e2e-ort is not built"))
    assert reason == "image e2e-ort is not built"
    _, reason = choose(engine("venv", "docker"), AUTO, "cpu", fakes(docker="no daemon", venv="no python"))
    assert reason == "docker: no daemon; venv: no python"


def test_a_named_launcher_is_taken_when_the_engine_declares_its_environment():
    launcher, reason = choose(engine("venv", "docker"), "venv", "cpu", fakes())
    assert (launcher.name, reason) == ("venv", None)  # even where the image is there
    launcher, reason = choose(engine("venv", "docker"), "docker", "cuda:0", fakes(docker="no NVIDIA runtime"))
    assert (launcher.name, reason) == ("docker", "no NVIDIA runtime")  # never a silent fallback


def test_a_named_launcher_whose_environment_the_engine_does_not_declare_gives_a_reason():
    _, reason = choose(engine("docker", note="no wheel"), "venv", "cpu", fakes())
    assert reason == ("ONNX Runtime does not run with the venv launcher (no wheel): its environments are "
                      "docker, not venv; rerun with --launcher auto or docker")
    openppl = discover()["openppl"]  # the launcher's own words come first
    _, reason = choose(openppl, "venv", "cpu", create_all(LaunchSettings(Path("/nonexistent"))))
    assert "runs only in its Docker image" in reason and "e2e images build openppl" in reason


@pytest.mark.parametrize("requested", [AUTO, "venv", "docker"])
def test_the_reference_runs_on_the_host_whatever_is_asked(requested):
    launcher, reason = choose(discover()["torch"], requested, "cpu", fakes())
    assert (launcher.name, reason) == ("host", None)


def test_an_engine_never_gets_the_host_unless_it_declares_the_host_environment():
    launcher, _ = choose(engine("venv", "docker"), AUTO, "cpu", fakes(docker="x"))
    assert launcher.name == "venv"
    _, reason = choose(engine("venv", "docker"), "host", "cpu", create_all(LaunchSettings(Path("/nonexistent"))))
    assert reason and "does not run in the host Python" in reason


def manifest(tmp_path, line: str) -> Path:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.yaml").write_text(f"name: X\ndevices: [cpu]\nprecisions: [fp32]\n{line}\n")
    return tmp_path / "x"


def test_a_manifest_declares_environments_not_launchers(tmp_path):
    assert {e.id: e.environments for e in discover().values() if e.environments != ("venv", "docker")} == \
        {"torch": ("host",), "openppl": ("docker",)}
    assert _load(manifest(tmp_path, "environments: [venv, docker]")).environments == ("venv", "docker")


def test_a_manifest_with_the_old_launchers_key_says_how_to_fix_it(tmp_path):
    with pytest.raises(UsageError, match=r"the `launchers` key is gone: replace it with "
                                         r"`environments: \[venv, docker\]`"):
        _load(manifest(tmp_path, "launchers: [venv, docker]"))


@pytest.mark.parametrize("line", ["environments: [venv, dokcer]", "environments: []", "note: none"])
def test_a_manifest_naming_an_unknown_or_no_environment_is_refused(tmp_path, line):
    with pytest.raises(UsageError, match="environments|invalid manifest"):
        _load(manifest(tmp_path, line))


def test_an_engine_no_launcher_here_can_build_says_so():
    launcher, reason = choose(engine("venv"), AUTO, "cpu", {"host": Fake("host", pinned=True), "docker": Fake("docker")})
    assert launcher is None and reason.startswith("no launcher here uses the environments")
    assert reason.endswith("(venv); launchers: host (host), docker (docker)")


def test_a_launcher_that_names_no_environment_is_refused(tmp_path, monkeypatch):
    (tmp_path / "nowhere.py").write_text(SSH.replace('    environment = "venv"\n', ""))
    monkeypatch.setattr(launchers_package, "__path__", [*launchers_package.__path__, str(tmp_path)])
    cached_classes.cache_clear()
    try:
        with pytest.raises(TypeError, match="must say which environment it runs runners in"):
            launcher_classes()
    finally:
        sys.modules.pop("coordinator.launchers.nowhere", None)
        cached_classes.cache_clear()


def test_e2e_engines_says_what_bench_would_choose():
    assert availability(discover()["ort"], "cpu", fakes()) == "[green]yes[/] (docker)"
    assert availability(discover()["ort"], "cpu", fakes(docker="not built")) == "[green]yes[/] (venv)"
    assert availability(discover()["torch"], "cpu", fakes()) == "[green]yes[/] (host)"
    assert "not built" in availability(discover()["openppl"], "cpu", fakes(docker="not built"))
    assert "does not run on cpu" in availability(discover()["trt"], "cpu", fakes())


SSH = '''
from coordinator.launchers.base import Launcher


class SshLauncher(Launcher):
    """Runs an engine's virtualenv on another machine: it uses the venv environment."""

    name = "ssh"
    environment = "venv"
    preference = 5  # before Docker

    @classmethod
    def create(cls, settings):
        return cls()

    def unavailable(self, engine, device="cpu"):
        return None  # the policy, not the launcher, keeps it to the engines that declare a venv

    def prepare(self, engine):
        pass

    def run(self, engine, spec, io_dir, timeout):
        raise NotImplementedError

    def describe(self):
        return {"ssh": "2.0"}

    def provenance(self, engine):
        return "ssh://host"
'''


@pytest.fixture
def ssh_launcher(tmp_path, monkeypatch):
    """A launcher module dropped into the launchers package's folder (a folder of its search
    path here, so that the checkout is left alone)."""
    (tmp_path / "ssh.py").write_text(SSH)
    monkeypatch.setattr(launchers_package, "__path__", [*launchers_package.__path__, str(tmp_path)])
    cached_classes.cache_clear()
    yield
    sys.modules.pop("coordinator.launchers.ssh", None)
    cached_classes.cache_clear()


def test_adding_a_launcher_is_one_file(ssh_launcher, tmp_path):
    """No manifest names the new launcher: it runs every engine that declares the venv environment."""
    manifests = {path: path.read_bytes() for path in sorted(RUNNERS.glob("*/manifest.yaml"))}
    assert names() == ["host", "ssh", "docker", "venv", "ray"]
    assert BenchConfig.of(model="-", launcher="ssh").execution.launcher == "ssh"
    made = create_all(LaunchSettings(tmp_path))
    ort = discover()["ort"]  # its manifest, as committed: environments: [venv, docker]
    launcher, reason = choose(ort, AUTO, "cpu", made)
    assert (launcher.name, reason, launcher.provenance(ort)) == ("ssh", None, "ssh://host")
    assert choose(ort, "ssh", "cpu", made) == (made["ssh"], None)
    assert availability(ort, "cpu", made) == "[green]yes[/] (ssh)"
    # an engine without the venv environment is never given it: Docker only, and the reference on the host
    _, reason = choose(discover()["openppl"], "ssh", "cpu", made)
    assert reason == ("OpenPPL (ppl.nn) does not run with the ssh launcher (ppl.nn has no wheel; its image builds "
                      "v0.9.2 from source): its environments are docker, not venv; rerun with --launcher auto or docker")
    assert choose(discover()["openppl"], AUTO, "cpu", made)[0].name == "docker"
    assert choose(discover()["torch"], "ssh", "cpu", made)[0].name == "host"
    assert {path: path.read_bytes() for path in sorted(RUNNERS.glob("*/manifest.yaml"))} == manifests


def test_a_launcher_may_be_a_folder_of_modules(tmp_path, monkeypatch):
    """As the Ray launcher is (coordinator/launchers/ray/): the registry scans sub-packages too."""
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "__init__.py").write_text('"""An SSH launcher in a folder."""\n')
    (tmp_path / "remote" / "helpers.py").write_text("VERSION = '2.0'\n")  # no launcher here: ignored
    (tmp_path / "remote" / "launcher.py").write_text(SSH)
    monkeypatch.setattr(launchers_package, "__path__", [*launchers_package.__path__, str(tmp_path)])
    cached_classes.cache_clear()
    try:
        assert names() == ["host", "ssh", "docker", "venv", "ray"]
        assert launcher_classes()["ssh"].__module__ == "coordinator.launchers.remote.launcher"
        assert list(create_all(LaunchSettings(tmp_path))) == ["host", "ssh", "docker", "venv"]
    finally:
        for name in ("remote", "remote.helpers", "remote.launcher"):
            sys.modules.pop(f"coordinator.launchers.{name}", None)
        cached_classes.cache_clear()


@pytest.mark.parametrize("edit, match", [
    (('    environment = "venv"\n', '    environment = "nodes"\n'), "names the option that picks those machines"),
    (('    preference = 5', '    selected_by = "--hosts"\n    preference = 5'), "names the option that picks"),
])
def test_only_a_launcher_of_other_machines_names_the_option_that_picks_them(tmp_path, monkeypatch, edit, match):
    (tmp_path / "elsewhere.py").write_text(SSH.replace(*edit))
    monkeypatch.setattr(launchers_package, "__path__", [*launchers_package.__path__, str(tmp_path)])
    cached_classes.cache_clear()
    try:
        with pytest.raises(TypeError, match=match):
            launcher_classes()
    finally:
        sys.modules.pop("coordinator.launchers.elsewhere", None)
        cached_classes.cache_clear()
