#!/usr/bin/env bash
# `make bench`, activities section: a company of 100,000 users with 30 activities each (three
# kinds, every visibility), a user with 200 friends; compareWithFriends and the first page of
# friendFeed through GraphQL (p50/p99, one request at a time), and beside each the same SQL the
# server sends, by hand through psql as that user under Row Level Security (SET ROLE app_user
# and the identity the policies read), and the ratio. Seeding is set-based SQL (one statement
# per table, triggers off for the bulk load: the rows are valid by construction). Rewrites the
# "Activities" section of BENCHMARKS.md (between its markers) unless BENCH_NO_WRITE=1. Knobs:
# BENCH_ACTIVITIES_USERS (100000), BENCH_ACTIVITIES_PER_USER (30), BENCH_ACTIVITIES_FRIENDS
# (200), BENCH_ACTIVITIES_RUNS (50 per query), BENCH_ACTIVITIES_BUILD (release; `debug` runs
# the dev build, for a quick check of the script only), BENCH_ACTIVITIES_DATA_DIR (none: a
# directory to keep the server's data in; a later run with the same directory and sizes
# reuses the seeded company instead of seeding again), BENCH_ACTIVITIES_EXPLAIN=1 (print
# EXPLAIN (ANALYZE, BUFFERS) of each statement as the caller).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"
USERS="${BENCH_ACTIVITIES_USERS:-100000}"
PER_USER="${BENCH_ACTIVITIES_PER_USER:-30}"
FRIENDS="${BENCH_ACTIVITIES_FRIENDS:-200}"
RUNS="${BENCH_ACTIVITIES_RUNS:-50}"
BUILD="${BENCH_ACTIVITIES_BUILD:-release}"
KEEP="${BENCH_ACTIVITIES_DATA_DIR:-}"
say() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench-activities: %s\n' "$*" >&2; exit 1; }

PG_BIN=""
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/psql" ] && PG_BIN="$dir"; done
PSQL="${PG_BIN:+$PG_BIN/}psql"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"
[ "$FRIENDS" -lt "$USERS" ] || die "BENCH_ACTIVITIES_FRIENDS must be below BENCH_ACTIVITIES_USERS"

case "$BUILD" in
    release)
        say "building the server (release)"
        (cd "$ROOT" && "$CARGO" build --release -p server-cli --bin server) ;;
    debug)
        say "building the server (dev build: figures of a debug build mean nothing)"
        (cd "$ROOT" && "$CARGO" build -p server-cli --bin server) ;;
    *) die "BENCH_ACTIVITIES_BUILD is release or debug, not $BUILD" ;;
esac
SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$BUILD/server"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-activities.XXXXXX")"
chmod 755 "$WORK"
DATA_DIR="$WORK/data"
if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"
    chmod 755 "$KEEP"
    DATA_DIR="$(cd "$KEEP" && pwd)"
fi
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
psql_super() { PGPASSWORD="$SUPER" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app "$@"; }

# Each set of sizes seeds its own company, named after them: a kept data directory reuses it.
NAME="Big $USERS x $PER_USER, $FRIENDS friends"
COMPANY="$(psql_super -A -t -v name="$NAME" <<'SQL'
SELECT id FROM companies WHERE name = :'name'
SQL
)"
if [ -n "$COMPANY" ]; then
    say "reusing the company seeded before in $DATA_DIR ($COMPANY)"
    EMAIL="$(psql_super -A -t -c "SELECT email FROM users WHERE company_id = '$COMPANY' AND role = 'admin' ORDER BY created_at LIMIT 1")"
    SEED_SECS="$(cat "$DATA_DIR/bench-activities.seed-seconds" 2>/dev/null || echo '?')"
else
say "seeding a company of $USERS users"
SEED_START=$SECONDS
SEED_OUT="$(DATABASE_ADMIN_URL="$ADMIN_URL" JWT_SECRET=unused-unused-unused-unused-unused-0000 \
    "$SERVER_BIN" seed --company "$NAME" --users "$USERS" --admin-password bench-activities-pw)"
echo "$SEED_OUT"
COMPANY="$(sed -n 's/.*(\([0-9a-f-]*\)) with.*/\1/p' <<<"$SEED_OUT")"
EMAIL="$(sed -n 's/.*admin: \([^ ]*\) .*/\1/p' <<<"$SEED_OUT")"
[ -n "$COMPANY" ] && [ -n "$EMAIL" ] || die "could not read the seeded company: $SEED_OUT"

say "seeding $PER_USER activities per user and $FRIENDS friends of the admin (set-based SQL)"
psql_super -v company="$COMPANY" -v email="$EMAIL" -v per_user="$PER_USER" -v friends="$FRIENDS" <<'SQL'
\set ON_ERROR_STOP 1
\timing on
BEGIN;
SET LOCAL maintenance_work_mem = '256MB';
INSERT INTO activity_kinds (company_id, name, metrics) VALUES
    (:'company', 'sleep', '[{"name": "score", "type": "number"}, {"name": "minutes", "type": "integer", "unit": "min"}]'),
    (:'company', 'run', '[{"name": "km", "type": "number", "unit": "km"}, {"name": "minutes", "type": "integer", "unit": "min"}]'),
    (:'company', 'steps', '[{"name": "count", "type": "integer"}]');
-- The indexes that back no constraint are built after the load, from their own definitions.
CREATE TEMPORARY TABLE seed_indexes ON COMMIT DROP AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
WHERE i.indrelid = 'activities'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT name FROM seed_indexes LOOP
        EXECUTE format('DROP INDEX %s', r.name);
    END LOOP;
END
$$;
-- Valid by construction: the bulk load skips the metrics trigger (and the foreign-key checks).
-- Rows go in as they would arrive, oldest first, everyone's interleaved.
SET LOCAL session_replication_role = replica;
WITH kinds AS (
    SELECT array_agg(id ORDER BY name) AS ids FROM activity_kinds WHERE company_id = :'company'
), people AS (
    SELECT id FROM users WHERE company_id = :'company'
)
INSERT INTO activities (company_id, id, user_id, kind_id, occurred_at, metrics, visibility)
SELECT :'company', gen_random_uuid(), p.id, k.ids[1 + n % 3],
       now() - (n * interval '3 hours') - (random() * interval '3 hours'),
       CASE n % 3
           WHEN 0 THEN jsonb_build_object('km', round((random() * 20)::numeric, 2), 'minutes', (20 + random() * 100)::int)
           WHEN 1 THEN jsonb_build_object('score', round((40 + random() * 60)::numeric, 1), 'minutes', (300 + random() * 240)::int)
           ELSE jsonb_build_object('count', (random() * 20000)::int) END,
       CASE WHEN random() < 0.2 THEN 'private' WHEN random() < 0.5 THEN 'friends' ELSE 'company' END
FROM generate_series(:per_user, 1, -1) n CROSS JOIN people p CROSS JOIN kinds k;
SET LOCAL session_replication_role = origin;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT definition FROM seed_indexes LOOP
        EXECUTE r.definition;
    END LOOP;
END
$$;
WITH me AS (SELECT id FROM users WHERE company_id = :'company' AND email = :'email'),
friends AS (
    SELECT u.id FROM users u, me WHERE u.company_id = :'company' AND u.id <> me.id
    ORDER BY u.id LIMIT :friends
)
INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, responded_at)
SELECT :'company', LEAST(f.id, me.id), GREATEST(f.id, me.id), 'accepted', me.id, now()
FROM friends f, me;
COMMIT;
VACUUM (ANALYZE) activities;
ANALYZE friendships;
SQL
SEED_SECS=$((SECONDS - SEED_START))
echo "$SEED_SECS" >"$DATA_DIR/bench-activities.seed-seconds"
fi
ME="$(psql_super -A -t -c "SELECT id FROM users WHERE company_id = '$COMPANY' AND email = '$EMAIL'")"

say "measuring ($RUNS runs per query)"
RESULT="$(python3 "$ROOT/scripts/bench/activities.py" "http://127.0.0.1:$PORT/graphql" "$EMAIL" \
    bench-activities-pw "$RUNS" "$COMPANY" "$ME" "$PSQL" "$PG_PORT" "$SUPER" "$DATA_DIR/postgres.log")"
echo "$RESULT"

if [ "${BENCH_NO_WRITE:-0}" != "1" ]; then
    python3 - "$ROOT/BENCHMARKS.md" "$USERS" "$PER_USER" "$FRIENDS" "$SEED_SECS" "$BUILD" \
        "$(date -u '+%Y-%m-%d %H:%M UTC')" <<PY
import sys
path, users, per_user, friends, seed_secs, build, date = sys.argv[1:8]
result = """$RESULT"""
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
begin, end = "<!-- activities:begin -->", "<!-- activities:end -->\n"
note = "" if build == "release" else "\n**A dev build ran this (BENCH_ACTIVITIES_BUILD=debug): the figures check the script, they measure nothing.**\n"
section = f"""<!-- activities:begin -->
## Activities

\`scripts/bench-activities.sh\` (part of \`make bench\`), {date}: a company of {int(users):,} users
with {int(per_user)} activities each ({int(users) * int(per_user):,} rows over three kinds, 20 %
private, 40 % friends, 40 % company), seeded in {seed_secs} s (the users by \`server seed\`, the
activities by set-based SQL, indexes built after the load); the caller (the seeded admin) has
{int(friends)} friends. Latencies are through GraphQL (HTTP, one request at a time); "SQL" is the
statement the server sent (logged once by PostgreSQL), replayed through psql (\`PREPARE\`,
\`EXECUTE\` with its parameters, \`\\\\timing\`) as the caller under Row Level Security (\`SET
ROLE app_user\`, then \`app.begin_request\` with the caller's live session, as a request does), so the ratio (GraphQL p50 / SQL p50) is what
the server adds. Aims: p50 < 20 ms, ratio ≤ 1.3.
{note}
\`\`\`
{result}
\`\`\`

What the statements do (see "Sharing" in README.md; "EXPLAIN" counts are of the server's
statement, replayed with its parameters on a warm connection: rows, and buffers the plan
touched, which the machine's load does not change). \`compareWithFriends\` folds each
participant's activities of the kind in the window apart (a lateral subquery over the
\`(company_id, user_id, kind_id, occurred_at)\` index), so the policy judges only those rows.
The feed's first page takes each friend's newest readable activity, the 21st newest of those
bounds the page, and only the friends whose newest reaches the bound are read up to it (the
\`(company_id, user_id, occurred_at DESC, id DESC)\` index): the policy judges about one row
per friend and the rows of the page, not every activity of every friend. A friend's activities
are a keyset page of the same index.
<!-- activities:end -->
"""
if begin in text and end in text:
    text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
fi
