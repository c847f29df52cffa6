#!/usr/bin/env bash
# Install (Debian's package) and start a throwaway PostgreSQL for the test suite,
# then print the URL the tests use. Idempotent: a running server is reused.
# Only the URL goes to stdout: every tool's chatter (apt, "Removed stale pid file.")
# is sent to stderr so the caller can capture the URL with $(...), and the server
# started here never holds that stdout open.
set -euo pipefail

start_server() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q "^${version} main .* online"; then
    pg_lsclusters -h | grep -q "^${version} main" || pg_createcluster "$version" main >/dev/null
    pg_ctlcluster "$version" main start
  fi
  for _ in $(seq 1 30); do
    su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
    sleep 1
  done
  su postgres -c "psql -qAtc \"select 1 from pg_roles where rolname='imgbot'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"create role imgbot login superuser password 'imgbot'\"" >/dev/null
  port=$(su postgres -c "psql -qAtc 'show port'" | tail -n 1)
}

start_server >&2
echo "postgresql+psycopg://imgbot:imgbot@127.0.0.1:${port}/postgres"
