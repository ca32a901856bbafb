#!/usr/bin/env bash
# `make bench`, audience section: audienceSize and the first page of audience on a company of
# 1,000,000 users (two companies of 10,000 beside it), through GraphQL, for three filters
# (selective, broad, with exclusion): p50/p99 latency, with the machine's CPUs and idle share
# before each; then the same counts written by hand in SQL through psql (over the bitmaps the
# server counts with, or the users' index for the range) and the ratio, and over the users' rows
# as they were counted before the bitmaps. Rewrites the "Audience" section of BENCHMARKS.md
# (between its markers, the previous run's figures kept beside) unless BENCH_NO_WRITE=1. Knobs:
# BENCH_AUDIENCE_USERS (1000000), BENCH_AUDIENCE_RUNS (30 per filter).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"
USERS="${BENCH_AUDIENCE_USERS:-1000000}"
RUNS="${BENCH_AUDIENCE_RUNS:-30}"
say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench-audience: %s\n' "$*" >&2; exit 1; }

PG_BIN=""
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/psql" ] && PG_BIN="$dir"; done
PSQL="${PG_BIN:+$PG_BIN/}psql"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"

say "building the server (release)"
(cd "$ROOT" && "$CARGO" build --release -p server-cli --bin server)
SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/server"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-audience.XXXXXX")"
chmod 755 "$WORK"
DATA_DIR="$WORK/data"
LOG="$WORK/server.log"
SERVER_PID=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [ "$status" -eq 0 ] || tail -n 30 "$LOG" >&2 || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
say "starting the server on 127.0.0.1:$PORT"
(
    cd "$WORK"
    exec env -u DATABASE_URL -u DATABASE_ADMIN_URL -u REDIS_URL -u JWT_SECRET \
        BIND_ADDR="127.0.0.1:$PORT" DATA_DIR="$DATA_DIR" RUST_LOG=warn "$SERVER_BIN" serve
) >"$LOG" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 180))
until grep -q "GraphQL server ready" "$LOG" 2>/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited before it was ready"
    [ "$SECONDS" -lt "$deadline" ] || die "the server was not ready within 180 s"
    sleep 0.2
done
PG_PORT="$(sed -n 's/.*PostgreSQL: private cluster on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG")"
SUPER="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["postgres_superuser_password"])' "$DATA_DIR/secrets.json")"
ADMIN_URL="postgres://postgres:$SUPER@127.0.0.1:$PG_PORT/app"
psql_super() { PGPASSWORD="$SUPER" "$PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app "$@"; }

seed() {
    DATABASE_ADMIN_URL="$ADMIN_URL" JWT_SECRET=unused-unused-unused-unused-unused-0000 \
        "$SERVER_BIN" seed --company "$1" --users "$2" --admin-password bench-audience-pw
}
say "seeding two companies of 10,000 users, then one of $USERS"
seed "Other A" 10000 >/dev/null
seed "Other B" 10000 >/dev/null
SEED_OUT="$(seed "Big" "$USERS")"
echo "$SEED_OUT"
SEED_SECS="$(sed -n 's/.* users in \([0-9.]*\) s/\1/p' <<<"$SEED_OUT")"
COMPANY="$(sed -n 's/.*(\([0-9a-f-]*\)) with.*/\1/p' <<<"$SEED_OUT")"
EMAIL="$(sed -n 's/.*admin: \([^ ]*\) .*/\1/p' <<<"$SEED_OUT")"

say "measuring ($RUNS runs per filter)"
RESULT="$(python3 "$ROOT/scripts/bench/audience.py" "http://127.0.0.1:$PORT/graphql" "$EMAIL" \
    bench-audience-pw "$RUNS" "$COMPANY" "$PSQL" "$PG_PORT" "$SUPER")"
echo "$RESULT"

if [ "${BENCH_NO_WRITE:-0}" != "1" ]; then
    python3 - "$ROOT/BENCHMARKS.md" "$USERS" "$SEED_SECS" "$(date -u '+%Y-%m-%d %H:%M UTC')" <<PY
import re, sys
path, users, seed_secs, date = sys.argv[1:5]
result = """$RESULT"""
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
begin, end = "<!-- audience:begin -->", "<!-- audience:end -->\n"
previous = ""
if begin in text and end in text:
    old = text[text.index(begin):text.index(end)]
    when = re.search(r"\(part of \`make bench\`\), ([^:]*UTC)", old)
    figures = re.search(r"\`\`\`\n(.*?)\`\`\`", old, re.S)
    if figures:
        previous = f"""
The previous run ({when.group(1) if when else "date unknown"}):

\`\`\`
{figures.group(1).rstrip()}
\`\`\`
"""
section = f"""<!-- audience:begin -->
## Audience

\`scripts/bench-audience.sh\` (part of \`make bench\`), {date}: a company of {int(users):,} users
seeded by \`server seed\` in {seed_secs} s (the bitmaps built by the users' trigger on the way),
two companies of 10,000 beside it. Latencies are through GraphQL (HTTP, one request at a time,
as the seeded admin); "SQL" is the same count written by hand through psql (\`\\\\timing\`) over
what the server counts with: the bitmaps of \`audience_bits\` for the selective and exclusion
filters, the users' \`(company_id, last_active_at)\` index for the broad one (a range); ratio =
GraphQL audienceSize p50 / SQL p50; "rows SQL" is the count over the users' rows, as every count
was taken before the bitmaps. Aim: every audienceSize p50 < 50 ms on 1,000,000 users.

\`\`\`
{result}
\`\`\`
{previous}
How the counts are taken, and why: see "Audience segmentation" in README.md. In short, a filter
made of equality-type facts (equality, \`in\`, lists, presence, and their negations) is counted
from one bitmap per term and segment of 1,024 members: 3 × 977 rows of 128 bytes for the
exclusion, combined with \`|\`, \`&\`, \`~\` and popcounted, instead of fetching and testing
400,000 users' rows (the rows' plan: a GIN bitmap of 400,000 TIDs, 33,000 heap pages, three
\`jsonb @>\` per row). Ranges (the broad filter) are counted from the users' btree index, an
index-only scan.
<!-- audience:end -->
"""
if begin in text and end in text:
    text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
fi
