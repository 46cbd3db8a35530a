"""docker-bake.hcl evaluated the way `docker buildx bake` does, without buildx."""
import re
from pathlib import Path

import pytest

from coordinator.images import bake
from coordinator.engines import discover
from coordinator.errors import UsageError
from coordinator.images.build import BAKE_FILE

SAMPLE = '''
variable "TAG" { default = "1.0" }
variable "BASE" { default = "debian:12" }
group "default" { targets = ["b"] }
target "_common" {
  args = { A = "common", BASE = "${BASE}" }
  labels = { "version" = "${TAG}" }
}
target "base" {
  inherits = ["_common"]
  tags = ["base:${TAG}"]
}
target "b" {
  inherits = ["_common"]
  dockerfile = "b/Dockerfile"
  args = { A = "own" }
  contexts = { base = "target:base" }
  tags = ["b:${TAG}"]
}
'''


@pytest.fixture
def sample(tmp_path) -> Path:
    path = tmp_path / "docker-bake.hcl"
    path.write_text(SAMPLE)
    return path


def test_variables_inheritance_and_dependencies(sample):
    f = bake.load(sample, environ={})
    b = f.targets["b"]
    assert b.args == {"A": "own", "BASE": "debian:12"}  # maps merge, the child wins
    assert b.labels == {"version": "1.0"} and b.tags == ["b:1.0"] and b.dockerfile == "b/Dockerfile"
    assert [t.name for t in f.expand([])] == ["base", "b"]  # the default group, dependencies first


def test_environment_overrides_variables_as_bake_does(sample):
    f = bake.load(sample, environ={"TAG": "2.0", "BASE": "local/python"})
    assert f.targets["b"].tags == ["b:2.0"] and f.targets["b"].args["BASE"] == "local/python"


def test_unknown_target_names_the_valid_ones(sample):
    with pytest.raises(UsageError, match="no image target 'x'.*valid: base, b"):
        bake.load(sample, environ={}).expand(["x"])


def test_unknown_variable_is_an_error(tmp_path):
    path = tmp_path / "docker-bake.hcl"
    path.write_text('target "a" { tags = ["a:${NOPE}"] }')
    with pytest.raises(UsageError, match="unknown variable"):
        bake.load(path, environ={})


def test_the_project_bake_file_has_a_target_per_runner():
    f = bake.load(BAKE_FILE, environ={})
    runners = [e for e, engine in discover().items() if "docker" in engine.environments]
    assert set(runners) <= set(f.targets)
    assert set(f.groups["default"]) == set(runners)
    for engine in runners:
        t = f.targets[engine]
        assert t.tags[0].startswith(f"e2e-{engine}:") and (Path(BAKE_FILE).parent / t.dockerfile).is_file()


def test_an_image_is_stale_when_its_runner_or_the_protocol_changed(tmp_path, monkeypatch):
    from coordinator.images import build as images

    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "protocol.py").write_text("v1")
    (tmp_path / "runners" / "ort" / "__pycache__").mkdir(parents=True)
    (tmp_path / "runners" / "ort" / "runner.py").write_text("v1")
    monkeypatch.setattr(images, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(images, "RUNNERS_DIR", tmp_path / "runners")
    first = images.source_digest("ort")
    assert first == images.source_digest("ort") != images.source_digest("tvm")
    (tmp_path / "runners" / "ort" / "__pycache__" / "runner.pyc").write_bytes(b"compiled")
    assert images.source_digest("ort") == first  # bytecode is not source
    (tmp_path / "runners" / "ort" / "runner.py").write_text("v2")
    second = images.source_digest("ort")
    (tmp_path / "shared" / "protocol.py").write_text("v2")
    assert len({first, second, images.source_digest("ort")}) == 3


def test_a_variant_target_is_labelled_with_its_dockerfile_s_runner():
    from coordinator.images import build as images

    f = bake.load(BAKE_FILE, environ={"PYTHON_BASE": "local/python"})
    cpu, cuda = f.targets["openppl"], f.targets["openppl-cuda"]
    assert images.runner_of(cpu) == images.runner_of(cuda) == "openppl" and images.runner_of(f.targets["base"]) == "base"
    assert cpu.tags == cuda.tags  # the launcher runs whichever was built last
    assert (cpu.args["BUILD_BASE"], cpu.args["PPLNN_USE_CUDA"]) == ("local/python", "OFF")
    assert cuda.args["BUILD_BASE"].startswith("nvidia/cuda:11.8") and cuda.args["PPLNN_USE_CUDA"] == "ON"
    assert cuda.args["SOURCES"] == cpu.args["SOURCES"] == "docker/sources"


def test_sources_replace_the_checkout_s_in_the_build_context(tmp_path):
    import tarfile

    from coordinator.images import build as images

    root = tmp_path / "project"
    (root / "docker" / "sources").mkdir(parents=True)
    (root / "docker" / "sources" / "README.md").write_text("archives go here")
    (root / "docker" / "sources" / "stale.tar.gz").write_bytes(b"old")
    (root / "runners").mkdir()
    (root / ".dockerignore").write_text("*\n!runners\n!docker\n")
    (root / "notes.txt").write_text("not in the context")
    given = tmp_path / "given"
    given.mkdir()
    (given / "ppl.nn-v0.9.2.tar.gz").write_bytes(b"new")
    with tarfile.open(fileobj=images._context_tar(root, None, given)) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("docker/sources/ppl.nn-v0.9.2.tar.gz").read() == b"new"
    assert "docker/sources/stale.tar.gz" not in names and "notes.txt" not in names
    with tarfile.open(fileobj=images._context_tar(root, None)) as tar:  # no --sources: the checkout's folder
        assert "docker/sources/stale.tar.gz" in tar.getnames()


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no such folder"),
    (lambda d: d.mkdir(), "holds no files"),
])
def test_sources_must_be_a_folder_of_files(tmp_path, setup, message):
    from coordinator.images import build as images

    setup(tmp_path / "src")
    with pytest.raises(UsageError, match=message):
        images._check_sources(tmp_path / "src", bake.load(BAKE_FILE, environ={}).expand(["openppl"]))


def test_sources_for_images_that_take_none_is_an_error(tmp_path):
    from coordinator.images import build as images

    (tmp_path / "a.tar.gz").write_bytes(b"x")
    with pytest.raises(UsageError, match="none of base, ort builds from source archives"):
        images._check_sources(tmp_path, bake.load(BAKE_FILE, environ={}).expand(["ort"]))
    images._check_sources(tmp_path, bake.load(BAKE_FILE, environ={}).expand(["ort", "openppl"]))


# The GPU runners and the variable that names each one's CUDA image (docker-bake.hcl).
GPU_RUNNERS = {"trt": "TRT_BASE", "torch_tensorrt": "TORCH_TRT_BASE", "ort_cuda": "ORT_GPU_BASE",
               "openppl-cuda": "CUDA_RUNTIME_BASE"}
GPU_BASE = "docker/gpu-base.Dockerfile"


def _stage_bases(dockerfile: str, args: dict) -> list:
    """What the stages of a Dockerfile start FROM, its ARGs before the first FROM (the ones a FROM
    may use) set by their defaults, then by the build args."""
    lines = [line.split() for line in (BAKE_FILE.parent / dockerfile).read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    first = next(i for i, words in enumerate(lines) if words[0] == "FROM")
    scope = dict(words[1].split("=", 1) for words in lines[:first] if words[0] == "ARG" and "=" in words[1])
    scope.update(args)
    return [re.sub(r"\$\{(\w+)\}", lambda m: scope[m.group(1)], words[1]) for words in lines if words[0] == "FROM"]


def test_the_gpu_runners_build_on_the_one_gpu_base():
    environ = {variable: f"local/cuda-{runner}" for runner, variable in GPU_RUNNERS.items()}
    f = bake.load(BAKE_FILE, environ=environ)
    for runner, variable in GPU_RUNNERS.items():
        target = f.targets[runner]
        [base] = [f.targets[name] for name in target.depends]
        # the image runs on its variant of the GPU base, which its variable's CUDA image is under
        assert base.dockerfile == GPU_BASE and base.args["CUDA_BASE"] == environ[variable]
        assert _stage_bases(target.dockerfile, target.args)[-1] == base.tags[0].removesuffix(":latest")
        assert [t.name for t in f.expand([runner])] == [base.name, runner]  # the base first
    assert [t.name for t in f.expand(["ort_trt"])] == ["gpu-base-ort_cuda", "ort_cuda", "ort_trt"]
    # and the CPU variant of openppl on the CPU base: no GPU base, no CUDA image
    assert f.targets["openppl"].depends == ["base"] and _stage_bases(
        f.targets["openppl"].dockerfile, f.targets["openppl"].args)[-1] == "e2e-base"


def test_no_dockerfile_repeats_the_base_preamble():
    root = BAKE_FILE.parent
    dockerfiles = sorted({*root.glob("docker/*Dockerfile*"), *root.glob("runners/*/*Dockerfile*")})
    cuda = [p.relative_to(root).as_posix() for p in dockerfiles
            if re.search(r"^\s*(FROM|ARG)\s.*nvidia/cuda", p.read_text(), re.MULTILINE)]
    assert cuda == [GPU_BASE]  # the one CUDA FROM line
    f = bake.load(BAKE_FILE, environ={})
    bases = {name for name, t in f.targets.items() if t.dockerfile.startswith("docker/")}
    on_a_base = {t.dockerfile for t in f.targets.values() if t.dockerfile.startswith("runners/") and bases & set(t.depends)}
    assert {"runners/trt/Dockerfile", "runners/torch_tensorrt/Dockerfile", "runners/ort_cuda/Dockerfile",
            "runners/openppl/Dockerfile", "runners/ort/Dockerfile"} <= on_a_base
    for dockerfile in on_a_base:  # the venv and user, pip's settings and the entry point are the base's
        text = (root / dockerfile).read_text()
        assert not re.search(r"runner-user\.sh|PIP_CERT|^ENTRYPOINT", text, re.MULTILINE), dockerfile
