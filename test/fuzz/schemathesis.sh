#!/usr/bin/env bash
# Schemathesis (PyPI) against a node's /openapi.json: every operation, positive and negative
# generated cases, all checks (no 5xx, responses conform to the schema, status codes documented,
# negative data rejected, ...).
#
#   test/fuzz/schemathesis.sh                      # starts its own node on a free port
#   test/fuzz/schemathesis.sh http://127.0.0.1:5001 # against a running node
#
# Env: ST_MAX_EXAMPLES (default 50), ST_SEED (default 1122), ST_CHECKS (default all),
#      SCHEMATHESIS (path to the schemathesis executable; otherwise PATH, otherwise a venv in
#      ${TMPDIR:-/tmp}/timestore-schemathesis-venv with `pip install schemathesis`),
#      ST_REPORT_DIR (default ${TMPDIR:-/tmp}/timestore-schemathesis-report).
set -euo pipefail
cd "$(dirname "$0")/../.."

ST="${SCHEMATHESIS:-}"
if [[ -z "$ST" ]]; then
  if command -v schemathesis >/dev/null 2>&1; then
    ST="$(command -v schemathesis)"
  else
    VENV="${TMPDIR:-/tmp}/timestore-schemathesis-venv"
    if [[ ! -x "$VENV/bin/schemathesis" ]]; then
      echo "installing schemathesis into $VENV" >&2
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q schemathesis
    fi
    ST="$VENV/bin/schemathesis"
  fi
fi

URL="${1:-}"
NODE_PID=""
DATA=""
cleanup() {
  if [[ -n "$NODE_PID" ]]; then kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; fi
  if [[ -n "$DATA" ]]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

if [[ -z "$URL" ]]; then
  PORT="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  DATA="$(mktemp -d "${TMPDIR:-/tmp}/timestore-st-XXXXXX")"
  URL="http://127.0.0.1:$PORT"
  # A one-member Raft cluster, as in the fast-check fuzz test.
  node --import tsx cmd/timestore.ts node --id n1 --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
    --peers "n1=$URL" --log-level warn >"$DATA/node.log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 300); do
    curl -fsS "$URL/livez" >/dev/null 2>&1 && break
    kill -0 "$NODE_PID" 2>/dev/null || { echo "node exited:"; cat "$DATA/node.log"; exit 1; }
    sleep 0.2
  done
fi

# Hooks: see the file (drops only "valid request rejected" for a generated, hence unknown, cursor).
export SCHEMATHESIS_HOOKS=schemathesis_hooks
export PYTHONPATH="$PWD/test/fuzz${PYTHONPATH:+:$PYTHONPATH}"

REPORT="${ST_REPORT_DIR:-${TMPDIR:-/tmp}/timestore-schemathesis-report}"
set +e
# Run from the temp dir: schemathesis keeps state in ./.schemathesis.
( cd "${TMPDIR:-/tmp}" && "$ST" run "$URL/openapi.json" \
  --checks "${ST_CHECKS:-all}" \
  --max-examples "${ST_MAX_EXAMPLES:-50}" \
  --seed "${ST_SEED:-1122}" \
  --exclude-path /swagger \
  --request-timeout 30 \
  --report junit --report-dir "$REPORT" \
  --generation-database none \
  --warnings off ) 2>&1 | cut -c1-1000   # reproductions of huge bodies are half a megabyte per line
RC=${PIPESTATUS[0]}
set -e
if [[ -n "$NODE_PID" ]] && ! kill -0 "$NODE_PID" 2>/dev/null; then
  echo "the node died during the run:"; tail -50 "$DATA/node.log"; exit 1
fi
if [[ -n "$NODE_PID" ]] && ! curl -fsS "$URL/livez" >/dev/null; then
  echo "the node stopped answering /livez"; exit 1
fi
echo "schemathesis exit code $RC; JUnit report in $REPORT"
exit $RC
