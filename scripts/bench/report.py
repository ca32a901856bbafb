#!/usr/bin/env python3
"""Prints the figures of scripts/bench.sh and rewrites its sections of BENCHMARKS.md (stdlib only).

usage: report.py --results FILE --users-sql FILE --limit-sql FILE --benchmarks BENCHMARKS.md
                 --users-query Q --presets-query Q --pg5-users-query Q --pg5-presets-query Q
                 [--write]

FILE holds "name value" lines written by bench.sh: `meta.*` (date, commit, machine, knobs) and,
for each measurement (server_users, pg5_users, server_presets, pg5_presets, pgbench_users,
limit), `.rps .p50 .p99 .requests .idle_before .cpu_server .cpu_postgres .cpu_redis
.cpu_loadgen .cpu_other .cpu_idle` (latencies in ms, CPU in cores). PostGraphile's keys are
absent when it was left out (BENCH_POSTGRAPHILE=0).

With --write, the sections between `<!-- users:begin -->` / `<!-- users:end -->`,
`<!-- presets:begin -->` ... and `<!-- limit:begin -->` ... are replaced (or added); each keeps
its figures in a `<!-- figures {...} -->` line, which the next run shows as "previous". A users
section written before that line existed gives its server and pgbench rows as previous figures.
"""

import argparse
import json
import os
import re
import sys

RUNS = {
    "server_users": "server, users page",
    "pg5_users": "PostGraphile, users page",
    "server_presets": "server, presets page",
    "pg5_presets": "PostGraphile, presets page",
    "pgbench_users": "pgbench of the server's SQL",
    "limit": "physical limit",
}
AIM_RATIO = 2.5      # server req/s / PostGraphile 5 req/s
AIM_P99_MS = 25.0    # server p99 at 32 connections
AIM_CEILING = 0.5    # server req/s / pgbench of the server's own SQL
AIM_CPU_US = 300     # server CPU per users page


def load(path: str) -> tuple[dict, dict]:
    meta, runs = {}, {}
    with open(path) as f:
        for line in f:
            name, _, value = line.rstrip("\n").partition(" ")
            group, _, key = name.partition(".")
            if group == "meta":
                meta[key] = value
            elif value not in ("", "nan"):
                runs.setdefault(group, {})[key] = float(value)
    return meta, runs


def fmt(value, digits=0, unit=""):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def ratio(a, b):
    return a / b if a and b else None


def per_request_us(run: dict, share: str):
    if not run or not run.get("rps"):
        return None
    return run.get(f"cpu_{share}", 0.0) * 1e6 / run["rps"]


# --- Previous figures ------------------------------------------------------------------------

FIGURES = re.compile(r"^<!-- figures (\{.*\}) -->$", re.M)


def section(text: str, name: str):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    start = text.find(begin)
    if start < 0:
        return None
    stop = text.find(end, start)
    return text[start: stop + len(end)] if stop >= 0 else text[start:]


def previous_figures(text: str) -> dict:
    """{"date", "commit", run: {"rps", "p50", "p99"}} of the last run, from BENCHMARKS.md."""
    previous = {}
    for name in ("users", "presets", "limit"):
        body = section(text, name)
        if body and (m := FIGURES.search(body)):
            try:
                figures = json.loads(m.group(1))
            except ValueError:
                continue
            for key, value in figures.items():
                if isinstance(value, dict):
                    previous[key] = value
                else:
                    previous.setdefault(key, value)
    if previous:
        return previous
    # A users section of the format before this one: a table of the server and pgbench.
    body = section(text, "users") or ""
    row = r"^\| {}[^|]*\| \*\*([\d,.]+) (?:req/s|tps)\*\* \| ([\d.]+) ms \| ([\d.]+) ms \|"
    for key, label in (("server_users", r"server \(wrk"), ("pgbench_users", r"PostgreSQL alone \(pgbench")):
        if m := re.search(row.format(label), body, re.M):
            previous[key] = {"rps": float(m.group(1).replace(",", "")),
                             "p50": float(m.group(2)), "p99": float(m.group(3))}
    if m := re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d UTC), commit ([^.\n]+)\.", body, re.M):
        previous["date"], previous["commit"] = m.group(1), m.group(2)
    return previous


# --- Report ------------------------------------------------------------------------------


class Report:
    def __init__(self, args, meta, runs, previous):
        self.args, self.meta, self.runs, self.previous = args, meta, runs, previous
        self.pg5 = f"PostGraphile {meta['postgraphile']}" if meta.get("postgraphile") else None
        self.conns, self.secs = meta["connections"], meta["duration"]

    def run(self, key):
        return self.runs.get(key)

    def prev(self, key, field="rps"):
        return (self.previous.get(key) or {}).get(field)

    def prev_ratio(self, a, b):
        return ratio(self.prev(a), self.prev(b))

    # Terminal / code-block summary.
    def summary(self) -> str:
        lines = []

        def row(label, key, unit):
            run = self.run(key)
            if not run:
                lines.append(f"  {label:<44} {'not run':>7}")
                return
            prev = self.prev(key)
            lines.append(
                f"  {label:<44} {fmt(run['rps']):>7} {unit:<5}  p50 {fmt(run['p50'], 2):>6} ms"
                f"  p99 {fmt(run['p99'], 2):>6} ms  idle before {fmt(run.get('idle_before'))} %"
                + (f"  (previous {fmt(prev)})" if prev else ""))

        def ratio_line(label, a, b, aim=None):
            value = ratio((self.run(a) or {}).get("rps"), (self.run(b) or {}).get("rps"))
            prev = self.prev_ratio(a, b)
            verdict = ""
            if aim is not None and value is not None:
                verdict = f" (aim >= {aim}: {'met' if value >= aim else 'not met'})"
            lines.append(f"  ratio {label}: {fmt(value, 2)}{verdict}"
                         + (f"  (previous {fmt(prev, 2)})" if prev else ""))

        def p99_line(key):
            run = self.run(key)
            if run:
                met = "met" if run["p99"] < AIM_P99_MS else "not met"
                lines.append(f"  server p99 {fmt(run['p99'], 2)} ms (aim < {AIM_P99_MS:.0f} ms: {met})")

        pg5 = self.pg5 or "PostGraphile 5"
        lines.append(f"users page, users(first: 20), {self.conns} connections, {self.secs} s, "
                     f"{self.meta['cpus']} CPUs")
        row("server", "server_users", "req/s")
        row(pg5, "pg5_users", "req/s")
        ratio_line("server / PostGraphile", "server_users", "pg5_users", AIM_RATIO)
        p99_line("server_users")
        row("pgbench, the server's SQL", "pgbench_users", "tps")
        ratio_line("server / pgbench of its SQL", "server_users", "pgbench_users", AIM_CEILING)
        lines.append(f"presets page, presets(first: 20)")
        row("server", "server_presets", "req/s")
        row(pg5, "pg5_presets", "req/s")
        ratio_line("server / PostGraphile", "server_presets", "pg5_presets", AIM_RATIO)
        p99_line("server_presets")
        lines.append("physical limit: set the variables, 21 rows by index, commit, one round trip")
        row("pgbench, limit.sql", "limit", "tps")
        ratio_line("users page server / limit", "server_users", "limit")
        ratio_line("presets page server / limit", "server_presets", "limit")
        lines.append("CPU per request (server or PostGraphile process + PostgreSQL), in cores during each run:")
        for key, label in (("server_users", "server, users"), ("pg5_users", "PostGraphile, users"),
                           ("server_presets", "server, presets"), ("pg5_presets", "PostGraphile, presets"),
                           ("pgbench_users", "pgbench, server's SQL"), ("limit", "pgbench, limit")):
            run = self.run(key)
            if not run:
                continue
            us = per_request_us(run, "server")
            aim = ""
            if key == "server_users":
                aim = f" (aim <= {AIM_CPU_US} us: {'met' if us <= AIM_CPU_US else 'not met'})"
            process = f"{fmt(us)} us + " if not key.startswith(("pgbench", "limit")) else ""
            lines.append(
                f"  {label:<24} {process}postgres {fmt(per_request_us(run, 'postgres'))} us{aim}; "
                f"cores: process {run['cpu_server']:.2f}, postgres {run['cpu_postgres']:.2f}, "
                f"redis {run['cpu_redis']:.2f}, load {run['cpu_loadgen']:.2f}, "
                f"other {run['cpu_other']:.2f}, idle {run['cpu_idle']:.2f}")
        if self.meta.get("flamegraph"):
            lines.append(f"flame graph of the server, users page: {self.meta['flamegraph']}")
        return "\n".join(lines)

    def busy_note(self) -> str:
        busy = [k for k in RUNS if self.run(k) and self.run(k).get("cpu_other", 0) > 0.2]
        idle = [k for k in RUNS if self.run(k) and self.run(k).get("idle_before", 100) < 90]
        if not busy and not idle:
            return ""
        names = [RUNS[k] for k in RUNS if k in busy or k in idle]
        return ("WARNING: the CPUs were busy with other work during or just before some runs ("
                + ", ".join(names) + "): these figures are not representative; run again on a "
                "quiet machine.")

    # Markdown.
    def table(self, rows) -> str:
        prev_date = self.previous.get("date")
        header = ("| | throughput | p50 | p99 | CPUs idle before | previous throughput | previous p99 |\n"
                  "|---|---:|---:|---:|---:|---:|---:|")
        out = [header]
        for kind, label, a, b in rows:
            if kind == "run":
                run, unit = self.run(a), b
                if not run:
                    out.append(f"| {label} | not run | | | | {fmt(self.prev(a))} | |")
                    continue
                prev_rps, prev_p99 = self.prev(a), self.prev(a, "p99")
                out.append(
                    f"| {label} | **{fmt(run['rps'])} {unit}** | {fmt(run['p50'], 2)} ms | "
                    f"{fmt(run['p99'], 2)} ms | {fmt(run.get('idle_before'))} % | "
                    f"{fmt(prev_rps) + ' ' + unit if prev_rps else '–'} | "
                    f"{fmt(prev_p99, 2) + ' ms' if prev_p99 else '–'} |")
            else:
                value = ratio((self.run(a) or {}).get("rps"), (self.run(b) or {}).get("rps"))
                out.append(f"| **{label}** | **{fmt(value, 2)}** | | | | {fmt(self.prev_ratio(a, b), 2)} | |")
        note = f"Previous run: {prev_date}, commit {self.previous.get('commit', 'unknown')}." if prev_date \
            else "No previous run in this file."
        return "\n".join(out) + "\n\n" + note

    def cpu_table(self, keys) -> str:
        out = ["| run | answering process | PostgreSQL | Redis | load generator | other | idle | "
               "CPU per request: process + PostgreSQL |",
               "|---|---:|---:|---:|---:|---:|---:|---:|"]
        labels = {"server_users": "wrk → server", "pg5_users": "wrk → PostGraphile",
                  "server_presets": "wrk → server", "pg5_presets": "wrk → PostGraphile",
                  "pgbench_users": "pgbench → PostgreSQL", "limit": "pgbench → PostgreSQL"}
        for key in keys:
            run = self.run(key)
            if not run:
                continue
            direct = key in ("pgbench_users", "limit")
            process = "–" if direct else f"{run['cpu_server']:.2f}"
            per_process = "" if direct else fmt(per_request_us(run, "server")) + " µs + "
            out.append(
                f"| {labels[key]} | {process} | "
                f"{run['cpu_postgres']:.2f} | {run['cpu_redis']:.2f} | {run['cpu_loadgen']:.2f} | "
                f"{run['cpu_other']:.2f} | {run['cpu_idle']:.2f} | "
                f"{per_process}{fmt(per_request_us(run, 'postgres'))} µs |")
        return "\n".join(out)

    def figures(self, keys) -> str:
        data = {"date": self.meta["date"], "commit": self.meta["commit"]}
        for key in keys:
            if run := self.run(key):
                data[key] = {k: round(run[k], 2) for k in ("rps", "p50", "p99")}
        return f"<!-- figures {json.dumps(data, sort_keys=True)} -->"

    def header(self) -> str:
        busy = self.busy_note()
        return f"{self.meta['date']}, commit {self.meta['commit']}." + (f"\n\n**{busy}**" if busy else "")

    def machine(self) -> str:
        m = self.meta
        return (f"- CPUs: {m['cpus']} (`nproc`), {m['cpu_model']}\n"
                f"- Memory: {m['memory']}\n"
                f"- PostgreSQL: {m['postgres']} (the private cluster started by the server)\n"
                + (f"- PostGraphile: {m['postgraphile']} on Node {m['node']} (npm packages pinned in "
                   f"`scripts/bench/postgraphile/package-lock.json`)\n" if m.get("postgraphile") else "")
                + f"- Kernel: {m['kernel']}; load generators: {m['wrk']}, pgbench {m['pgbench']}")

    def users_section(self) -> str:
        m, pg5 = self.meta, self.pg5 or "PostGraphile 5"
        users_sql = open(self.args.users_sql).read().rstrip("\n")
        statements = sum(1 for line in users_sql.splitlines() if line and not line.startswith(("--", "\\")))
        flame = ""
        if m.get("flamegraph"):
            path = m["flamegraph"]
            here = os.path.dirname(os.path.abspath(self.args.benchmarks))
            if os.path.abspath(path).startswith(here + os.sep):
                path = os.path.relpath(path, here)
            flame = (f"\n\nFlame graph of the server under this load (`BENCH_PROFILE=1`, perf "
                     f"`cpu-clock` at 999 Hz with DWARF call graphs, rendered by inferno): "
                     f"`{path}` (and `{path.removesuffix('.svg')}-reversed.svg`, by the function "
                     f"on the CPU) on the machine that ran it, not committed.")
            try:
                top = open(self.args.profile_top).read().rstrip("\n")
            except OSError:
                top = ""
            if top:
                flame += ("\n\nWhere the server's samples went (share of the server's samples; "
                          "stacks without inlined frames, so code inlined into the server's "
                          "own functions counts as theirs):\n\n"
                          f"```\n{top}\n```")
        load = f"{self.conns} connections, {self.secs} s"
        table = self.table([
            ("run", f"server (wrk, {load})", "server_users", "req/s"),
            ("run", f"{pg5} (wrk, {load})", "pg5_users", "req/s"),
            ("ratio", f"ratio server / {pg5} (aim ≥ {AIM_RATIO})", "server_users", "pg5_users"),
            ("run", f"PostgreSQL alone, the server's SQL (pgbench, {load})", "pgbench_users", "tps"),
            ("ratio", f"ratio server / pgbench (aim ≥ {AIM_CEILING})", "server_users", "pgbench_users"),
            ("run", "the physical limit (pgbench, one round trip)", "limit", "tps"),
            ("ratio", "ratio server / physical limit", "server_users", "limit"),
        ])
        return f"""<!-- users:begin -->
## Users page: server vs PostGraphile 5 vs PostgreSQL

`scripts/bench.sh` (part of `make bench`). **Aims: server ≥ {AIM_RATIO} × PostGraphile 5's
requests/s with p99 < {AIM_P99_MS:.0f} ms at {self.conns} connections; server / pgbench of its own
SQL ≥ {AIM_CEILING}; server CPU ≤ {AIM_CPU_US} µs per page.**

### What is measured

- **Server**: the release build, with its private PostgreSQL and Redis, seeded with two
  companies of 10,000 users each. [wrk](https://github.com/wg/wrk) POSTs the query
  `{self.args.users_query}`
  to `/graphql` over {self.conns} keep-alive connections for {self.secs} s (after a {m['warmup']} s
  warm-up), each request with the access token of one of {m['tokens']} different users picked at
  random, so every request does the whole job: token and session check, GraphQL parsing and
  validation, a transaction that switches to the `app_user` role and checks the caller
  (`app.begin_request`), the page read under Row Level Security, and the JSON answer. Every
  token is first checked to get 20 users of its own company; the run fails on any non-2xx
  answer, socket error, or warning/error logged by the server.
- **{pg5}** (`scripts/bench/postgraphile/`, the amber preset, one Node process, as
  PostGraphile's own CLI runs it with `NODE_ENV=production`) serves the same database,
  connected as the server's pool role (`app_authenticator`) with a pool of the same size
  ({m['pool']}). Its `pgSettings` come from the same access tokens, verified as the server
  verifies them (HS256 with the server's secret, issuer, audience and expiry): role `app_user`
  and the `app.user_id`, `app.company_id` and `app.role` that `app.begin_request` sets, so Row
  Level Security decides the rows. wrk sends the same tokens, at the same concurrency and
  duration, with PostGraphile's spelling of the page:
  `{self.args.pg5_users_query}`
  (the `visible` condition is the server's `relation NOT IN ('blocked', 'blocked_by')`). Every
  token is checked against it too, and before measuring the bench checks, for 20 users, that
  both answer the same rows in the same order (it fails otherwise); the run fails on any error
  in its answers. PostGraphile does less than the server per request: no session check (the
  server's `app.begin_request` checks that the session is live and the user an active member),
  no Casbin check, no read-only transaction.
- **Ceiling**: pgbench runs the same SQL the server sends for that request. The bench
  captures it (`log_statement = all` around one request) and turns it into a pgbench script
  for a random seeded user (`scripts/bench/capture_sql.py`; this run's script is below), run
  with `-M prepared` as the server's role, at the same concurrency and duration, against the
  same database.
- **Physical limit**: see "The physical limit" below.

The load generators run on the same machine as the servers and PostgreSQL and compete with
them for the CPUs, as the servers and PostgreSQL do with each other; the CPU split below shows
where the time went. Figures compare between runs on one machine, not across machines, and
are low when something else runs meanwhile: before each run the bench waits up to 60 s
(`BENCH_QUIET_WAIT`) for the CPUs to be 90 % idle, then goes on with a warning, repeated here;
the idle share just before each run is in the tables.

### Reproduce

```sh
make bench                 # every benchmark; this one takes ~4 min after the build
bash scripts/bench.sh      # this one only (users and presets pages, the limit)
BENCH_PROFILE=1 bash scripts/bench.sh   # and a flame graph of the server (perf + inferno)
```

Knobs: `BENCH_CONNECTIONS` (32), `BENCH_DURATION` (15), `BENCH_WARMUP` (3),
`BENCH_TOKENS` (2000), `DB_MAX_CONNECTIONS` (the pools, 16), `BENCH_QUIET_WAIT` (60),
`BENCH_POSTGRAPHILE=0` (leave PostGraphile out), `BENCH_PROFILE=1` (flame graph,
`BENCH_PROFILE_DURATION` 10 s), `BENCH_OUT` (output directory, `.bench/`, git-ignored),
`BENCH_NO_WRITE=1` (leave this file alone). Needs wrk (installed with apt-get when missing),
PostgreSQL with pgbench, redis-server, python3 and npm (PostGraphile 5 and Node 22 come from the
npm registry, pinned in `scripts/bench/postgraphile/package-lock.json`, installed with `npm ci`
into `.bench/postgraphile`); perf for the flame graph (inferno is installed with `cargo install`
when missing). Everything listens on 127.0.0.1 and is removed at the end.

### Latest run

{self.header()}

{table}

Where the CPUs went, in cores out of {m['cpus']}, sampled over the middle of each run, and CPU
time per request:

{self.cpu_table(["server_users", "pg5_users", "pgbench_users"])}

The pools had {m['pool']} connections (`DB_MAX_CONNECTIONS`); pgbench percentiles come from a
10 % sample of its transactions.{flame}

```
{self.summary()}
```

The pgbench script, as captured from the server ({statements} statements per request):

```sql
{users_sql}
```

Machine:

{self.machine()}
{self.figures(["server_users", "pg5_users", "pgbench_users"])}
<!-- users:end -->
"""

    def presets_section(self) -> str:
        pg5 = self.pg5 or "PostGraphile 5"
        load = f"{self.conns} connections, {self.secs} s"
        table = self.table([
            ("run", f"server (wrk, {load})", "server_presets", "req/s"),
            ("run", f"{pg5} (wrk, {load})", "pg5_presets", "req/s"),
            ("ratio", f"ratio server / {pg5} (aim ≥ {AIM_RATIO})", "server_presets", "pg5_presets"),
            ("ratio", "ratio server / physical limit (the users page's)", "server_presets", "limit"),
        ])
        return f"""<!-- presets:begin -->
## Presets page: server vs PostGraphile 5

`scripts/bench.sh` (part of `make bench`, in the same run as the users page, on the same
database, tokens, concurrency and duration). **Aim: server ≥ {AIM_RATIO} × PostGraphile 5's
requests/s with p99 < {AIM_P99_MS:.0f} ms.**

The seed gives each company 60 presets shared with the company and 340 private ones (one each
for 340 of its users); a member sees the shared ones and their own. The server answers
`{self.args.presets_query}`,
PostGraphile `{self.args.pg5_presets_query}`;
Row Level Security (`presets_select`) decides the rows for both; neither page asks for
`totalCount`, nor for the fields that run more queries (`size`, `canEdit`). Every token is checked on both
and, for 20 users, both answers are checked to hold the same rows in the same order (visibility
compared whatever its case, timestamps as instants) before measuring.

{self.header()}

{table}

{self.cpu_table(["server_presets", "pg5_presets"])}
{self.figures(["server_presets", "pg5_presets"])}
<!-- presets:end -->
"""

    def limit_section(self) -> str:
        limit_sql = open(self.args.limit_sql).read().rstrip("\n")
        table = self.table([
            ("run", "the physical limit (pgbench, one round trip)", "limit", "tps"),
            ("ratio", "ratio users page server / limit", "server_users", "limit"),
            ("ratio", "ratio presets page server / limit", "server_presets", "limit"),
        ])
        return f"""<!-- limit:begin -->
## The physical limit: one round trip

`scripts/bench.sh` (part of `make bench`, same run): what PostgreSQL alone can do for the least
a request transaction must do for a page of 20 users, sent the cheapest way. pgbench
(`-M prepared`, as `app_authenticator`, {self.conns} connections, {self.secs} s) runs
`scripts/bench/limit.sql` for a random seeded user: switch to `app_user`, set the variables the
policies read, read 21 rows (the page and the look-ahead) of the caller's company by the
listing index under Row Level Security (from `users` itself, without the per-row friendship
look-up and masking of the `user_profiles` view), commit, all in one pipeline: one round trip.
Its script is checked first to read 21 users of the caller's company.

{self.header()}

{table}

{self.cpu_table(["limit"])}

```sql
{limit_sql}
```
{self.figures(["limit"])}
<!-- limit:end -->
"""


def replace_section(text: str, name: str, new: str, after: str | None) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->\n"
    start = text.find(begin)
    if start < 0 and name == "users":
        start = text.find("## Users list")   # a section that lost its marker
    if start >= 0:
        stop = text.find(end, start)
        if stop >= 0:
            stop += len(end)
        else:
            found = [i + 1 for i in (text.find("\n## ", start + 1), text.find("\n<!-- ", start + 1)) if i >= 0]
            stop = min(found, default=len(text))
        return text[:start] + new + text[stop:]
    anchor = text.find(f"<!-- {after}:end -->\n") if after else -1
    if anchor >= 0:
        at = anchor + len(f"<!-- {after}:end -->\n")
        return text[:at] + "\n" + new + text[at:]
    if text.startswith("# "):
        # After the title and its introduction.
        found = [i + 1 for i in (text.find("\n## "), text.find("\n<!-- ")) if i >= 0]
        at = min(found, default=len(text))
        return text[:at].rstrip("\n") + "\n\n" + new + "\n" + text[at:]
    return ("# Benchmarks\n\nFigures of `make bench`, one section per benchmark; each script "
            "rewrites its own section.\n\n" + new + ("\n" + text if text.strip() else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("results", "users-sql", "limit-sql", "benchmarks", "users-query", "presets-query",
                 "pg5-users-query", "pg5-presets-query"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--profile-top", default="")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    meta, runs = load(args.results)
    try:
        text = open(args.benchmarks).read()
    except FileNotFoundError:
        text = ""
    report = Report(args, meta, runs, previous_figures(text))
    print(report.summary())
    m = meta
    print(f"  machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']}, PostgreSQL {m['postgres']}"
          + (f", PostGraphile {m['postgraphile']} on Node {m['node']}" if m.get("postgraphile") else ""))
    if note := report.busy_note():
        print(f"  {note}", file=sys.stderr)
    if args.write:
        text = replace_section(text, "users", report.users_section(), None)
        text = replace_section(text, "presets", report.presets_section(), "users")
        text = replace_section(text, "limit", report.limit_section(), "presets")
        with open(args.benchmarks, "w") as f:
            f.write(text.rstrip("\n") + "\n")
        print("  wrote the users, presets and limit sections of BENCHMARKS.md")


if __name__ == "__main__":
    main()
