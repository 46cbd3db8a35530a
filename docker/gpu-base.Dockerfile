# The GPU runner images' common base, as docker/base.Dockerfile is the CPU images': an NVIDIA CUDA
# image, its distribution's Python in a virtualenv, a non-root user, the runner protocol. Engine
# images add their pinned requirements and runner on top. CUDA_BASE is the CUDA image a GPU runner
# pins (docker-bake.hcl: one gpu-base-<runner> target each, all built from this file). The engines'
# CUDA libraries come from their wheels (or, for openppl-cuda, the `runtime` flavour): the base only
# brings what those leave to the system and the settings the NVIDIA Container Toolkit reads
# (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES, NVIDIA_REQUIRE_CUDA).
ARG CUDA_BASE=nvidia/cuda:13.0.2-base-ubuntu24.04
FROM ${CUDA_BASE}

# ca-certificates first: the extra CA below is appended to the bundle it creates.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# A CA pip must trust while building (docker/trust-ca.sh); the runner user and venv (Ubuntu
# 24.04's `ubuntu` user gives up uid 1000 to it). Only the helpers are copied: docker/sources/ may
# hold large source archives.
ARG EXTRA_CA_CERT=""
COPY docker/trust-ca.sh docker/runner-user.sh /tmp/e2e-docker/
COPY docker/certs/ /tmp/e2e-docker/certs/
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

COPY shared/ /opt/e2e/shared/
USER e2e
WORKDIR /io
ENTRYPOINT ["python", "-m", "shared.entry", "--runner", "/opt/e2e/runner/runner.py", "--io", "/io"]
