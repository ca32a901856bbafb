"""Activities latencies: compareWithFriends and friendFeed(first: 20) through GraphQL, and beside
each the statement the server sends, by hand through psql as the caller under Row Level Security.
The statement is the server's own: one request of each query runs with PostgreSQL logging every
statement, and the longest statement of that request reading `activities` is replayed (PREPARE
and EXECUTE with the logged parameters, as the server's driver runs it). Prints the machine's
CPUs and idle share, one table of p50 / p99 per query, and what EXPLAIN (ANALYZE, BUFFERS) counts
of each statement (rows, buffers: figures load does not change)."""
import json, os, re, statistics, subprocess, sys, time, urllib.request

url, email, password, runs, company, me, psql, pg_port, superpw, pg_log = sys.argv[1:11]
runs = int(runs)
explain = os.environ.get("BENCH_ACTIVITIES_EXPLAIN") == "1"


def cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # idle + iowait


def machine():
    total0, idle0 = cpu_times()
    time.sleep(1)
    total1, idle1 = cpu_times()
    idle = (idle1 - idle0) / max(1, total1 - total0)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    return f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} CPUs, " \
           f"{idle:.0%} idle, load {load}"


def post(body, token=None):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = json.load(resp)
    if data.get("errors"):
        raise SystemExit(f"GraphQL error: {data['errors']}")
    return data["data"]


token = post({"query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
              "variables": {"i": {"email": email, "password": password}}})["login"]["accessToken"]


def percentiles(samples):
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99 + 0.5) - 1)]


def timed(query, variables):
    post({"query": query, "variables": variables}, token)  # warm the connection's plans
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        post({"query": query, "variables": variables}, token)
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def run_psql(script):
    return subprocess.run([psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", pg_port,
                           "-U", "postgres", "-d", "app"],
                          input=script, capture_output=True, text=True, env={"PGPASSWORD": superpw},
                          check=True).stdout


SESSION = None


def as_caller(statement, params):
    """A psql script that prepares `statement`; and the lines that run it as the caller, as a
    request transaction of the server does: app_user, and app.begin_request with the caller's
    live session (the identity, grants, friends and blocks the policies read)."""
    args = ", ".join("NULL" if p is None else "'" + p.replace("'", "''") + "'" for p in params)
    setup = f"SET ROLE app_user;\nPREPARE q AS {statement};\n"
    begin = (f"BEGIN;\nSELECT app.begin_request('{me}', '{company}', 'admin', '{SESSION}', true) \\g /dev/null\n")
    return setup, begin, f"EXECUTE q({args})" if params else "EXECUTE q"


def sql(statement, params):
    """p50 / p99 of `statement` through psql (\\timing) as the caller: the EXECUTE alone, each
    in its own request transaction."""
    setup, begin, execute = as_caller(statement, params)
    one = begin + execute + " \\g /dev/null\nCOMMIT;\n"
    times = [float(l.split()[1]) for l in run_psql(setup + "\\timing on\n" + one * (runs + 1)).splitlines()
             if l.startswith("Time:")]
    # BEGIN, begin_request, EXECUTE, COMMIT: every fourth, the first run left out (it plans).
    return percentiles(times[2::4][1:])


def counts(statement, params):
    """What EXPLAIN (ANALYZE, BUFFERS) counts of the statement as the caller: rows, shared
    buffers hit and read, and its execution time; and the plan as text."""
    setup, begin, execute = as_caller(statement, params)
    # Once before, as on a pooled connection: the first call of the policies' functions in a
    # session plans their statements (catalog reads that are no part of the statement).
    setup += begin + f"{execute} \\g /dev/null\n"
    plan = json.loads(run_psql(setup + f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute};\nCOMMIT;"))[0]
    top = plan["Plan"]
    text = run_psql(setup + f"EXPLAIN (ANALYZE, BUFFERS) {execute};\nCOMMIT;") if explain else ""
    return top["Actual Rows"], top.get("Shared Hit Blocks", 0), top.get("Shared Read Blocks", 0), \
        plan["Execution Time"], text


def superuser(script):
    run_psql(script)


LINE = re.compile(r"LOG:  duration: ([0-9.]+) ms  execute [^:]*: (.*)$")
PARAMS = re.compile(r"\$(\d+) = (NULL|'((?:[^']|'')*)')")


def logged_statement(body):
    """The statement of one request of `body` that reads activities longest, as the server sent
    it, and its parameters: PostgreSQL logs every statement during that request."""
    superuser("ALTER SYSTEM SET log_min_duration_statement = 0; SELECT pg_reload_conf();")
    time.sleep(0.5)
    start = os.path.getsize(pg_log)
    try:
        post(body, token)
        time.sleep(0.5)
    finally:
        superuser("ALTER SYSTEM RESET log_min_duration_statement; SELECT pg_reload_conf();")
    with open(pg_log, errors="replace") as f:
        f.seek(start)
        lines = f.read().splitlines()
    found = []
    for i, line in enumerate(lines):
        m = LINE.search(line)
        if not m or not re.search(r'\bFROM "?activities"?\b', m.group(2)):
            continue
        params = {}
        if i + 1 < len(lines) and "DETAIL:  parameters:" in lines[i + 1]:
            for n, value, text in PARAMS.findall(lines[i + 1]):
                params[int(n)] = None if value == "NULL" else text.replace("''", "'")
        found.append((float(m.group(1)), m.group(2), [params.get(n) for n in range(1, len(params) + 1)]))
    if not found:
        raise SystemExit(f"no statement reading activities was logged for {body['query'][:60]}")
    _, statement, params = max(found)
    return statement, params


COMPARE = """query($from: DateTime) { compareWithFriends(kind: "sleep", metric: "score", aggregate: AVG, from: $from)
  { userId value activityCount rank } }"""
FEED = "{ friendFeed(first: 20) { edges { node { id userId kind occurredAt metrics visibility } } pageInfo { hasNextPage endCursor } } }"
ACTIVITIES = """query($user: ID) { activities(userId: $user, first: 20)
  { edges { node { id kind occurredAt metrics visibility } } pageInfo { hasNextPage endCursor } } }"""

SESSION = run_psql(f"SELECT id FROM sessions WHERE company_id = '{company}' AND user_id = '{me}' "
                   f"AND revoked_at IS NULL ORDER BY created_at DESC LIMIT 1").strip()
since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400))
rows = post({"query": COMPARE, "variables": {"from": since}}, token)["compareWithFriends"]
page = post({"query": FEED}, token)["friendFeed"]["edges"]
friend = next(r["userId"] for r in rows if r["userId"] != me)

print(f"machine before the run: {machine()}")
print(f"compareWithFriends: {len(rows)} participants; friendFeed: {len(page)} activities on the first page")
print(f"{'query':<21} {'GraphQL p50/p99':>17} {'SQL p50/p99':>15} {'ratio':>6}   (ms)")
plans = []
for name, (query, variables) in {
    "compareWithFriends": (COMPARE, {"from": since}),
    "friendFeed first 20": (FEED, {}),
    "a friend's activities": (ACTIVITIES, {"user": friend}),
}.items():
    statement, params = logged_statement({"query": query, "variables": variables})
    idle = machine()
    g50, g99 = timed(query, variables)
    s50, s99 = sql(statement, params)
    n, hit, read, ms, text = counts(statement, params)
    plans.append((name, n, hit, read, ms, statement, text))
    print(f"{name:<21} {g50:>7.1f} / {g99:<7.1f} {s50:>6.1f} / {s99:<6.1f} {g50 / s50:>6.2f}   [{idle}]")
print("EXPLAIN (ANALYZE, BUFFERS) of each statement as the caller:")
for name, n, hit, read, ms, _, _ in plans:
    print(f"{name:<21} {n:>4} rows, {hit:>6} buffers hit, {read:>5} read, {ms:>7.1f} ms")
for name, _, _, _, _, statement, text in plans:
    if text:
        print(f"\n-- {name}\n-- {statement}\n{text}", file=sys.stderr)
