#!/usr/bin/env bash
# `make bench`: how fast does the server answer typical authenticated reads, compared with
# PostGraphile 5 on the same database and with what PostgreSQL alone can do?
#
#   1. builds the server in release mode and installs PostGraphile 5 with the Node it needs
#      (both from the npm registry, pinned in scripts/bench/postgraphile/package-lock.json);
#   2. starts the server on a free 127.0.0.1 port with a throw-away DATA_DIR (so it runs its own
#      private PostgreSQL and Redis), and seeds two companies of 10,000 users each and their
#      saved presets;
#   3. mints access tokens for many different seeded users and checks every one of them gets a
#      correct users page and presets page (this also warms the server up);
#   4. starts PostGraphile 5 against the same database as the server's pool role, verifying the
#      same tokens and setting the same role and `app.*` variables (scripts/bench/postgraphile/),
#      checks every token with it too, and checks that both answer the same rows;
#   5. captures the SQL the server sends for one users page (statement logging) and turns it into
#      a pgbench script (scripts/bench/capture_sql.py);
#   6. measures, one after the other, at the same concurrency and duration, each after waiting
#      for idle CPUs (and printing how idle they were): wrk on the server's users page, on
#      PostGraphile's, on the server's presets page, on PostGraphile's; pgbench of the captured
#      SQL (the ceiling for the server's own SQL); pgbench of the minimal transaction in one
#      round trip (the physical limit, scripts/bench/limit.sql);
#   7. with BENCH_PROFILE=1, records the server under the users-page load with perf and renders
#      a flame graph (inferno) into the bench output directory;
#   8. prints the figures, the ratios and where the CPUs went, and rewrites the users, presets
#      and limit sections of BENCHMARKS.md with them, the previous run's figures beside them
#      (scripts/bench/report.py).
#
# Everything is bounded in time, listens on 127.0.0.1 only, and is stopped and removed on exit,
# whatever the exit path (trap). Knobs (environment): BENCH_CONNECTIONS (32), BENCH_DURATION
# (15 s), BENCH_WARMUP (3 s), BENCH_TOKENS (2000), DB_MAX_CONNECTIONS (the server's pool, its
# default 16; PostGraphile's pool gets the same size), BENCH_QUIET_WAIT (60 s: how long to wait
# for idle CPUs before each run), BENCH_POSTGRAPHILE=0 to leave PostGraphile out,
# BENCH_PROFILE=1 for the flame graph (BENCH_PROFILE_DURATION, 10 s), BENCH_OUT (the output
# directory, .bench/ of the checkout, git-ignored), BENCH_NO_WRITE=1 to leave BENCHMARKS.md alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/bench"
CARGO="${CARGO:-cargo}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${BENCH_OUT:-$ROOT/.bench}"

CONNECTIONS="${BENCH_CONNECTIONS:-32}"
DURATION="${BENCH_DURATION:-15}"
WARMUP="${BENCH_WARMUP:-3}"
TOKENS="${BENCH_TOKENS:-2000}"
POOL="${DB_MAX_CONNECTIONS:-16}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-60}"
POSTGRAPHILE="${BENCH_POSTGRAPHILE:-1}"
PROFILE="${BENCH_PROFILE:-0}"
PROFILE_DURATION="${BENCH_PROFILE_DURATION:-10}"
THREADS="$(nproc)"   # wrk threads / pgbench -j: one per core, like each other
# What the access tokens carry (scripts/bench/mint_tokens.py); the server is started with them.
JWT_ISSUER="graphql-server"
JWT_AUDIENCE="graphql-api"

# The two pages, as this server's clients ask for them and as PostGraphile 5's would: the same
# rows and fields, in the same order (checked before measuring).
USERS_QUERY='{ users(first: 20) { edges { node { id email displayName } } pageInfo { hasNextPage endCursor } } }'
PG5_USERS_QUERY='{ allUserProfiles(first: 20, orderBy: [CREATED_AT_ASC, ID_ASC], condition: { visible: true }) { edges { node { id email displayName } } pageInfo { hasNextPage endCursor } } }'
PRESETS_QUERY='{ presets(first: 20) { edges { node { id name description visibility ownerId updatedAt } } pageInfo { hasNextPage endCursor } } }'
PG5_PRESETS_QUERY='{ allPresets(first: 20, orderBy: [NAME_ASC, ID_ASC]) { edges { node { id name description visibility ownerId updatedAt } } pageInfo { hasNextPage endCursor } } }'

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- Tools -------------------------------------------------------------------------------

# Installs a Debian package when its command is missing (apt-get), or says what is missing.
need() {
    local command="$1" package="$2" why="$3"
    command -v "$command" >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || die "$command is missing; install it ($why)"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing $package (apt-get)"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null \
        || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null; }
}
need wrk wrk "https://github.com/wg/wrk"
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
if [ "$PROFILE" = "1" ]; then
    need perf linux-perf "linux-perf, for BENCH_PROFILE=1"
    if ! command -v inferno-flamegraph >/dev/null 2>&1 || ! command -v inferno-collapse-perf >/dev/null 2>&1; then
        say "installing inferno (cargo install), for the flame graph"
        "$CARGO" install --locked inferno
    fi
fi

# PostGraphile 5 and the Node it needs (22 or later): both are npm packages, pinned by the
# committed package-lock.json and installed with `npm ci` into the output directory, again only
# when the lock file changed. The Node package ships its binary through the registry, so the
# comparison runs on the same Node whatever the system has (or lacks).
PG5_DIR="$OUT/postgraphile"
PG5_NODE="$PG5_DIR/node_modules/node/bin/node"
if [ "$POSTGRAPHILE" = "1" ]; then
    mkdir -p "$PG5_DIR"
    stamp="$(sha256sum "$HERE/postgraphile/package-lock.json" | cut -d' ' -f1)"
    if [ "$(cat "$PG5_DIR/.installed" 2>/dev/null)" != "$stamp" ] || [ ! -x "$PG5_NODE" ]; then
        need npm npm "npm, to install PostGraphile; or BENCH_POSTGRAPHILE=0"
        say "installing PostGraphile 5 and Node 22 (npm ci) into $PG5_DIR"
        rm -rf "$PG5_DIR/node_modules" "$PG5_DIR/.installed"
        cp "$HERE/postgraphile/package.json" "$HERE/postgraphile/package-lock.json" "$PG5_DIR/"
        (cd "$PG5_DIR" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$stamp" >"$PG5_DIR/.installed"
    fi
    # The configuration imports from the installed packages: it must live beside them.
    cp "$HERE/postgraphile/graphile.config.mjs" "$PG5_DIR/"
    node_version="$("$PG5_NODE" --version 2>/dev/null)" || die "no working Node in $PG5_DIR (remove it and run again)"
    [ "${node_version#v}" != "$node_version" ] && [ "$(cut -d. -f1 <<<"${node_version#v}")" -ge 22 ] \
        || die "PostGraphile 5 needs Node 22 or later; $PG5_NODE is $node_version"
    PG5_VERSION="$("$PG5_NODE" -p 'require("./node_modules/postgraphile/package.json").version' 2>/dev/null \
        || (cd "$PG5_DIR" && "$PG5_NODE" -p 'require("./node_modules/postgraphile/package.json").version'))"
fi

# --- Build -------------------------------------------------------------------------------

say "building the server (release)"
(cd "$ROOT" && "$CARGO" build --release -p server-cli --bin server)
SERVER_BIN="$TARGET_DIR/release/server"
[ -x "$SERVER_BIN" ] || die "no $SERVER_BIN after the build"

# --- Throw-away environment, removed on exit ---------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")"
# The private PostgreSQL runs as the `postgres` OS user when we are root: it must be able
# to reach DATA_DIR/postgres.
chmod 755 "$WORK"
DATA_DIR="$WORK/data"
SERVER_LOG="$WORK/server.log"
PG5_LOG="$WORK/postgraphile.log"
SERVER_PID=""
SERVER_CHILDREN=""
PG5_PID=""

# Stops a process we started: SIGTERM, up to $2 tenths of a second, then SIGKILL.
stop_pid() {
    local pid="$1" tenths="$2" name="$3"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "bench: $name did not stop in time; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [ -z "$PG5_PID" ] || stop_pid "$PG5_PID" 100 PostGraphile
    # SIGTERM: the server stops its private PostgreSQL and Redis itself.
    [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID" 300 "the server"
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
    if [ "$status" -ne 0 ]; then
        if [ -f "$SERVER_LOG" ]; then
            echo "bench: failed; last lines of the server log:" >&2
            tail -n 30 "$SERVER_LOG" >&2 || true
        fi
        if [ -s "$PG5_LOG" ]; then
            echo "bench: last lines of PostGraphile's log:" >&2
            tail -n 20 "$PG5_LOG" >&2 || true
        fi
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- Start the server --------------------------------------------------------------------

PORT="$(free_port)"
say "starting the server on 127.0.0.1:$PORT (DATA_DIR $DATA_DIR, pool $POOL)"
# Started from $WORK so that no .env of the checkout is read, and without any URL or secret
# of the caller's environment: the server must start its own private services.
(
    cd "$WORK"
    exec env -u DATABASE_URL -u DATABASE_ADMIN_URL -u REDIS_URL -u JWT_SECRET -u JWT_PRIVATE_KEY \
        BIND_ADDR="127.0.0.1:$PORT" DATA_DIR="$DATA_DIR" DB_MAX_CONNECTIONS="$POOL" \
        JWT_ISSUER="$JWT_ISSUER" JWT_AUDIENCE="$JWT_AUDIENCE" \
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

say "seeding 2 companies x 10,000 users and their presets"
psql_super -f "$HERE/seed.sql"

say "minting $TOKENS access tokens of different users and checking each one"
python3 "$HERE/mint_tokens.py" "$DATA_DIR/secrets.json" "$TOKENS" "$WORK/tokens.txt"
body() { python3 -c 'import json, sys; print(json.dumps({"query": sys.argv[1]}))' "$1" >"$2"; }
body "$USERS_QUERY" "$WORK/users.json"
body "$PRESETS_QUERY" "$WORK/presets.json"
body "$PG5_USERS_QUERY" "$WORK/pg5-users.json"
body "$PG5_PRESETS_QUERY" "$WORK/pg5-presets.json"
URL="http://127.0.0.1:$PORT/graphql"
python3 "$HERE/check_tokens.py" "$URL" "$WORK/users.json" "$WORK/tokens.txt" --page users
python3 "$HERE/check_tokens.py" "$URL" "$WORK/presets.json" "$WORK/tokens.txt" --page presets

# --- PostGraphile 5 on the same database -------------------------------------------------

PG5_URL=""
if [ "$POSTGRAPHILE" = "1" ]; then
    PG5_PORT="$(free_port)"
    say "starting PostGraphile $PG5_VERSION (Node $node_version) on 127.0.0.1:$PG5_PORT, pool $POOL, as app_authenticator"
    PG_URL="$(python3 -c 'import sys, urllib.parse as u; print("postgres://app_authenticator:%s@127.0.0.1:%s/app" % (u.quote(sys.argv[1], safe=str()), sys.argv[2]))' \
        "$APP_PASSWORD" "$PG_PORT")"
    # The policies' app.may reads the caller's grants from `app.grants`, which app.begin_request
    # sets from the role's grants: PostGraphile sets the built-in roles' grants, read here once.
    GRANTS_JSON="$(psql_super -At -c "SELECT json_object_agg(r, app.request_grants(NULL, r)) FROM unnest(ARRAY['member', 'manager', 'admin']) r")"
    (
        cd "$PG5_DIR"
        exec env BENCH_PG_URL="$PG_URL" BENCH_JWT_SECRET="$(secret jwt_secret)" BENCH_GRANTS="$GRANTS_JSON" \
            BENCH_JWT_ISSUER="$JWT_ISSUER" BENCH_JWT_AUDIENCE="$JWT_AUDIENCE" \
            BENCH_PG_POOL="$POOL" BENCH_PG5_PORT="$PG5_PORT" NODE_ENV=production \
            "$PG5_NODE" node_modules/postgraphile/dist/cli-run.js -C graphile.config.mjs
    ) >"$PG5_LOG" 2>&1 &
    PG5_PID=$!
    PG5_URL="http://127.0.0.1:$PG5_PORT/graphql"
    head -n 1 "$WORK/tokens.txt" >"$WORK/first_token.txt"
    # Ready once it answers a page (it introspects the database first), at most 120 s.
    deadline=$((SECONDS + 120))
    until python3 "$HERE/check_tokens.py" "$PG5_URL" "$WORK/pg5-users.json" "$WORK/first_token.txt" \
            --page users --field allUserProfiles >"$WORK/pg5-ready.txt" 2>&1; do
        kill -0 "$PG5_PID" 2>/dev/null || die "PostGraphile exited before it was ready"
        [ "$SECONDS" -lt "$deadline" ] || die "PostGraphile did not answer within 120 s: $(tail -c 600 "$WORK/pg5-ready.txt")"
        sleep 0.5
    done
    echo "  ready"
    python3 "$HERE/check_tokens.py" "$PG5_URL" "$WORK/pg5-users.json" "$WORK/tokens.txt" \
        --page users --field allUserProfiles
    python3 "$HERE/check_tokens.py" "$PG5_URL" "$WORK/pg5-presets.json" "$WORK/tokens.txt" \
        --page presets --field allPresets
    say "checking that the server and PostGraphile answer the same rows"
    python3 "$HERE/compare_pages.py" users "$WORK/tokens.txt" 20 \
        "$URL" "$WORK/users.json" users "$PG5_URL" "$WORK/pg5-users.json" allUserProfiles
    python3 "$HERE/compare_pages.py" presets "$WORK/tokens.txt" 20 \
        "$URL" "$WORK/presets.json" presets "$PG5_URL" "$WORK/pg5-presets.json" allPresets
fi

# --- The SQL of one request, for pgbench ---------------------------------------------------

say "capturing the SQL the server sends for one users page"
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
python3 "$HERE/check_tokens.py" "$URL" "$WORK/users.json" "$WORK/capture_token.txt" $((2 * POOL + 4)) >/dev/null
psql_super -c "SELECT 'bench-capture-begin'" >/dev/null
python3 "$HERE/check_tokens.py" "$URL" "$WORK/users.json" "$WORK/capture_token.txt" >/dev/null
psql_super -c "SELECT 'bench-capture-end'" >/dev/null
set_logging log_statement "" "$old_statement"
set_logging log_line_prefix "" "$old_prefix"
python3 "$HERE/capture_sql.py" "$PG_LOG" "$CAPTURE_N" "$WORK/users.sql"
sed 's/^/    /' "$WORK/users.sql"

say "checking the pgbench scripts as app_authenticator"
# The captured script for one user of each company, as the role the server connects as: it must
# run without an error (app.begin_request raises when the caller is not live, and the server
# would answer UNAUTHENTICATED), and a page of 21 rows of the user's company must come back. The
# physical limit's script likewise (scripts/bench/limit.sql): 21 users of the company.
for n in "$CAPTURE_N" $((CAPTURE_N % 20000 + 1)); do
    company="$(psql_app -At -c "SELECT md5('bench-company-$((n % 2 + 1))')::uuid")"
    check="$(python3 "$HERE/capture_sql.py" --check "$WORK/users.sql" "$n" | psql_app -At -v ON_ERROR_STOP=1)" \
        || die "the pgbench script fails for user $n"
    # A row names its company by id, or (the narrow page reads no company column) by the
    # e-mail domain the seed gives each company's users.
    awk -v company="$company" -v domain="@bench$((n % 2 + 1)).example|" '
        index($0, company) || index($0, domain) { rows++ }
        END { exit !(rows >= 21) }' <<<"$check" \
        || die "the pgbench script does not do what the server does for user $n (got: $(head -c 400 <<<"$check"))"
    check="$(python3 "$HERE/capture_sql.py" --check "$HERE/limit.sql" "$n" | psql_app -At -v ON_ERROR_STOP=1)" \
        || die "the physical limit's script fails for user $n"
    rows="$(grep -c "^[0-9a-f-]\{36\}|Bench User " <<<"$check" || true)"
    [ "$rows" = "21" ] || die "the physical limit's script read $rows users for user $n, not 21 (got: $(head -c 400 <<<"$check"))"
done
echo "  both read a page of 21 rows of the caller's company"

# --- Measurements ------------------------------------------------------------------------

RESULTS="$WORK/results.txt"   # "name value" lines, for report.py
: >"$RESULTS"
record() { printf '%s %s\n' "$1" "$2" >>"$RESULTS"; }


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
# Other work on the machine (a build, tests) would steal CPU from the runs: wait up to
# QUIET_WAIT seconds for the CPUs to be >= 90 % idle, then go on anyway, with a warning. Prints
# and sets IDLE_BEFORE.
wait_for_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) told=""
    while :; do
        IDLE_BEFORE="$(cpu_idle_pct)"
        [ "$IDLE_BEFORE" -ge 90 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "  WARNING: the machine is still busy (${IDLE_BEFORE}% idle): the figures will be low" >&2
            break
        fi
        [ -n "$told" ] || echo "  the machine is busy (${IDLE_BEFORE}% idle); waiting up to ${QUIET_WAIT} s for it to calm down"
        told=1
    done
    echo "  CPUs: $THREADS, ${IDLE_BEFORE}% idle just before this run"
}
# Records the BENCH_CPU line of a cpu_split.py output under `key`.
record_cpu() {
    local key="$1" file="$2" line field
    line="$(grep '^BENCH_CPU ' "$file")" || die "no CPU figures from cpu_split.py for $key"
    for field in server postgres redis loadgen other idle; do
        record "$key.cpu_$field" "$(sed -n "s/.* $field=\([^ ]*\).*/\1/p" <<<"$line")"
    done
}

# measure_http KEY LABEL PID URL BODY LOG: wrk at CONNECTIONS connections for DURATION seconds
# (after a WARMUP), a random user's token per request; PID is the process answering (its CPU is
# the "server" share). Fails on any non-2xx answer or socket error, and on any warning or error
# that LOG (the server's, or PostGraphile's errors in answers) got during the run: answers that
# carry an error are still HTTP 200, so they must not count as throughput.
measure_http() {
    local key="$1" label="$2" pid="$3" url="$4" body="$5" log="$6" offset since until line problems
    say "$label: wrk, $CONNECTIONS connections, $THREADS threads, ${DURATION} s"
    wait_for_quiet
    record "$key.idle_before" "$IDLE_BEFORE"
    local args=(-t "$THREADS" -c "$CONNECTIONS" --timeout 5s -s "$HERE/users.lua" "$url" -- "$body" "$WORK/tokens.txt")
    wrk -d "${WARMUP}s" "${args[@]}" >/dev/null
    sleep 2   # the requests the warm-up left in flight are cancelled and rolled back meanwhile
    offset="$(stat -c %s "$log")"
    since="$(date +%s.%N)"
    python3 "$HERE/cpu_split.py" "$pid" "$DURATION" -- wrk -d "${DURATION}s" "${args[@]}" \
        | tee "$WORK/$key.out"
    # wrk drops its connections when it stops, with requests in flight: what is logged about them
    # then (the last second) is not a problem of the run.
    until="$(awk -v now="$(date +%s.%N)" 'BEGIN { printf "%.3f", now - 1 }')"
    line="$(grep '^BENCH_WRK ' "$WORK/$key.out")" || die "no result line from wrk ($label)"
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    local f
    for f in non2xx connect_errors read_errors write_errors timeouts; do
        [ "$(field "$f")" = "0" ] || die "$label: wrk saw $f=$(field "$f") (must be 0)"
    done
    sleep 1   # for what the run's end makes the server log
    problems="$(python3 "$HERE/log_problems.py" "$log" "$offset" "$since" "$until")"
    problems="$(sed -n 's/^BENCH_PROBLEMS counted=\([0-9]*\).*/\1/p' <<<"$problems")"
    [ "$problems" = "0" ] || die "$label: ${problems:-?} warnings/errors logged during the load test"
    [ "$(field requests)" -gt 0 ] || die "$label: wrk completed no request"
    record "$key.rps" "$(field rps)"
    record "$key.p50" "$(awk -v us="$(field p50_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
    record "$key.p99" "$(awk -v us="$(field p99_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
    record "$key.requests" "$(field requests)"
    record_cpu "$key" "$WORK/$key.out"
}

# measure_pgbench KEY LABEL SCRIPT: pgbench -M prepared as the server's role (a random seeded
# user per transaction), at the same concurrency and duration.
measure_pgbench() {
    local key="$1" label="$2" script="$3"
    local cmd=(env PGPASSWORD="$APP_PASSWORD" "$PGBENCH" -h 127.0.0.1 -p "$PG_PORT"
               -U app_authenticator -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -f "$script")
    say "$label: pgbench, $CONNECTIONS connections, $THREADS threads, ${DURATION} s"
    wait_for_quiet
    record "$key.idle_before" "$IDLE_BEFORE"
    "${cmd[@]}" -T "$WARMUP" app >/dev/null 2>&1 || die "$label: the pgbench warm-up failed"
    rm -rf "$WORK/pglog"; mkdir -p "$WORK/pglog"
    # Per-transaction log of 1 transaction in 10, for percentiles (cheap to write).
    python3 "$HERE/cpu_split.py" "$SERVER_PID" "$DURATION" -- "${cmd[@]}" -T "$DURATION" \
        --log --sampling-rate=0.1 --log-prefix="$WORK/pglog/tx" app 2>&1 | tee "$WORK/$key.out"
    local tps failed p50 p99
    tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$WORK/$key.out")"
    [ -n "$tps" ] || die "$label: no tps in the pgbench output"
    failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/$key.out")"
    [ "${failed:-0}" = "0" ] || die "$label: pgbench had $failed failed transactions"
    # Third column of the log: the transaction's latency in microseconds.
    read -r p50 p99 < <(cat "$WORK"/pglog/tx.* | awk '{ print $3 }' | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "nan nan"; exit }
            i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
            i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
            printf "%.2f %.2f\n", v[i50] / 1000, v[i99] / 1000
        }')
    record "$key.rps" "$tps"
    record "$key.p50" "$p50"
    record "$key.p99" "$p99"
    record "$key.requests" "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/$key.out")"
    record_cpu "$key" "$WORK/$key.out"
}

measure_http server_users "server, users page" "$SERVER_PID" "$URL" "$WORK/users.json" "$SERVER_LOG"
if [ "$POSTGRAPHILE" = "1" ]; then
    measure_http pg5_users "PostGraphile, users page" "$PG5_PID" "$PG5_URL" "$WORK/pg5-users.json" "$PG5_LOG"
fi
measure_http server_presets "server, presets page" "$SERVER_PID" "$URL" "$WORK/presets.json" "$SERVER_LOG"
if [ "$POSTGRAPHILE" = "1" ]; then
    measure_http pg5_presets "PostGraphile, presets page" "$PG5_PID" "$PG5_URL" "$WORK/pg5-presets.json" "$PG5_LOG"
fi
measure_pgbench pgbench_users "ceiling: the server's SQL for a users page" "$WORK/users.sql"
measure_pgbench limit "physical limit: the minimal transaction in one round trip" "$HERE/limit.sql"

# --- Flame graph (BENCH_PROFILE=1) -------------------------------------------------------

FLAMEGRAPH=""
if [ "$PROFILE" = "1" ]; then
    say "profiling the server under the users-page load: perf, ${PROFILE_DURATION} s"
    mkdir -p "$OUT"
    stamp="$(date -u '+%Y%m%d-%H%M%S')"
    base="$OUT/flamegraph-users-$stamp"
    FLAMEGRAPH="$base.svg"
    # cpu-clock: a software event, there where hardware counters are not (VMs). DWARF call
    # graphs, as the release build has line tables but no frame pointers, with the largest stack
    # copy perf takes (64 KiB; async stacks are deep): a 10 s profile of one busy core is ~600 MB
    # of perf.data, removed once rendered. Stacks deeper than that still lose their outer frames
    # ("[unknown]" at the bottom); the reversed graph groups by the function on the CPU instead.
    wrk -t "$THREADS" -c "$CONNECTIONS" --timeout 5s -s "$HERE/users.lua" -d "$((PROFILE_DURATION + 2))s" \
        "$URL" -- "$WORK/users.json" "$WORK/tokens.txt" >"$WORK/profile-wrk.out" &
    wrk_pid=$!
    sleep 1
    perf record -e cpu-clock -F 999 -g --call-graph dwarf,65528 -p "$SERVER_PID" -o "$WORK/perf.data" \
        -- sleep "$PROFILE_DURATION" 2>"$WORK/perf-record.err" \
        || { cat "$WORK/perf-record.err" >&2; die "perf record failed"; }
    wait "$wrk_pid" || die "wrk failed during the profile"
    # --no-inline: resolving inlined frames runs addr2line per address, minutes per thousand
    # samples; no debuginfod look-ups either (no network).
    DEBUGINFOD_URLS="" perf script --no-inline -i "$WORK/perf.data" 2>/dev/null \
        | inferno-collapse-perf >"$base.folded"
    rm -f "$WORK/perf.data"
    [ -s "$base.folded" ] || die "perf recorded no stacks"
    title="server, users page under wrk ($CONNECTIONS connections), $(date -u '+%Y-%m-%d %H:%M UTC')"
    inferno-flamegraph --countname ns --title "$title" <"$base.folded" >"$FLAMEGRAPH"
    inferno-flamegraph --countname ns --reverse --title "$title, reversed (by the function on the CPU)" \
        <"$base.folded" >"$base-reversed.svg"
    # Where the samples went, by part of the program and by function (self time), for the
    # report.
    python3 "$HERE/profile_split.py" "$base.folded" >"$WORK/profile-top.txt"
    echo "  flame graph: $FLAMEGRAPH"
    echo "  reversed:    $base-reversed.svg"
    echo "  folded stacks: $base.folded"
    sed 's/^/    /' "$WORK/profile-top.txt"
fi

# --- Machine and report ------------------------------------------------------------------

CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
WRK_VERSION="$(wrk -v 2>&1 || true)"   # prints its version, then usage, and exits 1
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(cd "$ROOT" && git status --porcelain -- server entity migration Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
record meta.date "$(date -u '+%Y-%m-%d %H:%M UTC')"
record meta.commit "$COMMIT"
record meta.cpus "$THREADS"
record meta.cpu_model "${CPU_MODEL:-unknown}"
record meta.memory "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
record meta.postgres "$(psql_super -At -c 'SHOW server_version')"
record meta.kernel "$(uname -sr)"
record meta.wrk "$(awk 'NR == 1 { print $1, $2 }' <<<"$WRK_VERSION")"
record meta.pgbench "$("$PGBENCH" --version | awk '{ print $NF }')"
record meta.connections "$CONNECTIONS"
record meta.duration "$DURATION"
record meta.warmup "$WARMUP"
record meta.tokens "$TOKENS"
record meta.pool "$POOL"
record meta.flamegraph "$FLAMEGRAPH"
if [ "$POSTGRAPHILE" = "1" ]; then
    record meta.postgraphile "$PG5_VERSION"
    record meta.node "$node_version"
fi

say "result"
report=(python3 "$HERE/report.py" --results "$RESULTS" --users-sql "$WORK/users.sql"
        --profile-top "$WORK/profile-top.txt"
        --limit-sql "$HERE/limit.sql" --benchmarks "$ROOT/BENCHMARKS.md"
        --users-query "$USERS_QUERY" --presets-query "$PRESETS_QUERY"
        --pg5-users-query "$PG5_USERS_QUERY" --pg5-presets-query "$PG5_PRESETS_QUERY")
[ "${BENCH_NO_WRITE:-0}" = "1" ] || report+=(--write)
"${report[@]}"
