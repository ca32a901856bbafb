#!/usr/bin/env bash
# `make bench`: how fast does the server answer a typical authenticated read, compared with
# what PostgreSQL alone can do for the same work?
#
#   1. builds the server in release mode;
#   2. starts it on a free 127.0.0.1 port with a throw-away DATA_DIR (so it runs its own
#      private PostgreSQL and Redis), and seeds two companies of 10,000 users each;
#   3. mints access tokens for many different seeded users and checks every one of them
#      gets a correct page (this also warms the server up);
#   4. captures the SQL the server sends for one request (statement logging) and turns it
#      into a pgbench script (scripts/bench/capture_sql.py);
#   5. drives `users(first: 20)` with wrk: CONNECTIONS connections for DURATION seconds,
#      a random user's token per request;
#   6. runs that pgbench script, at the same concurrency and duration, as the same database
#      role: the ceiling;
#   7. prints the figures, the ratio server req/s / pgbench tps and where the CPUs went, and
#      rewrites BENCHMARKS.md with them and a description of the machine.
#
# Everything is bounded in time, listens on 127.0.0.1 only, and is stopped and removed on
# exit, whatever the exit path (trap). Knobs (environment): BENCH_CONNECTIONS (32),
# BENCH_DURATION (15 s), BENCH_WARMUP (3 s), BENCH_TOKENS (2000), DB_MAX_CONNECTIONS
# (the server's pool, its default 16), BENCH_NO_WRITE=1 to leave BENCHMARKS.md alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/bench"
CARGO="${CARGO:-cargo}"

CONNECTIONS="${BENCH_CONNECTIONS:-32}"
DURATION="${BENCH_DURATION:-15}"
WARMUP="${BENCH_WARMUP:-3}"
TOKENS="${BENCH_TOKENS:-2000}"
POOL="${DB_MAX_CONNECTIONS:-16}"
THREADS="$(nproc)"   # wrk threads / pgbench -j: one per core, like each other
QUERY='{ users(first: 20) { edges { node { id email displayName } } pageInfo { hasNextPage endCursor } } }'

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- Tools -------------------------------------------------------------------------------

if ! command -v wrk >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "wrk is missing; install it (https://github.com/wg/wrk)"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing wrk (apt-get)"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null \
        || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null; }
fi
# pgbench and psql of the newest installed PostgreSQL, else whatever is on PATH.
PG_BIN=""
for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pgbench" ] && PG_BIN="$dir"
done
PGBENCH="${PG_BIN:+$PG_BIN/}pgbench"
PSQL="${PG_BIN:+$PG_BIN/}psql"
command -v "$PGBENCH" >/dev/null 2>&1 || die "pgbench is missing (apt-get install postgresql-contrib)"
command -v "$PSQL" >/dev/null 2>&1 || die "psql is missing (apt-get install postgresql-client)"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"

# --- Build -------------------------------------------------------------------------------

say "building the server (release)"
(cd "$ROOT" && "$CARGO" build --release -p server-cli)
SERVER_BIN="$ROOT/target/release/server"
[ -x "$SERVER_BIN" ] || die "no $SERVER_BIN after the build"

# --- Throw-away environment, removed on exit ---------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")"
# The private PostgreSQL runs as the `postgres` OS user when we are root: it must be able
# to reach DATA_DIR/postgres.
chmod 755 "$WORK"
DATA_DIR="$WORK/data"
SERVER_LOG="$WORK/server.log"
SERVER_PID=""
SERVER_CHILDREN=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        # SIGTERM: the server stops its private PostgreSQL and Redis itself.
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench: the server did not stop within 30 s; killing it and its children" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    # Children (PostgreSQL, redis-server) left behind by a server that crashed or had to be
    # killed: the ones still alive under their own name (not a reused pid).
    local pid left=""
    for pid in $SERVER_CHILDREN; do
        case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
            postgres) kill -INT "$pid" 2>/dev/null && left="$left $pid" ;;   # fast shutdown
            redis-server) kill -TERM "$pid" 2>/dev/null && left="$left $pid" ;;
        esac
    done
    for pid in $left; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    done
    if [ "$status" -ne 0 ] && [ -f "$SERVER_LOG" ]; then
        echo "bench: failed; last lines of the server log:" >&2
        tail -n 30 "$SERVER_LOG" >&2 || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Start the server --------------------------------------------------------------------

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
say "starting the server on 127.0.0.1:$PORT (DATA_DIR $DATA_DIR, pool $POOL)"
# Started from $WORK so that no .env of the checkout is read, and without any URL or secret
# of the caller's environment: the server must start its own private services.
(
    cd "$WORK"
    exec env -u DATABASE_URL -u DATABASE_ADMIN_URL -u REDIS_URL -u JWT_SECRET \
        BIND_ADDR="127.0.0.1:$PORT" DATA_DIR="$DATA_DIR" DB_MAX_CONNECTIONS="$POOL" \
        RUST_LOG=warn "$SERVER_BIN" serve
) >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

# Wait for the banner (initdb + migrations take a few seconds), at most 180 s.
deadline=$((SECONDS + 180))
until grep -q "GraphQL server ready" "$SERVER_LOG" 2>/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited before it was ready"
    [ "$SECONDS" -lt "$deadline" ] || die "the server was not ready within 180 s"
    sleep 0.2
done
SERVER_CHILDREN="$(pgrep -P "$SERVER_PID" || true)"
PG_PORT="$(sed -n 's/.*PostgreSQL: private cluster on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$SERVER_LOG")"
[ -n "$PG_PORT" ] || die "no private PostgreSQL port in the banner"
secret() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$DATA_DIR/secrets.json" "$1"; }
SUPER_PASSWORD="$(secret postgres_superuser_password)"
APP_PASSWORD="$(secret postgres_app_password)"
echo "  ready; PostgreSQL on 127.0.0.1:$PG_PORT"

psql_super() { PGPASSWORD="$SUPER_PASSWORD" "$PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app "$@"; }
psql_app() { PGPASSWORD="$APP_PASSWORD" "$PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U app_authenticator -d app "$@"; }

# --- Data and tokens ---------------------------------------------------------------------

say "seeding 2 companies x 10,000 users"
psql_super -f "$HERE/seed.sql"

say "minting $TOKENS access tokens of different users and checking each one"
python3 "$HERE/mint_tokens.py" "$DATA_DIR/secrets.json" "$TOKENS" "$WORK/tokens.txt"
python3 -c 'import json, sys; print(json.dumps({"query": sys.argv[1]}))' "$QUERY" >"$WORK/body.json"
URL="http://127.0.0.1:$PORT/graphql"
python3 "$HERE/check_tokens.py" "$URL" "$WORK/body.json" "$WORK/tokens.txt"

# --- The SQL of one request, for pgbench ---------------------------------------------------

say "capturing the SQL the server sends for one request"
# Statement logging on (a reload applies it), one request framed by two marker statements,
# logging off again; capture_sql.py turns the statements in between into the pgbench script,
# so the ceiling runs exactly what the server runs, whatever that becomes.
PG_LOG="$DATA_DIR/postgres.log"   # where the server's private cluster logs
[ -f "$PG_LOG" ] || die "no PostgreSQL log at $PG_LOG"
# Sets a parameter for the whole cluster (ALTER SYSTEM + reload), or resets it (no value),
# and waits until new sessions see `want`.
set_logging() {
    local name="$1" value="$2" want="$3"
    if [ -n "$value" ]; then
        psql_super -c "ALTER SYSTEM SET $name = '$value'" -c "SELECT pg_reload_conf()" >/dev/null
    else
        psql_super -c "ALTER SYSTEM RESET $name" -c "SELECT pg_reload_conf()" >/dev/null
    fi
    for _ in $(seq 1 50); do
        [ "$(psql_super -At -c "SHOW $name")" = "$want" ] && return 0
        sleep 0.1
    done
    die "PostgreSQL did not apply $name = '$want'"
}
old_prefix="$(psql_super -At -c 'SHOW log_line_prefix')"
old_statement="$(psql_super -At -c 'SHOW log_statement')"
set_logging log_line_prefix '%m [%p] ' '%m [%p] '
set_logging log_statement all all
head -n 1 "$WORK/tokens.txt" >"$WORK/capture_token.txt"
CAPTURE_N="$(cut -d' ' -f1 "$WORK/capture_token.txt")"
# The same user a few times first: its session is then cached, and every pooled connection
# has seen the new settings (a backend applies a reload between two statements).
python3 "$HERE/check_tokens.py" "$URL" "$WORK/body.json" "$WORK/capture_token.txt" $((2 * POOL + 4)) >/dev/null
psql_super -c "SELECT 'bench-capture-begin'" >/dev/null
python3 "$HERE/check_tokens.py" "$URL" "$WORK/body.json" "$WORK/capture_token.txt" >/dev/null
psql_super -c "SELECT 'bench-capture-end'" >/dev/null
set_logging log_statement "" "$old_statement"
set_logging log_line_prefix "" "$old_prefix"
python3 "$HERE/capture_sql.py" "$PG_LOG" "$CAPTURE_N" "$WORK/users.sql"
sed 's/^/    /' "$WORK/users.sql"

# --- Load test of the server -------------------------------------------------------------

# Counts the server's warnings and errors (pool timeouts, database errors...); answers
# that carry such an error are still HTTP 200, so they must not count as throughput.
server_problems() { grep -cE 'WARN|ERROR' "$SERVER_LOG" || true; }

# Idle share of all CPUs over one second, in percent.
cpu_idle_pct() {
    local a b
    a="$(head -n 1 /proc/stat)"; sleep 1; b="$(head -n 1 /proc/stat)"
    awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x); split(b, y)
        for (i = 2; i <= 9; i++) total += y[i] - x[i]   # user .. steal
        idle = (y[5] - x[5]) + (y[6] - x[6])           # idle + iowait
        printf "%d", (total > 0 ? 100 * idle / total : 0)
    }'
}
# Other work on the machine (a build, tests) would steal CPU from the runs: wait up to 60 s
# for the CPUs to be >= 90 % idle, then go on anyway, with a warning. Sets IDLE_BEFORE.
wait_for_quiet() {
    local deadline=$((SECONDS + 60)) told=""
    while :; do
        IDLE_BEFORE="$(cpu_idle_pct)"
        [ "$IDLE_BEFORE" -ge 90 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "  WARNING: the machine is still busy (${IDLE_BEFORE}% idle): the figures will be low" >&2
            return 0
        fi
        [ -n "$told" ] || echo "  the machine is busy (${IDLE_BEFORE}% idle); waiting up to 60 s for it to calm down"
        told=1
    done
}
# `BENCH_CPU` field of a cpu_split.py output.
cpu_field() { sed -n "s/^BENCH_CPU .*$2=\([^ ]*\).*/\1/p" "$1"; }

wait_for_quiet
SERVER_IDLE_BEFORE="$IDLE_BEFORE"
problems_before="$(server_problems)"
# The load: a random user's token per request (wrk -d SECONDS comes first).
WRK_ARGS=(-t "$THREADS" -c "$CONNECTIONS" --timeout 5s -s "$HERE/users.lua" "$URL"
          -- "$WORK/body.json" "$WORK/tokens.txt")
say "server: warm-up, ${WARMUP} s"
wrk -d "${WARMUP}s" "${WRK_ARGS[@]}" >/dev/null

say "server: wrk, $CONNECTIONS connections, $THREADS threads, ${DURATION} s"
python3 "$HERE/cpu_split.py" "$SERVER_PID" "$DURATION" -- wrk -d "${DURATION}s" "${WRK_ARGS[@]}" \
    | tee "$WORK/wrk.out"
wrk_line="$(grep '^BENCH_WRK ' "$WORK/wrk.out")" || die "no result line from wrk"
wrk_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$wrk_line"; }
SERVER_RPS="$(wrk_field rps)"
SERVER_P50="$(awk -v us="$(wrk_field p50_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
SERVER_P99="$(awk -v us="$(wrk_field p99_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
SERVER_REQUESTS="$(wrk_field requests)"
for field in non2xx connect_errors read_errors write_errors timeouts; do
    [ "$(wrk_field "$field")" = "0" ] || die "wrk saw $field=$(wrk_field "$field") (must be 0)"
done
problems_after="$(server_problems)"
[ "$problems_after" = "$problems_before" ] \
    || die "the server logged $((problems_after - problems_before)) warnings/errors during the load test"
[ "$SERVER_REQUESTS" -gt 0 ] || die "wrk completed no request"

# --- The ceiling: the same transaction straight to PostgreSQL ----------------------------

say "pgbench: checking its script as app_authenticator"
# The script for one user of each company, as the role the server connects as: it must run
# without an error (app.begin_request raises when the caller is not live, and the server would
# answer UNAUTHENTICATED), and a page of 21 rows of the user's company must come back.
for n in "$CAPTURE_N" $((CAPTURE_N % 20000 + 1)); do
    company="$(psql_app -At -c "SELECT md5('bench-company-$((n % 2 + 1))')::uuid")"
    check="$(python3 "$HERE/capture_sql.py" --check "$WORK/users.sql" "$n" | psql_app -At -v ON_ERROR_STOP=1)" \
        || die "the pgbench script fails for user $n"
    awk -v company="$company" '
        index($0, company) { rows++ }
        END { exit !(rows >= 21) }' <<<"$check" \
        || die "the pgbench script does not do what the server does for user $n (got: $(head -c 400 <<<"$check"))"
done

# The captured script for random users, as the server's role (the database name goes last).
PGBENCH_CMD=(env PGPASSWORD="$APP_PASSWORD" "$PGBENCH" -h 127.0.0.1 -p "$PG_PORT"
             -U app_authenticator -n -M prepared -c "$CONNECTIONS" -j "$THREADS"
             -f "$WORK/users.sql")
wait_for_quiet
PG_IDLE_BEFORE="$IDLE_BEFORE"
say "pgbench: warm-up, ${WARMUP} s"
"${PGBENCH_CMD[@]}" -T "$WARMUP" app >/dev/null 2>&1
say "pgbench: $CONNECTIONS connections, $THREADS threads, ${DURATION} s"
mkdir -p "$WORK/pglog"
# Per-transaction log of 1 transaction in 10, for percentiles (cheap to write).
python3 "$HERE/cpu_split.py" "$SERVER_PID" "$DURATION" -- "${PGBENCH_CMD[@]}" -T "$DURATION" \
    --log --sampling-rate=0.1 --log-prefix="$WORK/pglog/tx" app 2>&1 | tee "$WORK/pgbench.out"
PG_TPS="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$WORK/pgbench.out")"
[ -n "$PG_TPS" ] || die "no tps in the pgbench output"
failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")"
[ "${failed:-0}" = "0" ] || die "pgbench had $failed failed transactions"
# Third column of the log: the transaction's latency in microseconds.
read -r PG_P50 PG_P99 < <(cat "$WORK"/pglog/tx.* | awk '{ print $3 }' | sort -n | awk '
    { v[NR] = $1 }
    END {
        if (NR == 0) { print "nan nan"; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        printf "%.2f %.2f\n", v[i50] / 1000, v[i99] / 1000
    }')

RATIO="$(awk -v s="$SERVER_RPS" -v p="$PG_TPS" 'BEGIN { printf "%.2f", s / p }')"

# Where the CPUs went (in cores), and CPU time per request / transaction (in microseconds).
cpu_us() { awk -v cores="$1" -v rate="$2" 'BEGIN { printf "%.0f", (rate > 0 ? cores * 1e6 / rate : 0) }'; }
W_SERVER="$(cpu_field "$WORK/wrk.out" server)"; W_PG="$(cpu_field "$WORK/wrk.out" postgres)"
W_REDIS="$(cpu_field "$WORK/wrk.out" redis)"
W_LOAD="$(cpu_field "$WORK/wrk.out" loadgen)"; W_OTHER="$(cpu_field "$WORK/wrk.out" other)"
W_IDLE="$(cpu_field "$WORK/wrk.out" idle)"
P_PG="$(cpu_field "$WORK/pgbench.out" postgres)"; P_LOAD="$(cpu_field "$WORK/pgbench.out" loadgen)"
P_OTHER="$(cpu_field "$WORK/pgbench.out" other)"; P_IDLE="$(cpu_field "$WORK/pgbench.out" idle)"
[ -n "$W_SERVER" ] && [ -n "$P_PG" ] || die "no CPU figures from cpu_split.py"
SERVER_US="$(cpu_us "$W_SERVER" "$SERVER_RPS")"
# Other processes busy during a run (a build, tests) make its figures low: say so.
BUSY_NOTE=""
if awk -v a="$W_OTHER" -v b="$P_OTHER" 'BEGIN { exit !(a > 0.2 || b > 0.2) }'; then
    BUSY_NOTE="WARNING: other processes used $W_OTHER / $P_OTHER cores during the wrk / pgbench runs: these figures are not representative; run again on a quiet machine."
fi
PG_US_SERVER="$(cpu_us "$W_PG" "$SERVER_RPS")"
PG_US_PGBENCH="$(cpu_us "$P_PG" "$PG_TPS")"
SERVER_RPS_INT="$(printf '%.0f' "$SERVER_RPS")"
PG_TPS_INT="$(printf '%.0f' "$PG_TPS")"

# --- Machine -----------------------------------------------------------------------------

CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
CPU_MODEL="${CPU_MODEL:-unknown}"
MEMORY="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
PG_VERSION="$(psql_super -At -c 'SHOW server_version')"
KERNEL="$(uname -sr)"
WRK_VERSION="$(wrk -v 2>&1 || true)"   # prints its version, then usage, and exits 1
WRK_VERSION="$(awk 'NR == 1 { print $1, $2 }' <<<"$WRK_VERSION")"
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(cd "$ROOT" && git status --porcelain -- server entity migration Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"

# --- Report ------------------------------------------------------------------------------

STATEMENTS="$(grep -vcE '^(--|\\)' "$WORK/users.sql")"
SUMMARY="users(first: 20), $CONNECTIONS connections, ${DURATION} s
  server:  $SERVER_RPS_INT req/s  p50 $SERVER_P50 ms  p99 $SERVER_P99 ms  ($SERVER_REQUESTS requests, pool of $POOL)
  pgbench: $PG_TPS_INT tps    p50 $PG_P50 ms  p99 $PG_P99 ms  (the same $STATEMENTS statements per transaction)
  ratio server/pgbench: $RATIO (aim: >= 0.5)
  CPU (cores of $THREADS) during wrk:     server $W_SERVER, postgres $W_PG, redis $W_REDIS, wrk $W_LOAD, other $W_OTHER, idle $W_IDLE
  CPU (cores of $THREADS) during pgbench: postgres $P_PG, pgbench $P_LOAD, other $P_OTHER, idle $P_IDLE
  CPU per request: server ${SERVER_US} us + postgres ${PG_US_SERVER} us; per pgbench transaction: postgres ${PG_US_PGBENCH} us"
say "result"
echo "$SUMMARY"
echo "  machine: $THREADS CPUs ($CPU_MODEL), $MEMORY, PostgreSQL $PG_VERSION"
echo "  CPUs idle just before the runs: ${SERVER_IDLE_BEFORE}% (wrk), ${PG_IDLE_BEFORE}% (pgbench)"
[ -z "$BUSY_NOTE" ] || echo "  $BUSY_NOTE" >&2

if [ "${BENCH_NO_WRITE:-0}" != "1" ]; then
    # This benchmark's section of BENCHMARKS.md, between its markers; the other benchmarks of
    # `make bench` keep sections of their own in the same file.
    cat >"$WORK/section.md" <<EOF
<!-- users:begin -->
## Users list: server vs PostgreSQL ceiling

\`scripts/bench.sh\` (part of \`make bench\`). **Aim: ratio >= 0.5.**

### What is measured

- **Server**: the release build, with its private PostgreSQL and Redis, seeded with two
  companies of 10,000 users each. [wrk](https://github.com/wg/wrk) POSTs the query
  \`$QUERY\`
  to \`/graphql\` over $CONNECTIONS keep-alive connections for $DURATION s (after a $WARMUP s
  warm-up), each request with the access token of one of $TOKENS different users picked at
  random, so every request does the whole job: token and session check, GraphQL parsing and
  validation, a transaction that switches to the \`app_user\` role and checks the caller
  (\`app.begin_request\`), the page read under Row Level Security, and the JSON answer. Every
  token is first checked to get 20 users of its own company; the run fails on any non-2xx
  answer, socket error, or warning/error logged by the server.
- **Ceiling**: pgbench runs the same SQL the server sends for that request. The bench
  captures it (\`log_statement = all\` around one request) and turns it into a pgbench script
  for a random seeded user (\`scripts/bench/capture_sql.py\`; this run's script is below), run
  with \`-M prepared\` as the server's role (\`app_authenticator\`), at the same concurrency
  and duration, against the same database.
- **Ratio** = server requests/s / pgbench transactions/s: the share of what PostgreSQL alone
  could serve that survives the HTTP + GraphQL layer.

The load generators run on the same machine as the server and PostgreSQL and compete with
them for the CPUs, as the server and PostgreSQL do with each other; the CPU split below shows
where the time went. Figures compare between runs on one machine, not across machines, and
are low when something else runs meanwhile (the bench waits up to 60 s for idle CPUs, then
goes on with a warning, repeated here).

### Reproduce

\`\`\`sh
make bench                 # every benchmark; this one takes ~1.5 min after the build
bash scripts/bench.sh      # this one only
\`\`\`

Knobs: \`BENCH_CONNECTIONS\` (32), \`BENCH_DURATION\` (15), \`BENCH_WARMUP\` (3),
\`BENCH_TOKENS\` (2000), \`DB_MAX_CONNECTIONS\` (the server's pool, 16), \`BENCH_NO_WRITE=1\`
(leave this file alone). Needs wrk (installed with apt-get when missing), PostgreSQL with
pgbench, redis-server and python3. Everything listens on 127.0.0.1 and is removed at the end.

### Latest run

$DATE, commit $COMMIT.${BUSY_NOTE:+

**$BUSY_NOTE**}

| | throughput | p50 | p99 |
|---|---:|---:|---:|
| server (wrk, $CONNECTIONS connections, $DURATION s) | **$SERVER_RPS_INT req/s** | $SERVER_P50 ms | $SERVER_P99 ms |
| PostgreSQL alone (pgbench, $CONNECTIONS connections, $DURATION s) | **$PG_TPS_INT tps** | $PG_P50 ms | $PG_P99 ms |
| **ratio server / pgbench** | **$RATIO** | | |

Where the CPUs went, in cores out of $THREADS, sampled over the middle of each run:

| during | server | PostgreSQL | Redis | load generator | other | idle |
|---|---:|---:|---:|---:|---:|---:|
| wrk → server | $W_SERVER | $W_PG | $W_REDIS | $W_LOAD | $W_OTHER | $W_IDLE |
| pgbench → PostgreSQL | – | $P_PG | – | $P_LOAD | $P_OTHER | $P_IDLE |

CPU time per request: server ${SERVER_US} µs + PostgreSQL ${PG_US_SERVER} µs; per pgbench
transaction: PostgreSQL ${PG_US_PGBENCH} µs. The server's pool had $POOL connections
(\`DB_MAX_CONNECTIONS\`); pgbench percentiles come from a 10 % sample of its transactions;
the CPUs were ${SERVER_IDLE_BEFORE} % / ${PG_IDLE_BEFORE} % idle just before the two runs.

\`\`\`
$SUMMARY
\`\`\`

The pgbench script, as captured from the server ($STATEMENTS statements per request):

\`\`\`sql
$(cat "$WORK/users.sql")
\`\`\`

Machine:

- CPUs: $THREADS (\`nproc\`), $CPU_MODEL
- Memory: $MEMORY
- PostgreSQL: $PG_VERSION (the private cluster started by the server)
- Kernel: $KERNEL; load generator: $WRK_VERSION
<!-- users:end -->
EOF
    # Replace the section in place, or add it after the title (a new file gets a title).
    python3 - "$ROOT/BENCHMARKS.md" "$WORK/section.md" <<'PY'
import sys
path, section_path = sys.argv[1:3]
section = open(section_path).read()
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
begin, end, heading = "<!-- users:begin -->", "<!-- users:end -->\n", "## Users list"


def next_section(at):
    """Where the next section (heading or marker line) starts after `at`, or the end."""
    found = [i + 1 for i in (text.find("\n## ", at), text.find("\n<!-- ", at)) if i >= 0]
    return min(found, default=len(text))


start = text.find(begin)
if start < 0:
    start = text.find(heading)
if start >= 0:
    # Replace the old section (even if another writer lost one of its markers).
    stop = text.find(end, start)
    stop = stop + len(end) if stop >= 0 else next_section(start + 1)
    text = text[:start] + section + text[stop:]
elif text.startswith("# "):
    # First section, after the title and its introduction.
    at = next_section(0)
    text = text[:at].rstrip("\n") + "\n\n" + section + "\n" + text[at:]
else:
    text = ("# Benchmarks\n\nFigures of `make bench`, one section per benchmark; each script "
            "rewrites its own section.\n\n" + section + ("\n" + text if text.strip() else ""))
open(path, "w").write(text.rstrip("\n") + "\n")
PY
    echo "  wrote its section of BENCHMARKS.md"
fi
