#!/usr/bin/env python3
"""Runs a load generator and reports who used the CPUs meanwhile (stdlib only, Linux /proc).

usage: cpu_split.py SERVER_PID DURATION_S -- COMMAND...

COMMAND's output is passed through. While it runs, CPU time is sampled over a window that
skips its first and last second (connection set-up and tear-down), then one line is printed:

  BENCH_CPU server=0.98 postgres=0.87 redis=0.05 loadgen=0.07 other=0.02 idle=0.06 window=12.0

in cores (1.00 = one CPU busy for the whole window): the server process (all its threads),
every `postgres` process, every `redis-server`, the load generator itself, everything else,
and idle time. It is
the evidence for where the machine's CPUs go, e.g. when the server and PostgreSQL share them.
"""

import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def named_ticks(name: str) -> dict:
    """CPU ticks of every live process called `name`, by pid."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != name:
                    continue
        except OSError:
            continue
        out[int(entry)] = ticks(int(entry))
    return out


def machine() -> tuple:
    """(busy, idle) ticks of all CPUs."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]  # user .. steal (guest is in user)
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, idle


def main() -> None:
    server_pid, duration = int(sys.argv[1]), float(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :]
    window = max(duration - 2.0, 1.0)
    proc = subprocess.Popen(command)
    time.sleep(1.0 if duration > 2.0 else 0.0)
    def snapshot():
        return (ticks(server_pid), named_ticks("postgres"), named_ticks("redis-server"),
                ticks(proc.pid), machine(), time.monotonic())

    s0, p0, r0, l0, (b0, i0), t0 = snapshot()
    time.sleep(window)
    s1, p1, r1, l1, (b1, i1), t1 = snapshot()
    status = proc.wait()
    elapsed = t1 - t0
    # A postgres process that exited inside the window is lost; backends live as long as
    # their connection, i.e. the whole run.
    pg = sum(p1[pid] - p0.get(pid, 0) for pid in p1)
    rd = sum(r1[pid] - r0.get(pid, 0) for pid in r1)
    cores = lambda t: t / HZ / elapsed  # noqa: E731
    server, postgres, redis, loadgen = cores(s1 - s0), cores(pg), cores(rd), cores(l1 - l0)
    other = max(cores(b1 - b0) - server - postgres - redis - loadgen, 0.0)
    print(
        f"BENCH_CPU server={server:.2f} postgres={postgres:.2f} redis={redis:.2f} loadgen={loadgen:.2f} "
        f"other={other:.2f} idle={cores(i1 - i0):.2f} window={elapsed:.1f}",
        flush=True,
    )
    sys.exit(status)


if __name__ == "__main__":
    main()
