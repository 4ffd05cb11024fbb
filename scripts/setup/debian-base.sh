#!/usr/bin/env bash
# Makes the Debian 12 minbase image the shipped builder images start FROM,
# as the local engine image podspace/debian-base:bookworm (nothing can be
# pulled from Docker Hub here). Idempotent: an existing image is kept unless
# --rebuild is given. Prints the image name.
#
# The image carries this machine's own package configuration, read here at
# build time, so that apt, pip and npm inside builds reach the package
# registries the way the host does: the apt sources (and the keyrings they
# name), apt settings, the CA bundle, pip's and npm's global settings and
# the PIP_*/NPM_CONFIG_* index variables. No host name is written by this
# script; the mirror is the host's own.
set -euo pipefail

IMAGE=podspace/debian-base:bookworm
DOCKER=${DOCKER:-/usr/bin/docker}
log() { echo "[debian-base] $*" >&2; }

if [ "${1:-}" != "--rebuild" ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi
command -v debootstrap >/dev/null || {
  log "installing debootstrap"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
}

# The host's Debian mirror: the first URI of its main archive.
mirror=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' || true;
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '/^deb / {print ($2 ~ /^\[/ ? $3 : $2)}' || true; } \
          | grep -v -- '-security' | head -n1 || true)
[ -n "$mirror" ] || { log "no Debian mirror in the host's apt sources"; exit 1; }

root=$(mktemp -d /var/tmp/podspace-debian-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
log "debootstrap --variant=minbase bookworm from the host's mirror (about a minute)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >/var/tmp/podspace-debootstrap.log 2>&1 || {
  tail -n 20 /var/tmp/podspace-debootstrap.log >&2
  exit 1
}

# The host's package configuration.
rm -f "$root/etc/apt/sources.list"
cp -a /etc/apt/sources.list "$root/etc/apt/" 2>/dev/null || true
mkdir -p "$root/etc/apt/sources.list.d" "$root/etc/apt/apt.conf.d"
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && cp -a "$f" "$root/etc/apt/sources.list.d/"
done
for f in /etc/apt/apt.conf.d/*; do
  case "$(basename "$f")" in
    # Hooks of host tools the image does not have.
    20packagekit|50appstream|*autoremove*) ;;
    *) cp -a "$f" "$root/etc/apt/apt.conf.d/" ;;
  esac
done
# Keyrings the sources name that the image lacks.
{ grep -rhoE 'Signed-By: *[^ ]+|signed-by=[^] ]+' "$root/etc/apt/sources.list"* 2>/dev/null || true; } \
  | sed -E 's/^(Signed-By: *|signed-by=)//' | sort -u | while read -r key; do
    if [ -f "$key" ] && [ ! -e "$root$key" ]; then
      mkdir -p "$root$(dirname "$key")"
      cp -a "$key" "$root$key"
    fi
  done
# The trust store, at a path of its own that no package rewrites, and where
# programs look by default (until the ca-certificates package replaces it).
mkdir -p "$root/etc/podspace" "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/podspace/ca-bundle.crt"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'Acquire::https::CAInfo "/etc/podspace/ca-bundle.crt";\n' >"$root/etc/apt/apt.conf.d/90podspace-ca"
# pip's and npm's global settings (a cert path in them is the bundle above).
for f in /etc/pip.conf /etc/xdg/pip/pip.conf /etc/npmrc /usr/etc/npmrc; do
  if [ -f "$f" ]; then
    mkdir -p "$root$(dirname "$f")"
    sed -E 's#/etc/ssl/certs/ca-certificates\.crt#/etc/podspace/ca-bundle.crt#' "$f" >"$root$f"
  fi
done
# Slim: no package caches, docs or locales; apt keeps none either.
printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\nAPT::Install-Recommends "false";\n' \
  >"$root/etc/apt/apt.conf.d/90podspace-slim"
printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n' \
  >"$root/etc/dpkg/dpkg.cfg.d/90podspace-slim"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*.log

# The environment the trust store and the index settings need.
changes=(-c 'CMD ["/bin/bash"]'
         -c 'LABEL io.k8s.display-name="Debian 12 minbase (PodSpace)"'
         -c 'ENV LANG=C.UTF-8')
for v in SSL_CERT_FILE PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO NPM_CONFIG_CAFILE; do
  changes+=(-c "ENV $v=/etc/podspace/ca-bundle.crt")
done
while IFS='=' read -r name value; do
  case "$name" in
    PIP_INDEX_URL|PIP_EXTRA_INDEX_URL|PIP_TRUSTED_HOST|PIP_DEFAULT_TIMEOUT|npm_config_registry|NPM_CONFIG_REGISTRY)
      changes+=(-c "ENV $name=$value") ;;
  esac
done < <(env)

log "importing $IMAGE"
tar -C "$root" --numeric-owner -c . | "$DOCKER" import "${changes[@]}" - "$IMAGE" >/dev/null
echo "$IMAGE"
