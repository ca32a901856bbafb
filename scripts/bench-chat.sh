#!/usr/bin/env bash
# `make bench`, chat streaming: builds the server and the chat bench in release mode, then
# runs tests/src/bin/bench_chat.rs (500 concurrent conversations against the fake provider at
# 20 tokens/s each) and updates the figures of the "Chat streaming" section of BENCHMARKS.md.
# Knobs: BENCH_CHAT_STREAMS (500), BENCH_CHAT_RATE (20), BENCH_CHAT_TOKENS (60),
# BENCH_CHAT_LOCKSTEP=1 (every stream's tokens at the same instants), BENCH_NO_WRITE=1 (print
# only), BENCH_CHAT_CALLGRIND=1 (the server under valgrind's callgrind, its instruction counts
# over the streaming alone in target/callgrind.chat.<pid>, read with callgrind_annotate; the
# figures are then the profiler's, not the server's, and BENCHMARKS.md is left alone),
# BENCH_PROFILE=1 (`make bench` sets it: once the figures are taken, a second run with perf
# sampling the server while the replies stream, rendered as a flame graph in BENCH_OUT, .bench/
# of the checkout, and split by part of the program into the "chat-profile" part of
# BENCHMARKS.md; the figures come from the first run, which no profiler slowed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"

printf '\n==> chat streaming: building (release)\n'
(cd "$ROOT" && "$CARGO" build --release -q -p server-cli --bin server && "$CARGO" build --release -q -p tests --bin bench_chat)
# 500 WebSockets, their server side and the fake's connections: raise the descriptor limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
REPORT="$ROOT/BENCHMARKS.md"
[ "${BENCH_NO_WRITE:-0}" = "1" ] && REPORT=""
[ "${BENCH_CHAT_CALLGRIND:-0}" = "1" ] && REPORT=""
printf '\n==> chat streaming: running\n'
cd "$ROOT"
"$TARGET_DIR/release/bench_chat" "$TARGET_DIR/release/server" ${REPORT:+"$REPORT"}

if [ "${BENCH_PROFILE:-0}" = "1" ] && [ "${BENCH_CHAT_CALLGRIND:-0}" != "1" ]; then
    OUT="${BENCH_OUT:-$ROOT/.bench}"
    mkdir -p "$OUT"
    base="$OUT/flamegraph-chat-$(date -u '+%Y%m%d-%H%M%S')"
    printf '\n==> chat streaming: profiling the server (perf) in a second run\n'
    BENCH_CHAT_PERF="$base.perf.data" "$TARGET_DIR/release/bench_chat" "$TARGET_DIR/release/server" >/dev/null
    # --no-inline: resolving inlined frames runs addr2line per address (minutes); no
    # debuginfod look-ups (no network).
    DEBUGINFOD_URLS="" perf script --no-inline -i "$base.perf.data" 2>/dev/null \
        | inferno-collapse-perf >"$base.folded"
    rm -f "$base.perf.data"
    [ -s "$base.folded" ] || { echo "bench-chat: perf recorded no stacks" >&2; exit 1; }
    title="server, chat streaming ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    inferno-flamegraph --countname ns --title "$title" <"$base.folded" >"$base.svg"
    split="$(python3 "$ROOT/scripts/bench/profile_split.py" "$base.folded")"
    printf '  flame graph: %s\n%s\n' "$base.svg" "$(sed 's/^/    /' <<<"$split")"
    if [ -n "$REPORT" ]; then
        python3 - "$REPORT" "$base.svg" "$split" <<'PY'
import os, sys
path, svg, split = sys.argv[1:4]
begin, end = "<!-- chat-profile:begin -->", "<!-- chat-profile:end -->"
text = open(path).read()
svg = os.path.relpath(svg, os.path.dirname(os.path.abspath(path)))
body = (f"{begin}\nWhere the server's CPU went while the replies streamed (perf `cpu-clock` at 999 Hz, "
        f"DWARF call graphs, a second run of the same bench; flame graph `{svg}` on the machine "
        f"that ran it, not committed):\n\n```\n{split}\n```\n{end}")
if begin in text and end in text:
    start = text.index(begin)
    text = text[:start] + body + text[text.index(end) + len(end):]
else:
    marker = "<!-- chat:end -->"
    at = text.index(marker) + len(marker) if marker in text else len(text)
    text = text[:at] + "\n\n" + body + text[at:]
open(path, "w").write(text)
PY
    fi
fi
