# The CPU runner images' common base: Python in a virtualenv, a non-root user, the runner
# protocol. Engine images add their pinned requirements and runner on top.
ARG PYTHON_BASE=python:3.11-slim-bookworm
FROM ${PYTHON_BASE}

# A CA pip must trust while building (docker/trust-ca.sh); the runner user and venv.
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

COPY shared/ /opt/e2e/shared/
USER e2e
WORKDIR /io
ENTRYPOINT ["python", "-m", "shared.entry", "--runner", "/opt/e2e/runner/runner.py", "--io", "/io"]
