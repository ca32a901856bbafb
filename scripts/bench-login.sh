#!/usr/bin/env bash
# Password hashing memory: builds the e2e server and the login bench, then runs
# tests/src/bin/bench_login.rs (bursts of 8, 16, 32, 32, 32 concurrent logins against a server
# process of its own) and prints its resident memory before and after each burst, as in the
# "Password hashing memory" section of BENCHMARKS.md. Knobs: BENCH_LOGIN_BURSTS (8,16,32,32,32),
# PASSWORD_HASH_CONCURRENCY (the server's default: the number of CPUs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"

printf '\n==> login memory: building\n'
(cd "$ROOT" && "$CARGO" build -q -p tests --bin e2e_server --bin bench_login)
printf '\n==> login memory: running\n'
cd "$ROOT"
"$ROOT/target/debug/bench_login" "$ROOT/target/debug/e2e_server"
