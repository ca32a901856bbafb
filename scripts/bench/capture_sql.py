#!/usr/bin/env python3
"""Turns the SQL the server sent for one request into a pgbench script (stdlib only).

usage: capture_sql.py POSTGRES_LOG USER_N OUT_PGBENCH_SQL
       capture_sql.py --check PGBENCH_SQL USER_N     (prints it as psql SQL for user USER_N)

scripts/bench.sh switches `log_statement = all` on, sends one bench request (user USER_N,
whose session the server has cached), and frames it with two marker statements. This reads
the statements logged between the markers, in order, with their parameters, and writes
OUT_PGBENCH_SQL: a pgbench script running the same statements for a random seeded user. The
ids of USER_N become expressions of pgbench's :n (see seed.sql), integer parameters stay
parameters (pgbench variables), other values become literals. `--check` turns that script
back into plain SQL for one user, so bench.sh can check what it does.

So the ceiling measured by pgbench follows whatever the server sends, without a hand-kept
copy of its SQL. Fails when nothing, or no transaction, was captured.
"""

import hashlib
import re
import sys
import uuid

USERS = 20000
# log_line_prefix = '%m [%p] ' (set by bench.sh): "2026-01-01 12:00:00.000 UTC [123] LOG:  ..."
ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[(\d+)\] ([A-Z]+):  (.*)$")
PARAM = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')")
MARK_BEGIN, MARK_END = "bench-capture-begin", "bench-capture-end"


def md5_uuid(text: str) -> str:
    return str(uuid.UUID(hex=hashlib.md5(text.encode()).hexdigest()))


def log_entries(path: str):
    """(pid, level, message) of each log entry, continuation lines included."""
    entries = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = ENTRY.match(line)
            if m:
                entries.append([int(m.group(1)), m.group(2), m.group(3)])
            elif entries:
                entries[-1][2] += "\n" + line
    return entries


def captured_statements(path: str):
    """[(pid, sql, {param number: raw value})] between the markers, in log order."""
    entries = log_entries(path)
    begins = [i for i, e in enumerate(entries) if MARK_BEGIN in e[2]]
    ends = [i for i, e in enumerate(entries) if MARK_END in e[2]]
    if not begins or not ends or ends[-1] < begins[-1]:
        sys.exit("capture: the markers are not in the PostgreSQL log")
    statements = []
    for pid, level, message in entries[begins[-1] + 1 : ends[-1]]:
        if level == "LOG" and (m := re.match(r"(?:statement|execute [^:]*): (.*)", message, re.S)):
            statements.append([pid, m.group(1).strip(), {}])
        elif level == "DETAIL" and message.startswith("parameters: "):
            # Parameters belong to the last statement of the same backend.
            for s in reversed(statements):
                if s[0] == pid:
                    s[2] = {int(n): v for n, v in PARAM.findall(message)}
                    break
    return statements


def main() -> None:
    if sys.argv[1] == "--check":
        sys.stdout.write(check_sql(sys.argv[2], int(sys.argv[3])))
        return
    log_path, n, out_script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    c = n % 2 + 1
    statements = captured_statements(log_path)
    verbs = [sql.split(None, 1)[0].rstrip(";").upper() for _, sql, _ in statements if sql]
    # A read-only transaction ends with a ROLLBACK (it has nothing to commit).
    if "BEGIN" not in verbs or not ({"COMMIT", "ROLLBACK"} & set(verbs)):
        sys.exit("capture: no whole transaction among the captured statements:\n"
                 + "\n".join(sql for _, sql, _ in statements))
    # The ids of the captured request, and the pgbench expressions that yield them for :n.
    ids = {
        md5_uuid(f"bench-user-{n}"): "md5('bench-user-' || :n::text)::uuid",
        md5_uuid(f"bench-company-{c}"): "md5('bench-company-' || :c::text)::uuid",
        md5_uuid(f"bench-session-{n}"): "md5('bench-session-' || :n::text)::uuid",
    }
    variables = {}  # integer value -> pgbench variable name

    def expression(raw: str) -> str:
        if raw == "NULL":
            return "NULL"
        value = raw[1:-1].replace("''", "'")
        if value in ids:
            return ids[value]
        if re.fullmatch(r"-?\d+", value):
            return ":" + variables.setdefault(value, f"p{len(variables) + 1}")
        if value in ("t", "f"):
            return "true" if value == "t" else "false"
        return raw  # a quoted literal, as logged

    def render() -> list:
        lines = []
        pids = []
        for pid, sql, params in statements:
            if pid not in pids:
                pids.append(pid)
                if len(pids) > 1:
                    lines.append("-- (another connection of the server's pool:)")
            text = re.sub(
                r"\$(\d+)\b",
                lambda m: expression(params[int(m.group(1))]) if int(m.group(1)) in params else m.group(0),
                sql,
            )
            # Ids the server writes into the SQL text itself (the simple-protocol statement
            # that begins a request transaction) become expressions of :n as well.
            for value, expr in ids.items():
                text = text.replace(f"'{value}'", expr)
            lines.append(" ".join(text.split()) + ";")
        return lines

    body = render()
    header = [
        "-- Generated by scripts/bench/capture_sql.py: the statements the server sent to PostgreSQL",
        "-- for one bench request, for a random seeded user :n (ids as in seed.sql).",
        f"\\set n random(1, {USERS})",
        "\\set c :n % 2 + 1",
    ] + [f"\\set {name} {value}" for value, name in variables.items()]
    with open(out_script, "w") as f:
        f.write("\n".join(header + body) + "\n")


def check_sql(script_path: str, n: int) -> str:
    """The pgbench script as psql SQL for user n: variables replaced by their values."""
    with open(script_path) as f:
        lines = f.read().splitlines()
    values = {"n": str(n), "c": str(n % 2 + 1)}
    for line in lines:
        if m := re.fullmatch(r"\\set (p\d+) (-?\d+)", line):
            values[m.group(1)] = m.group(2)
    body = [line for line in lines if not line.startswith("\\")]
    text = "\n".join(body)
    text = re.sub(r"(?<!:):([a-z]\w*)\b", lambda m: values.get(m.group(1), m.group(0)), text)
    return "\\set ON_ERROR_STOP on\n" + text + "\n"


if __name__ == "__main__":
    main()
