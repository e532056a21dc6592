#!/usr/bin/env bash
# Print a .env with fresh random secrets and the documented defaults from .env.example:
#   deploy/ops/init-env.sh > .env && chmod 600 .env
# Never overwrite an existing deployment's .env with this: the field-encryption key and the database
# passwords of a running system must be rotated by the runbook (docs/operations.md), not regenerated.
set -euo pipefail
cd "$(dirname "$0")/../.."
rand_hex() { python3 -c "import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }
rand_b64() { python3 -c "import base64,secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())"; }
declare -A generated=(
  [MINSHENG_FIELD_ENCRYPTION_KEY]="$(rand_b64)"
  [POSTGRES_PASSWORD]="$(rand_hex 24)"
  [VISITS_DB_PASSWORD]="$(rand_hex 24)"
  [ISSUES_DB_PASSWORD]="$(rand_hex 24)"
  [POINTS_DB_PASSWORD]="$(rand_hex 24)"
  [CANTEEN_DB_PASSWORD]="$(rand_hex 24)"
  [IDENTITY_DB_PASSWORD]="$(rand_hex 24)"
  [NOTIFY_DB_PASSWORD]="$(rand_hex 24)"
  [GRAFANA_ADMIN_PASSWORD]="$(rand_hex 12)"
  [MINSHENG_S3_ACCESS_KEY]="minsheng$(rand_hex 6)"
  [MINSHENG_S3_SECRET_KEY]="$(rand_hex 24)"
)
while IFS= read -r line || [ -n "$line" ]; do
  name="${line%%=*}"
  if [[ "$line" =~ ^[A-Z_][A-Z0-9_]*=$ ]] && [ -n "${generated[$name]:-}" ]; then
    echo "$name=${generated[$name]}"
  else
    echo "$line"
  fi
done < .env.example
