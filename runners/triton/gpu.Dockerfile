# Triton with its native backends: NVIDIA's tritonserver image (onnxruntime with ONNX Runtime's
# CUDA and TensorRT execution providers, tensorrt, python, ...). 24.10 is Triton 2.51.0, the
# server nvidia-pytriton bundles, so the CPU image's rows and these run the same server.
# Needs a driver for the image's CUDA (24.10: CUDA 12.6; see NVIDIA's release notes).
#   TRITON_DOCKERFILE=gpu.Dockerfile e2e images build triton
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3-venv \
    && rm -rf /var/lib/apt/lists/*

# A CA pip must trust while building (docker/trust-ca.sh); the runner user and venv (made with
# the image's own python3: the python backend's stub is built for it).
ARG EXTRA_CA_CERT=""
COPY docker/ /tmp/e2e-docker/
RUN sh /tmp/e2e-docker/trust-ca.sh "$EXTRA_CA_CERT" \
    && sh /tmp/e2e-docker/runner-user.sh python3 \
    && rm -rf /tmp/e2e-docker
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/e2e

# The client and onnx (config.pbtxt from the ONNX file), and for the tensorrt backend's plans the
# TensorRT Python builder of exactly the TensorRT the image's server links: a plan only loads in
# the version that built it, so its version is read from the image's libnvinfer.
COPY --chown=root:root runners/triton/gpu-requirements.txt /opt/e2e/runner/requirements.txt
RUN pip install -r /opt/e2e/runner/requirements.txt \
    && TRT=$(ls /usr/lib/x86_64-linux-gnu/libnvinfer.so.*.*.* | sed -n 's/.*libnvinfer\.so\.//p' | sort -V | tail -1) \
    && test -n "$TRT" && pip install "tensorrt-cu12==${TRT}.*"

COPY shared/ /opt/e2e/shared/
COPY runners/triton/ /opt/e2e/runner/
USER e2e
WORKDIR /io
ENTRYPOINT ["python", "-m", "shared.entry", "--runner", "/opt/e2e/runner/runner.py", "--io", "/io"]

# Smoke check, without a GPU: the server and its native backends are found, the client and
# TensorRT's Python builder import.
RUN python -c "import sys; sys.path.insert(0, '/opt/e2e/runner'); import server, tritonclient.grpc, tensorrt; \
i = server.find(); assert {'onnxruntime', 'tensorrt', 'python'} <= set(i.backends), i.backends; \
print(i.origin, sorted(i.backends), 'tensorrt', tensorrt.__version__)"
