#!/usr/bin/env bash
# Installs (Debian's package) and starts PostgreSQL, and makes sure the role
# `podspace` (password `podspace`, may create databases) and the database
# `podspace` exist. Idempotent. Prints the connection URL on stdout.
set -euo pipefail

log() { echo "[postgres] $*" >&2; }
as_pg() { runuser -u postgres -- "$@"; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
fi
ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
  log "creating cluster $ver/main"
  pg_createcluster "$ver" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
  log "starting cluster $ver/main"
  pg_ctlcluster "$ver" main start >&2 || true
fi
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
for _ in $(seq 1 50); do
  if as_pg psql -p "$port" -Atqc 'select 1' >/dev/null 2>&1; then break; fi
  sleep 0.2
done
as_pg psql -p "$port" -v ON_ERROR_STOP=1 -qAt >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'podspace') THEN
    CREATE ROLE podspace LOGIN PASSWORD 'podspace' CREATEDB;
  END IF;
END $$;
SQL
if ! as_pg psql -p "$port" -Atqc "select 1 from pg_database where datname = 'podspace'" | grep -q 1; then
  as_pg createdb -p "$port" -O podspace podspace >&2
fi
# Databases left by earlier test runs (each store test makes its own).
for db in $(as_pg psql -p "$port" -Atqc "select datname from pg_database where datname like 'podspace\_test\_%'"); do
  as_pg dropdb -p "$port" --if-exists "$db" >&2 || true
done
echo "postgres://podspace:podspace@127.0.0.1:${port}/podspace"
