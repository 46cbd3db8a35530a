# The runner images: the single source of image names, tags, base images and build pins.
# Python package pins live in each runner's requirements.txt (shared with the venv launcher).
#
#   docker buildx bake                     # every image
#   docker buildx bake ort openvino        # some
#   e2e images build [ENGINE ...]          # the same, without buildx (classic builder)
#
# Behind a TLS-inspecting proxy: EXTRA_CA_CERT=/path/to/proxy-ca.pem (trusted by pip in the build).
# Without a registry: PYTHON_BASE=<a local image> (docker/offline-base.sh makes one).

variable "TAG" {
  default = "0.1.0"
}

# Debian bookworm's Python 3.11: apache-tvm and openvino need >= 3.10.
variable "PYTHON_BASE" {
  default = "python:3.11-slim-bookworm"
}

# TensorRT itself comes from the pinned tensorrt-cu12 wheels (runners/trt/requirements.txt), not
# from an NGC TensorRT image (25.01 would be TensorRT 10.8). The base brings the CUDA 12 runtime and
# the NVIDIA Container Toolkit settings: CUDA 12.9, the toolkit TensorRT 10.16's cu12 build is made
# with, on Ubuntu 24.04 (Python 3.12). Needs a driver for CUDA 12.9 (see runners/trt/README.md).
variable "TRT_BASE" {
  default = "nvidia/cuda:12.9.1-base-ubuntu24.04"
}

# ppl.nn v0.9.2 builds with CUDA 11.x, gcc 11 and Python 3.10 (pybind11 2.9.2 predates 3.11).
# No cuDNN: ppl.nn uses neither cuDNN nor cuBLAS. The runtime flavour brings libnvrtc, which
# ppl.nn's CUDA engine needs. ubuntu:22.04 for both builds the x86-only variant (README).
variable "CUDA_DEVEL_BASE" {
  default = "nvidia/cuda:11.8.0-devel-ubuntu22.04"
}

variable "CUDA_RUNTIME_BASE" {
  default = "nvidia/cuda:11.8.0-runtime-ubuntu22.04"
}

# A PEM file whose certificates pip must trust during the build (a TLS-inspecting proxy's CA),
# as a path inside the build context, e.g. docker/certs/proxy.pem; empty for none.
# `e2e images build --ca-cert FILE` puts FILE there itself.
variable "EXTRA_CA_CERT" {
  default = ""
}

group "default" {
  targets = ["ort", "openvino", "tvm", "trt", "openppl"]
}

# Settings every image shares.
target "_common" {
  context = "."
  args = {
    EXTRA_CA_CERT = "${EXTRA_CA_CERT}"
  }
  labels = {
    "org.opencontainers.image.title" = "e2e runner"
    "org.opencontainers.image.version" = "${TAG}"
  }
}

# Python, a non-root user, the CA setup and the runner protocol (shared/): the CPU images' base.
target "base" {
  inherits = ["_common"]
  dockerfile = "docker/base.Dockerfile"
  args = {
    PYTHON_BASE = "${PYTHON_BASE}"
  }
  # The engine Dockerfiles say `FROM e2e-base`: buildx maps it to this target (contexts below);
  # the classic builder finds the image by this tag.
  tags = ["e2e-base:latest", "e2e-base:${TAG}"]
}

target "ort" {
  inherits = ["_common"]
  dockerfile = "runners/ort/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-ort:${TAG}"]
}

target "openvino" {
  inherits = ["_common"]
  dockerfile = "runners/openvino/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-openvino:${TAG}"]
}

target "tvm" {
  inherits = ["_common"]
  dockerfile = "runners/tvm/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-tvm:${TAG}"]
}

target "trt" {
  inherits = ["_common"]
  dockerfile = "runners/trt/Dockerfile"
  args = {
    TRT_BASE = "${TRT_BASE}"
  }
  tags = ["e2e-trt:${TAG}"]
}

target "openppl" {
  inherits = ["_common"]
  dockerfile = "runners/openppl/Dockerfile"
  args = {
    CUDA_DEVEL_BASE = "${CUDA_DEVEL_BASE}"
    CUDA_RUNTIME_BASE = "${CUDA_RUNTIME_BASE}"
    PPLNN_TAG = "v0.9.2"
    # OFF (with ubuntu:22.04 bases) builds the x86 engine only.
    PPLNN_USE_CUDA = "ON"
    # SASS for Volta to Hopper: CUDA 11.8's defaults in ppl.nn stop at sm_87 (no H100/H200).
    PPLNN_CUDA_ARCHITECTURES = "70;75;80;86;89;90"
    # ppl.nn dependencies that track a branch, as "name=sha ..." (FetchContent names: hpcc,
    # pplcommon, ppl.kernel.cpu, ppl.kernel.cuda, ...). Empty: each is pinned to the last commit
    # of its branch at or before the tag's commit date; /opt/pplnn/build-info.txt records them.
    PPLNN_DEP_COMMITS = ""
  }
  tags = ["e2e-openppl:${TAG}"]
}
