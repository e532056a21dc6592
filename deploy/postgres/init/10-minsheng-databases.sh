#!/usr/bin/env bash
# One database and one role per service, each role owning only its own database.
#
# Run by the postgres image on the FIRST start of an empty data volume (/docker-entrypoint-initdb.d), and safe
# to run again by hand (idempotent: existing roles get their password reset, existing databases their owner):
#   docker compose exec -T -e VISITS_DB_PASSWORD=... postgres bash < deploy/postgres/init/10-minsheng-databases.sh
#
# Environment: <SERVICE>_DB_PASSWORD for each service (required), MINSHENG_SERVICES (default: all five),
# MINSHENG_DB_NAME_PATTERN / MINSHENG_DB_ROLE_PATTERN (printf patterns, default minsheng_%s), and the usual
# POSTGRES_USER / POSTGRES_DB / PG* variables for psql.
set -euo pipefail

services="${MINSHENG_SERVICES:-visits issues points canteen identity notify}"
db_pattern="${MINSHENG_DB_NAME_PATTERN:-minsheng_%s}"
role_pattern="${MINSHENG_DB_ROLE_PATTERN:-minsheng_%s}"
psql_admin=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}")

for service in $services; do
  var="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password="${!var:-}"
  if [ -z "$password" ]; then
    echo "init: $var is not set; refusing to create a role without a password" >&2
    exit 1
  fi
  # shellcheck disable=SC2059
  db="$(printf "$db_pattern" "$service")"
  # shellcheck disable=SC2059
  role="$(printf "$role_pattern" "$service")"
  echo "init: role $role, database $db"
  "${psql_admin[@]}" --dbname "${POSTGRES_DB:-postgres}" \
      -v role="$role" -v password="$password" -v db="$db" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'role') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT ALL ON DATABASE %I TO %I', :'db', :'role') \gexec
SQL
  # Inside the database: the service's role owns the public schema, nobody else may create there.
  "${psql_admin[@]}" --dbname "$db" -v role="$role" <<'SQL'
SELECT format('ALTER SCHEMA public OWNER TO %I', :'role') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
done
