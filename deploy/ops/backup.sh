#!/usr/bin/env bash
# Back up every service database (pg_dump custom format, one file per service) into a dated folder:
#   deploy/ops/backup.sh [backups/]            → backups/2026-11-27T0200Z/{visits,issues,points,canteen,identity,notify}.dump
# Runs pg_dump inside the compose postgres container by default. Elsewhere set PG_EXEC="" and the usual PG*
# variables (PGHOST, PGUSER, PGPASSWORD...) to use a local pg_dump against any server.
# Also record Kafka's position (docs/operations.md → backup and restore): the dump's time is what a restore
# resets the service's consumer group to.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="${1:-backups}"
stamp="$(date -u +%Y-%m-%dT%H%MZ)"
dir="$root/$stamp"
services="${MINSHENG_SERVICES:-visits issues points canteen identity notify}"
pattern="${MINSHENG_DB_NAME_PATTERN:-minsheng_%s}"
read -r -a exec_prefix <<< "${PG_EXEC-docker compose exec -T postgres}"
mkdir -p "$dir"
# Taken BEFORE the dumps start: rewinding a consumer group to this time after a restore re-delivers a little
# more than needed (the inbox drops what the dump already has), never less.
date -u +%Y-%m-%dT%H:%M:%SZ > "$dir/TAKEN_AT"
for service in $services; do
  # shellcheck disable=SC2059
  db="$(printf "$pattern" "$service")"
  "${exec_prefix[@]}" pg_dump --username "${PGUSER:-postgres}" --format custom --no-owner --no-privileges \
      --dbname "$db" > "$dir/$service.dump"
  echo "$service: $dir/$service.dump ($(wc -c < "$dir/$service.dump") bytes)"
done
echo "$dir"
