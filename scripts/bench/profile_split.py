#!/usr/bin/env python3
"""Splits a profile's samples by the part of the program they were spent in (stdlib only).

usage: profile_split.py FOLDED [--top N]

FOLDED is inferno-collapse-perf's output (one "frame;frame;...;leaf count" line per stack).
Each sample goes to the part of the first frame, from the one on the CPU outwards, that belongs
to a known part: a sample in `memcpy` called by the PostgreSQL driver counts as the allocator
and memory copies, one in the kernel's TCP stack under a `write` as the kernel. So the shares
add up to 100 % and answer "what was the CPU doing", not "under whom". Then the N functions on
the CPU (self time).
"""

import collections
import re
import sys

# (part, pattern over one frame), the first match from the leaf outwards decides.
PARTS = [
    ("allocator and memory copies", r"^(mi_|_mi_|__memcpy|__memmove|__memset|memcpy|memmove|memset|malloc|free|realloc|__rust_(alloc|dealloc|realloc))"),
    ("kernel (system calls, TCP on loopback, scheduling)", r"(^entry_SYSCALL|^do_syscall|^__x64_sys|^tcp_|^__tcp|^ip_|^__ip|^__netif|^net_rx|^__softirq|^do_softirq|^schedule|^__schedule|^finish_task_switch|^_raw_spin|^ep_poll|^__GI___(libc_)?(write|read|send|recv|epoll)|^syscall$|\[kernel)"),
    ("JWT verification", r"jsonwebtoken|^ring::|hmac|sha2::"),
    ("GraphQL parsing", r"async_graphql_parser|pest::"),
    ("GraphQL validation", r"async_graphql::validation"),
    ("answer serialization (JSON)", r"serde_json::ser|async_graphql_value::serializer|<async_graphql_value::ConstValue as serde::ser"),
    ("PostgreSQL driver (sqlx, sea-orm)", r"sqlx_core|sqlx_postgres|sea_orm|sea_query"),
    ("Redis client", r"^redis::|<redis::|combine::"),
    ("WebSocket", r"tungstenite|tokio_tungstenite|poem::web::websocket"),
    ("HTTP (hyper, poem)", r"^hyper|<hyper|^poem|<poem|h2::|httparse"),
    ("Casbin", r"casbin"),
    ("GraphQL execution (async-graphql)", r"async_graphql"),
    ("the server's own code", r"^server::|<server::|^tests::"),
    ("tracing and metrics", r"tracing|metrics::|prometheus"),
    ("tokio (scheduler, timers, I/O driver)", r"tokio::|mio::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in PARTS]


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name
    return "other"


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    top = 12
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    parts = collections.Counter()
    self_time = collections.Counter()
    for line in open(args[0]):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        parts[part_of(frames)] += int(count)
        self_time[frames[-1]] += int(count)
    total = sum(parts.values()) or 1
    print("by part of the program (each sample to the first known part from the CPU outwards):")
    for name, count in parts.most_common():
        print(f"{100 * count / total:5.1f} %  {name}")
    print()
    print("on the CPU (self time):")
    for name, count in self_time.most_common(top):
        print(f"{100 * count / total:5.1f} %  {name[:150]}")


if __name__ == "__main__":
    main()
