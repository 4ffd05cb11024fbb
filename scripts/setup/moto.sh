#!/usr/bin/env bash
# Installs moto's S3-protocol server (PyPI `moto[server]`) into a virtualenv
# of its own, idempotently, and prints the path of `moto_server`.
set -euo pipefail
VENV=${PODSPACE_MOTO_VENV:-/opt/podspace/moto}
if [ ! -x "$VENV/bin/moto_server" ]; then
  echo "[moto] installing moto[server] into $VENV" >&2
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q 'moto[server]' >&2
fi
echo "$VENV/bin/moto_server"
