#!/usr/bin/env bash
# `make bench`, chat streaming: builds the server and the chat bench in release mode, then
# runs tests/src/bin/bench_chat.rs (500 concurrent conversations against the fake provider at
# 20 tokens/s each) and updates the figures of the "Chat streaming" section of BENCHMARKS.md.
# Knobs: BENCH_CHAT_STREAMS (500), BENCH_CHAT_RATE (20), BENCH_CHAT_TOKENS (60),
# BENCH_CHAT_LOCKSTEP=1 (every stream's tokens at the same instants), BENCH_NO_WRITE=1 (print
# only), BENCH_CHAT_CALLGRIND=1 (the server under valgrind's callgrind, its instruction counts
# over the streaming alone in target/callgrind.chat.<pid>, read with callgrind_annotate; the
# figures are then the profiler's, not the server's, and BENCHMARKS.md is left alone).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"

printf '\n==> chat streaming: building (release)\n'
(cd "$ROOT" && "$CARGO" build --release -q -p server-cli -p tests --bin server --bin bench_chat)
# 500 WebSockets, their server side and the fake's connections: raise the descriptor limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
REPORT="$ROOT/BENCHMARKS.md"
[ "${BENCH_NO_WRITE:-0}" = "1" ] && REPORT=""
[ "${BENCH_CHAT_CALLGRIND:-0}" = "1" ] && REPORT=""
printf '\n==> chat streaming: running\n'
cd "$ROOT"
"$TARGET_DIR/release/bench_chat" "$TARGET_DIR/release/server" ${REPORT:+"$REPORT"}
