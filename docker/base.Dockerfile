# The CPU runner images' common base: Python in a virtualenv, a non-root user, the runner
# protocol. Engine images add their pinned requirements and runner on top.
ARG PYTHON_BASE=python:3.11-slim-bookworm
FROM ${PYTHON_BASE}

# Certificates pip must trust while building (a TLS-inspecting proxy's CA): appended to the
# system bundle, which pip is then told to use instead of its own.
ARG EXTRA_CA_CERT=""
COPY docker/certs/ /tmp/e2e-certs/
RUN set -e; \
    if [ -n "$EXTRA_CA_CERT" ]; then cat "/tmp/e2e-certs/$(basename "$EXTRA_CA_CERT")" >> /etc/ssl/certs/ca-certificates.crt; fi; \
    rm -rf /tmp/e2e-certs
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/e2e

RUN python3 -m venv /opt/venv \
    && useradd --create-home --uid 1000 --user-group e2e \
    && mkdir -p /io /model /data /cache && chown e2e:e2e /io /cache

COPY shared/ /opt/e2e/shared/
USER e2e
WORKDIR /io
ENTRYPOINT ["python", "-m", "shared.entry", "--runner", "/opt/e2e/runner/runner.py", "--io", "/io"]
