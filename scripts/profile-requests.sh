#!/usr/bin/env bash
# Where the server's CPU goes per request, counted rather than timed: the release build runs
# under valgrind's callgrind (instructions executed, the same on a busy machine as on an idle
# one), with its private PostgreSQL and Redis (not under valgrind) seeded like the users
# benchmark (scripts/bench/seed.sql). After a warm-up, counting is switched on for REQUESTS
# requests of the benchmark's query (or QUERY), each with the token of another seeded user,
# sent one after another over one keep-alive connection; then it prints the instructions per
# request and the functions that account for most of them (inclusive), and keeps the
# callgrind output in OUT (default: a temporary directory, removed; give OUT to keep it).
# TOKENS users take turns, and the warm-up goes through all of them first, so their sessions
# are cached in Redis, as in the benchmark's steady state (a session is read from PostgreSQL
# once per 30 s).
#
#   bash scripts/profile-requests.sh                 # users(first: 20), 300 requests
#   REQUESTS=200 QUERY='{ presets(first: 20) { edges { node { id name } } } }' \
#       bash scripts/profile-requests.sh
#
# Knobs: REQUESTS (300), WARMUP (100), TOKENS (50, at most WARMUP), QUERY, SERVER_BIN
# (target/release/server, built when missing), OUT. Needs valgrind, psql, python3. Listens on
# 127.0.0.1 only; everything it started is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/bench"
REQUESTS="${REQUESTS:-300}"
WARMUP="${WARMUP:-100}"
TOKENS="${TOKENS:-50}"
[ "$TOKENS" -le "$WARMUP" ] || TOKENS="$WARMUP"
DEFAULT_QUERY='{ users(first: 20) { edges { node { id email displayName } } pageInfo { hasNextPage endCursor } } }'
QUERY="${QUERY:-$DEFAULT_QUERY}"
SERVER_BIN="${SERVER_BIN:-$ROOT/target/release/server}"

die() { printf 'profile: %s\n' "$*" >&2; exit 1; }
command -v valgrind >/dev/null 2>&1 || die "valgrind is missing (apt-get install valgrind)"
command -v callgrind_control >/dev/null 2>&1 || die "callgrind_control is missing (valgrind)"
PSQL=psql
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/psql" ] && PSQL="$dir/psql"; done
if [ ! -x "$SERVER_BIN" ]; then
    (cd "$ROOT" && cargo build --release -p server-cli --bin server)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/profile.XXXXXX")"
chmod 755 "$WORK"
KEEP="${OUT:-}"
OUT="${OUT:-$WORK/out}"
mkdir -p "$OUT"
DATA_DIR="$WORK/data"
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 600); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    local status=$?
    trap - EXIT
    stop_server
    [ "$status" -ne 0 ] && [ -f "$WORK/server.log" ] && tail -n 30 "$WORK/server.log" >&2
    if [ -n "$KEEP" ]; then rm -rf "$DATA_DIR"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# Started from $WORK without the caller's URLs or secrets: the server starts its own services.
start_server() {
    (
        cd "$WORK"
        exec env -u DATABASE_URL -u DATABASE_ADMIN_URL -u REDIS_URL -u JWT_SECRET \
            BIND_ADDR="127.0.0.1:$PORT" DATA_DIR="$DATA_DIR" RUST_LOG=warn "$@"
    ) >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + 600))
    until grep -q "GraphQL server ready" "$WORK/server.log" 2>/dev/null; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited before it was ready"
        [ "$SECONDS" -lt "$deadline" ] || die "the server was not ready within 600 s"
        sleep 0.5
    done
}

# First without valgrind: the private cluster is created and migrated, then seeded.
start_server "$SERVER_BIN" serve
PG_PORT="$(sed -n 's/.*PostgreSQL: private cluster on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/server.log")"
SUPER_PASSWORD="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["postgres_superuser_password"])' "$DATA_DIR/secrets.json")"
PGPASSWORD="$SUPER_PASSWORD" "$PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app -f "$HERE/seed.sql" >/dev/null
python3 "$HERE/mint_tokens.py" "$DATA_DIR/secrets.json" "$TOKENS" "$WORK/tokens.txt"
stop_server

# Then under callgrind, counting nothing until the warm-up is over. One pooled connection to
# PostgreSQL, so that none is opened while counting (SCRAM's key derivation alone costs more
# than a request): sequential requests would otherwise open a second one now and then, when
# the next request comes before the last one's connection is back in the pool.
start_server env DB_MAX_CONNECTIONS=1 valgrind --tool=callgrind --instr-atstart=no --collect-systime=no \
    --callgrind-out-file="$OUT/callgrind.out" "$SERVER_BIN" serve
python3 - "$PORT" "$QUERY" "$WORK/tokens.txt" "$WARMUP" "$REQUESTS" "$SERVER_PID" <<'PY'
import http.client, json, subprocess, sys
port, query, tokens_path, warmup, requests, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
tokens = [line.split()[1] for line in open(tokens_path) if line.strip()]
body = json.dumps({"query": query}).encode()
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
def send(token):
    conn.request("POST", "/graphql", body=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    if response.status != 200 or b'"errors"' in raw:
        sys.exit(f"profile: bad answer {response.status}: {raw[:400]!r}")
for i in range(warmup):
    send(tokens[i % len(tokens)])
subprocess.run(["callgrind_control", "--instr=on", pid], check=True, stdout=subprocess.DEVNULL)
for i in range(requests):
    send(tokens[i % len(tokens)])
subprocess.run(["callgrind_control", "--instr=off", pid], check=True, stdout=subprocess.DEVNULL)
subprocess.run(["callgrind_control", "--dump", pid], check=True, stdout=subprocess.DEVNULL)
PY
stop_server
# The part written by the dump (callgrind.out.1); callgrind.out, written at exit, counted nothing.
DUMP="$(ls "$OUT"/callgrind.out.* | sort -V | tail -n 1)"
TOTAL="$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$DUMP" | sort -n | tail -n 1)"
[ -n "$TOTAL" ] || die "no totals in $DUMP"
echo "query: $QUERY"
echo "instructions per request: $((TOTAL / REQUESTS)) ($TOTAL over $REQUESTS requests)"
callgrind_annotate --inclusive=yes --threshold=99 "$DUMP" 2>/dev/null \
    | sed -n '/^--.*file:function/,$p' | head -n 60 >"$OUT/top.txt" || true
echo "functions by inclusive instructions (share of all counted):"
awk -v total="$TOTAL" 'NR > 2 && $1 ~ /^[0-9,]+/ {
        n = $1; gsub(",", "", n); printf "  %5.1f%%  %s\n", 100 * n / total, substr($0, index($0, $3))
    }' "$OUT/top.txt" | head -n 45
[ -n "$KEEP" ] && echo "callgrind output: $DUMP"
