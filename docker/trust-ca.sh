#!/bin/sh
# Trust an extra CA (a TLS-inspecting proxy's) while building: append it to the system bundle,
# which pip (PIP_CERT), git and curl are pointed at. $1: its path in the build context, or "".
set -e
if [ -n "$1" ]; then
  cat "/tmp/e2e-docker/certs/$(basename "$1")" >> /etc/ssl/certs/ca-certificates.crt
fi
