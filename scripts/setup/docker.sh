#!/usr/bin/env bash
# Installs Debian's docker.io (dockerd 20.10 with BuildKit), skopeo and
# busybox-static, and starts dockerd when no engine answers. Idempotent.
# dockerd runs without a bridge: containers use network mode none or host.
set -euo pipefail

log() { echo "[docker] $*" >&2; }

pkgs=()
{ command -v dockerd >/dev/null && [ -x /usr/bin/docker ]; } || pkgs+=(docker.io)
# --engine-only (scripts/serve): just the engine, none of the test tools.
if [ "${1:-}" != "--engine-only" ]; then
  # CNCF distribution: the "other registry" that image imports read from.
  command -v docker-registry >/dev/null || pkgs+=(docker-registry)
  command -v skopeo >/dev/null || pkgs+=(skopeo)
  # Test images are a statically linked busybox copied into an empty rootfs.
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || pkgs+=(busybox-static)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  log "installing ${pkgs[*]}"
  # Keep the package from starting its own daemon (with a bridge) at install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
  [ -n "${created_policy:-}" ] && rm -f /usr/sbin/policy-rc.d
fi

# Debian's CLI; a newer one earlier on PATH may lack the classic builder.
DOCKER=/usr/bin/docker
if ! "$DOCKER" info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd --iptables=false --bridge=none --ip-forward=false --ip-masq=false \
    >/var/log/podspace-dockerd.log 2>&1 &
  for _ in $(seq 1 100); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$DOCKER" info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/podspace-dockerd.log"; exit 1; }
fi
echo "$DOCKER"
