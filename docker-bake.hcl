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

# Torch-TensorRT 2.14 (tensorrt-cu13 11.1, torch 2.14.1's CUDA 13 wheels): a CUDA 13 base.
variable "TORCH_TRT_BASE" {
  default = "nvidia/cuda:13.0.2-base-ubuntu24.04"
}

# ONNX Runtime's CUDA and TensorRT execution providers (ort_cuda, ort_trt): onnxruntime-gpu 1.31.1 is a
# CUDA 13 build, its CUDA, cuDNN and TensorRT libraries come from the pinned wheels: a CUDA 13 base.
variable "ORT_GPU_BASE" {
  default = "nvidia/cuda:13.0.2-base-ubuntu24.04"
}

# The bases of the openppl-cuda image: ppl.nn v0.9.2 builds with CUDA 11.x. No cuDNN: ppl.nn uses
# neither cuDNN nor cuBLAS. The runtime flavour brings libnvrtc, which ppl.nn's CUDA engine needs.
variable "CUDA_DEVEL_BASE" {
  default = "nvidia/cuda:11.8.0-devel-ubuntu22.04"
}

variable "CUDA_RUNTIME_BASE" {
  default = "nvidia/cuda:11.8.0-runtime-ubuntu22.04"
}

# A folder in the build context holding source archives for the images built from source
# (openppl: runners/openppl/sources.sha256 lists them); whatever it lacks is downloaded.
# `e2e images build --sources DIR` puts DIR's files there itself.
variable "SOURCES" {
  default = "docker/sources"
}

# Triton: runners/triton/Dockerfile (CPU base, the tritonserver bundled with nvidia-pytriton, python
# backend only) or gpu.Dockerfile (NVIDIA's tritonserver image: the native onnxruntime and tensorrt
# backends). Either is tagged e2e-triton: the runner uses the backends the image has.
variable "TRITON_DOCKERFILE" {
  default = "Dockerfile"
}

# 24.10 = Triton 2.51.0, the server nvidia-pytriton 0.7.0 bundles.
variable "TRITON_IMAGE" {
  default = "nvcr.io/nvidia/tritonserver:24.10-py3"
}

# A PEM file whose certificates pip must trust during the build (a TLS-inspecting proxy's CA),
# as a path inside the build context, e.g. docker/certs/proxy.pem; empty for none.
# `e2e images build --ca-cert FILE` puts FILE there itself.
variable "EXTRA_CA_CERT" {
  default = ""
}

group "default" {
  targets = ["ort", "openvino", "tvm", "trt", "openppl", "triton", "mnn", "ncnn", "torchscript", "inductor",
             "torch_tensorrt", "iree", "executorch", "litert", "ort_cuda", "ort_trt"]
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

# The GPU images' base (docker/gpu-base.Dockerfile): an NVIDIA CUDA image with what `base` adds to
# Python (Python in a venv, a non-root user, the CA setup, the runner protocol). The GPU runners pin
# different CUDA images (TRT_BASE, TORCH_TRT_BASE, ORT_GPU_BASE, CUDA_RUNTIME_BASE above), so each
# has its variant of it, which only names that image and a tag: `gpu-base-<runner>`, tagged
# e2e-gpu-base-<runner>. Its Dockerfile says `FROM e2e-gpu-base-<runner>` and maps that name to the
# variant (contexts), as the CPU images do with e2e-base; the classic builder finds it by the tag.
# Two variants with the same CUDA image build the same layers (a cache hit, no second copy).
target "_gpu-base" {
  inherits = ["_common"]
  dockerfile = "docker/gpu-base.Dockerfile"
}

target "gpu-base-trt" {
  inherits = ["_gpu-base"]
  args = {
    CUDA_BASE = "${TRT_BASE}"
  }
  tags = ["e2e-gpu-base-trt:latest", "e2e-gpu-base-trt:${TAG}"]
}

target "gpu-base-torch_tensorrt" {
  inherits = ["_gpu-base"]
  args = {
    CUDA_BASE = "${TORCH_TRT_BASE}"
  }
  tags = ["e2e-gpu-base-torch_tensorrt:latest", "e2e-gpu-base-torch_tensorrt:${TAG}"]
}

target "gpu-base-ort_cuda" {
  inherits = ["_gpu-base"]
  args = {
    CUDA_BASE = "${ORT_GPU_BASE}"
  }
  tags = ["e2e-gpu-base-ort_cuda:latest", "e2e-gpu-base-ort_cuda:${TAG}"]
}

target "gpu-base-openppl" {
  inherits = ["_gpu-base"]
  args = {
    CUDA_BASE = "${CUDA_RUNTIME_BASE}"
  }
  tags = ["e2e-gpu-base-openppl:latest", "e2e-gpu-base-openppl:${TAG}"]
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

target "mnn" {
  inherits = ["_common"]
  dockerfile = "runners/mnn/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-mnn:${TAG}"]
}

target "iree" {
  inherits = ["_common"]
  dockerfile = "runners/iree/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-iree:${TAG}"]
}

target "litert" {
  inherits = ["_common"]
  dockerfile = "runners/litert/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-litert:${TAG}"]
}

target "ncnn" {
  inherits = ["_common"]
  dockerfile = "runners/ncnn/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-ncnn:${TAG}"]
}

target "trt" {
  inherits = ["_common"]
  dockerfile = "runners/trt/Dockerfile"
  contexts = {
    "e2e-gpu-base-trt" = "target:gpu-base-trt"
  }
  tags = ["e2e-trt:${TAG}"]
}

# ONNX Runtime's GPU execution providers: the CUDA EP's image...
target "ort_cuda" {
  inherits = ["_common"]
  dockerfile = "runners/ort_cuda/Dockerfile"
  contexts = {
    "e2e-gpu-base-ort_cuda" = "target:gpu-base-ort_cuda"
  }
  tags = ["e2e-ort_cuda:${TAG}"]
}

# ...the TensorRT EP's is the CUDA EP's image (the same pins) with its own runner folder.
target "ort_trt" {
  inherits = ["_common"]
  dockerfile = "runners/ort_trt/Dockerfile"
  contexts = {
    "e2e-ort_cuda" = "target:ort_cuda"
  }
  tags = ["e2e-ort_trt:${TAG}"]
}

# ppl.nn v0.9.2 built from source (runners/openppl/sources.sha256): what both variants share.
target "_openppl" {
  inherits = ["_common"]
  dockerfile = "runners/openppl/Dockerfile"
  args = {
    SOURCES = "${SOURCES}"
    # The ppl.nn release sources.sha256 pins (the build checks that they agree).
    PPLNN_TAG = "v0.9.2"
  }
  tags = ["e2e-openppl:${TAG}"]
}

# The x86 engine only, built on the same Python as the other CPU images (Debian bookworm's Python
# 3.11) and run on their base.
target "openppl" {
  inherits = ["_openppl"]
  contexts = {
    "e2e-base" = "target:base"
  }
  args = {
    BUILD_BASE = "${PYTHON_BASE}"
    RUNTIME_BASE = "e2e-base"
    PPLNN_USE_CUDA = "OFF"
  }
}

# The same image with the CUDA engine too (CUDA 11.8, Ubuntu 22.04, Python 3.10), under the same
# tag: `docker buildx bake openppl-cuda` or `e2e images build openppl-cuda` replaces the x86 one.
# Built on CUDA_DEVEL_BASE, run on the GPU base on CUDA_RUNTIME_BASE (gpu-base-openppl). Not an
# heir of `openppl`: contexts merge, and this image needs no CPU base.
target "openppl-cuda" {
  inherits = ["_openppl"]
  contexts = {
    "e2e-gpu-base-openppl" = "target:gpu-base-openppl"
  }
  args = {
    BUILD_BASE = "${CUDA_DEVEL_BASE}"
    RUNTIME_BASE = "e2e-gpu-base-openppl"
    PPLNN_USE_CUDA = "ON"
    # SASS for Volta to Hopper: CUDA 11.8's defaults in ppl.nn stop at sm_87 (no H100/H200).
    PPLNN_CUDA_ARCHITECTURES = "70;75;80;86;89;90"
  }
}

target "triton" {
  inherits = ["_common"]
  dockerfile = "runners/triton/${TRITON_DOCKERFILE}"
  # the CPU Dockerfile builds on e2e-base; gpu.Dockerfile ignores it (and TRITON_IMAGE is its base)
  contexts = {
    "e2e-base" = "target:base"
  }
  args = {
    TRITON_IMAGE = "${TRITON_IMAGE}"
  }
  tags = ["e2e-triton:${TAG}"]
}

# The PyTorch model itself (consumes: torch), traced and frozen by TorchScript...
target "torchscript" {
  inherits = ["_common"]
  dockerfile = "runners/torchscript/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-torchscript:${TAG}"]
}

# ...or compiled by torch.compile's Inductor, which needs g++ in the image for its CPU kernels.
# ...or compiled by Torch-TensorRT for an NVIDIA GPU (its own CUDA 13 image, like trt's).
target "torch_tensorrt" {
  inherits = ["_common"]
  dockerfile = "runners/torch_tensorrt/Dockerfile"
  contexts = {
    "e2e-gpu-base-torch_tensorrt" = "target:gpu-base-torch_tensorrt"
  }
  tags = ["e2e-torch_tensorrt:${TAG}"]
}

target "inductor" {
  inherits = ["_common"]
  dockerfile = "runners/inductor/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-inductor:${TAG}"]
}

# ...or exported (torch.export) and lowered to ExecuTorch's XNNPACK delegate.
target "executorch" {
  inherits = ["_common"]
  dockerfile = "runners/executorch/Dockerfile"
  contexts = {
    "e2e-base" = "target:base"
  }
  tags = ["e2e-executorch:${TAG}"]
}
