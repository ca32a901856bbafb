#!/usr/bin/env bash
# `make bench`, Citus part: the users page of scripts/bench.sh, served from a private Citus
# cluster (a coordinator and two workers on loopback) instead of one PostgreSQL.
#
#   1. builds the server (release) and the cluster starter (tests' `citus_cluster`, which starts
#      `devservices::PrivateCitus` and a redis-server, migrates database `app` on the
#      coordinator — the migrations distribute the tables when the schema allows it — lets the
#      pool role log in and admits the request roles on the workers);
#   2. seeds the same two companies of 10,000 users (scripts/bench/seed.sql) on the coordinator;
#   3. starts the server against the coordinator, mints tokens and checks every one of them gets
#      a correct users page;
#   4. says where the tables are (distributed or on the coordinator) and prints Citus's plan of
#      the page's SQL for one company (its task count);
#   5. wrk on the users page, as scripts/bench.sh measures the single node, and prints the
#      figures (BENCH_CITUS_OUT, when set, gets them as "name value" lines).
#
# Knobs: BENCH_CONNECTIONS (32), BENCH_DURATION (15 s), BENCH_WARMUP (3 s), BENCH_TOKENS (2000),
# DB_MAX_CONNECTIONS (16), BENCH_SERVER_BIN (a server binary to use instead of building the release
# one: figures of a debug build mean nothing, but the script is checked quickly). Everything listens on 127.0.0.1 and is stopped and removed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/bench"
CARGO="${CARGO:-cargo}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
DURATION="${BENCH_DURATION:-15}"
WARMUP="${BENCH_WARMUP:-3}"
TOKENS="${BENCH_TOKENS:-2000}"
POOL="${DB_MAX_CONNECTIONS:-16}"
THREADS="$(nproc)"
JWT_ISSUER="graphql-server"
JWT_AUDIENCE="graphql-api"
USERS_QUERY='{ users(first: 20) { edges { node { id email displayName } } pageInfo { hasNextPage endCursor } } }'

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench-citus: %s\n' "$*" >&2; exit 1; }

command -v wrk >/dev/null 2>&1 || die "wrk is missing (apt-get install wrk)"
PSQL=psql
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/psql" ] && PSQL="$dir/psql"; done
bash "$ROOT/scripts/install-deps.sh" --citus

if [ -n "${BENCH_SERVER_BIN:-}" ]; then
    # A server binary of the caller's (a debug build, to check this script quickly).
    SERVER_BIN="$BENCH_SERVER_BIN"
    say "building the cluster starter"
    (cd "$ROOT" && "$CARGO" build -p tests --bin citus_cluster)
else
    say "building the server (release) and the cluster starter"
    (cd "$ROOT" && "$CARGO" build --release -p server-cli --bin server && "$CARGO" build -p tests --bin citus_cluster)
    SERVER_BIN="$TARGET_DIR/release/server"
fi
CLUSTER_BIN="$TARGET_DIR/debug/citus_cluster"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-citus.XXXXXX")"
chmod 755 "$WORK"
CLUSTER_PID=""
SERVER_PID=""
stop() {
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop "$SERVER_PID"
    stop "$CLUSTER_PID"
    if [ "$status" -ne 0 ]; then
        tail -n 30 "$WORK/server.log" "$WORK/cluster.log" >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting a Citus cluster (a coordinator, two workers) and redis-server"
"$CLUSTER_BIN" "$WORK/cluster" >"$WORK/cluster.log" 2>&1 &
CLUSTER_PID=$!
deadline=$((SECONDS + 300))
until grep -q "citus cluster ready" "$WORK/cluster.log" 2>/dev/null; do
    kill -0 "$CLUSTER_PID" 2>/dev/null || die "the cluster starter exited: $(tail -n 20 "$WORK/cluster.log")"
    [ "$SECONDS" -lt "$deadline" ] || die "the cluster was not ready within 300 s"
    sleep 0.5
done
json() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
SECRETS="$WORK/cluster/secrets.json"
PG_PORT="$(json "$WORK/cluster/cluster.json" coordinator)"
REDIS_URL="$(json "$WORK/cluster/cluster.json" redis_url)"
SUPER_PASSWORD="$(json "$SECRETS" postgres_superuser_password)"
APP_PASSWORD="$(json "$SECRETS" postgres_app_password)"
quote() { python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1], safe=str()))' "$1"; }
psql_super() { PGPASSWORD="$SUPER_PASSWORD" "$PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app "$@"; }
echo "  coordinator on 127.0.0.1:$PG_PORT"

say "seeding 2 companies x 10,000 users and their presets (on the coordinator)"
psql_super -f "$HERE/seed.sql"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
say "starting the server on 127.0.0.1:$PORT against the coordinator (pool $POOL)"
(
    cd "$WORK"
    exec env BIND_ADDR="127.0.0.1:$PORT" DB_MAX_CONNECTIONS="$POOL" \
        DATABASE_URL="postgres://app_authenticator:$(quote "$APP_PASSWORD")@127.0.0.1:$PG_PORT/app?sslmode=disable" \
        DATABASE_ADMIN_URL="postgres://postgres:$(quote "$SUPER_PASSWORD")@127.0.0.1:$PG_PORT/app?sslmode=disable" \
        REDIS_URL="$REDIS_URL" JWT_SECRET="$(json "$SECRETS" jwt_secret)" \
        JWT_ISSUER="$JWT_ISSUER" JWT_AUDIENCE="$JWT_AUDIENCE" MIGRATE_ON_START=false \
        RUST_LOG=warn "$SERVER_BIN" serve
) >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 120))
until grep -q "GraphQL server ready" "$WORK/server.log" 2>/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited before it was ready"
    [ "$SECONDS" -lt "$deadline" ] || die "the server was not ready within 120 s"
    sleep 0.2
done

say "minting $TOKENS access tokens and checking each one's users page"
python3 "$HERE/mint_tokens.py" "$SECRETS" "$TOKENS" "$WORK/tokens.txt"
python3 -c 'import json, sys; print(json.dumps({"query": sys.argv[1]}))' "$USERS_QUERY" >"$WORK/users.json"
URL="http://127.0.0.1:$PORT/graphql"
python3 "$HERE/check_tokens.py" "$URL" "$WORK/users.json" "$WORK/tokens.txt" --page users

say "where the tables are"
distributed="$(psql_super -At -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text = 'users'")"
if [ "$distributed" = "1" ]; then
    echo "  distributed: $(psql_super -At -c "SELECT string_agg(logicalrelid::text, ' ' ORDER BY 1) FROM pg_dist_partition")"
    company="$(psql_super -At -c "SELECT md5('bench-company-1')::uuid")"
    tasks="$(psql_super -At -c "EXPLAIN (FORMAT JSON) SELECT id, email, display_name FROM users WHERE company_id = '$company' ORDER BY created_at, id LIMIT 21" \
        | grep -o '"Task Count": [0-9]*' | head -n 1)"
    echo "  one company's page of users: $tasks"
else
    echo "  on the coordinator (the migrations logged why they distributed nothing):"
    grep "^distribution: " "$WORK/cluster.log" | cut -c1-2000 || true
fi

say "Citus, users page: wrk, $CONNECTIONS connections, $THREADS threads, ${DURATION} s"
args=(-t "$THREADS" -c "$CONNECTIONS" --timeout 5s -s "$HERE/users.lua" "$URL" -- "$WORK/users.json" "$WORK/tokens.txt")
wrk -d "${WARMUP}s" "${args[@]}" >/dev/null
sleep 2
wrk -d "${DURATION}s" "${args[@]}" | tee "$WORK/wrk.out"
line="$(grep '^BENCH_WRK ' "$WORK/wrk.out")" || die "no result line from wrk"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
for f in non2xx connect_errors read_errors write_errors timeouts; do
    [ "$(field "$f")" = "0" ] || die "wrk saw $f=$(field "$f") (must be 0)"
done
rps="$(field rps)"
p50="$(awk -v us="$(field p50_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
p99="$(awk -v us="$(field p99_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
say "Citus (coordinator + 2 workers, one machine), users page: $rps requests/s, p50 $p50 ms, p99 $p99 ms"
if [ -n "${BENCH_CITUS_OUT:-}" ]; then
    printf 'citus_users.rps %s\ncitus_users.p50 %s\ncitus_users.p99 %s\ncitus_users.distributed %s\n' \
        "$rps" "$p50" "$p99" "$distributed" >"$BENCH_CITUS_OUT"
fi
