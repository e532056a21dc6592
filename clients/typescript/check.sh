#!/usr/bin/env bash
# Exports the six OpenAPI documents from the app (in-process), generates the TypeScript types with
# openapi-typescript and type-checks the client and example.ts with tsc: an API change that would break the
# front end fails here. Run from anywhere; needs the project's virtualenv (bin/_venv) and Node.js >= 18.
# `check.sh --run` also compiles the example and runs it against `minsheng run --demo` on a free port.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then  # as deploy/ci/ensure-tools.sh does for nginx
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "check.sh: Node.js (>= 18) and npm are needed: apt-get install nodejs npm" >&2
    exit 1
  fi
fi
# From the local npm cache when it has everything (CI without network), else from the registry.
npm ci --offline --no-audit --no-fund --loglevel=error 2>/dev/null || npm ci --no-audit --no-fund --loglevel=error
rm -rf openapi src/generated
"$root/.venv/bin/python" export_openapi.py --out openapi >/dev/null
node generate.mjs >/dev/null
npx --no-install tsc --noEmit -p tsconfig.json
echo "clients/typescript: $(ls openapi | wc -l) documents generated, client and example type-check"
[ "${1:-}" = "--run" ] || exit 0

work="$(mktemp -d)"
port="$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$root/.venv/bin/minsheng" run --demo --port "$port" --data-dir "$work/var" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT  # under set -e a failing wait would be the script's status
npx --no-install tsc -p tsconfig.json --noEmit false --outDir "$work/out"
cp package.json run-example.mjs "$work/out/" && ln -s "$here/node_modules" "$work/out/node_modules"
for _ in $(seq 1 60); do
  "$root/.venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/readyz')" \
    2>/dev/null && break
  sleep 0.5
done
node "$work/out/run-example.mjs" "http://127.0.0.1:$port" || { tail -20 "$work/server.log" >&2; exit 1; }
echo "clients/typescript: the example ran against a live system"
