#!/usr/bin/env bash
# Make a local Python base image when no registry is reachable (air-gapped machines, CI here):
# a Debian root file system from Debian's own packages (debootstrap), imported into Docker.
# Its Python 3.11 is what python:3.11-slim-bookworm has. Then build with it (behind a TLS proxy,
# with the proxy's CA, e.g. this machine's bundle):
#   PYTHON_BASE=e2e-offline-python:bookworm e2e images build --ca-cert /etc/ssl/certs/ca-certificates.crt
set -euo pipefail
tag="${1:-e2e-offline-python:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag exists"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is needed: apt-get install debootstrap" >&2; exit 1; }
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root" "$mirror"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'CMD ["python3"]' - "$tag"
echo "made $tag"
