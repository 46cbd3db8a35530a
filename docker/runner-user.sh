#!/bin/sh
# What every runner image has: a virtualenv at /opt/venv made with $1 (a python3 executable), a
# non-root user `e2e` with uid 1000 (the launcher relies on it), and the mount points.
set -e
if getent passwd 1000 >/dev/null; then  # e.g. Ubuntu 24.04's `ubuntu`
  userdel --remove "$(getent passwd 1000 | cut -d: -f1)"
fi
"$1" -m venv /opt/venv
useradd --create-home --uid 1000 --user-group e2e
mkdir -p /io /model /data /cache
chown e2e:e2e /io /cache
