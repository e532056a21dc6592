#!/usr/bin/env bash
# Validate the deployment files without Docker or a cluster (CI runs this; so can you):
#   1. docker-compose.yml against the Compose Specification schema, and every variable in .env.example
#   2. the gateway template rendered from the compose gateway's environment, with `nginx -t`
#   3. deploy/k8s: generated files up to date, every kustomization rendered and validated against the
#      Kubernetes OpenAPI schemas (and compared with `kubectl kustomize` when kubectl is installed)
#   4. the image: hadolint on deploy/Dockerfile, the runtime dependencies pinned in deploy/constraints.txt
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== compose"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
python -m tests.deploy.compose_local check-env

echo "== gateway (nginx -t)"
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  python -m tests.deploy.compose_local check-nginx
else
  echo "SKIPPED: nginx is not installed (deploy/ci/ensure-tools.sh installs it as root)"
fi

echo "== kubernetes"
python deploy/k8s/generate.py --check
python -m tests.deploy.k8s

echo "== image"
hadolint --no-color deploy/Dockerfile && echo "ok -- hadolint"
python deploy/ci/lock.py --check
