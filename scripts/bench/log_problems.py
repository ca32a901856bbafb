#!/usr/bin/env python3
"""Counts the warnings and errors a server logged while a load test ran (stdlib only).

usage: log_problems.py LOG OFFSET SINCE UNTIL

Reads LOG from byte OFFSET on (its size just before the run). Lines that start with an RFC 3339
timestamp and carry a level (the server's tracing format: `2026-01-01T12:00:00.000000Z  WARN
...`; bench's PostGraphile configuration writes `... ERROR BENCH_PG5_ERROR ...` likewise) count
when their time is within [SINCE, UNTIL] (Unix seconds): the run itself. Those logged before
SINCE belong to the warm-up's end, those after UNTIL to the run's end, when the load generator
drops its connections with requests in flight (the server then cancels and rolls back their
transactions, and may warn about it): they are shown, not counted. Any other line that names
a warning, an error or a panic counts whenever it came. Prints `BENCH_PROBLEMS counted=N
outside=M`, and the lines themselves to stderr.
"""

import datetime
import re
import sys

STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s+(WARN|ERROR)\b")
UNSTAMPED = re.compile(r"WARN|ERROR|panicked|BENCH_PG5_ERROR")


def main() -> None:
    path, offset, since, until = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    counted, outside = [], []
    for line in lines:
        if m := STAMPED.match(line):
            at = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
            (counted if since <= at <= until else outside).append(line)
        elif UNSTAMPED.search(line):
            counted.append(line)
    for line in counted[:10]:
        print(f"  during the run: {line[:300]}", file=sys.stderr)
    if outside:
        print(f"  not counted, {len(outside)} line(s) logged at the warm-up's or the run's end "
              f"(connections dropped with requests in flight), e.g.: {outside[0][:300]}", file=sys.stderr)
    print(f"BENCH_PROBLEMS counted={len(counted)} outside={len(outside)}")


if __name__ == "__main__":
    main()
