#!/usr/bin/env bash
# Restore one service's database from a backup folder made by backup.sh:
#   docker compose stop <service>
#   deploy/ops/restore.sh backups/2026-11-27T0200Z <service>
#   (reset the service's consumer group to the backup time — docs/operations.md → backup and restore)
#   docker compose start <service>
# Drops and recreates the objects in the database (pg_restore --clean), owned by the service's role.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:?usage: restore.sh <backup folder> <service>}"
service="${2:?usage: restore.sh <backup folder> <service>}"
pattern="${MINSHENG_DB_NAME_PATTERN:-minsheng_%s}"
role_pattern="${MINSHENG_DB_ROLE_PATTERN:-minsheng_%s}"
# shellcheck disable=SC2059
db="$(printf "$pattern" "$service")"
# shellcheck disable=SC2059
role="$(printf "$role_pattern" "$service")"
read -r -a exec_prefix <<< "${PG_EXEC-docker compose exec -T postgres}"
[ -f "$dir/$service.dump" ] || { echo "no $dir/$service.dump" >&2; exit 1; }
"${exec_prefix[@]}" pg_restore --username "${PGUSER:-postgres}" --dbname "$db" --clean --if-exists \
    --no-owner --role "$role" --single-transaction --exit-on-error < "$dir/$service.dump"
echo "$service: restored $db from $dir (taken at $(cat "$dir/TAKEN_AT" 2>/dev/null || echo '?'))"
