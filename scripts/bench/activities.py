"""Activities latencies: compareWithFriends and friendFeed(first: 20) through GraphQL, and beside
each the statement the server sends, by hand through psql as the caller under Row Level Security.
Prints the machine's CPUs and idle share, then one table of p50 / p99 per query."""
import json, statistics, subprocess, sys, time, urllib.request

url, email, password, runs, company, me, psql, pg_port, superpw = sys.argv[1:10]
runs = int(runs)


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


def sql(statement):
    """p50 / p99 of `statement` through psql (\\timing) as the caller: app_user with the caller's
    identity, as a request transaction sets it; and the number of rows of its last run."""
    setup = (f"SET ROLE app_user;\n"
             f"SELECT set_config('app.user_id', '{me}', false), set_config('app.company_id', '{company}', false), "
             f"set_config('app.role', 'admin', false);\n")
    script = setup + "\\timing on\n" + "\n".join([statement + ";"] * (runs + 1))
    out = subprocess.run([psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", pg_port,
                          "-U", "postgres", "-d", "app"],
                         input=script, capture_output=True, text=True, env={"PGPASSWORD": superpw},
                         check=True).stdout
    times = [float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:")][1:]
    return percentiles(times)


FRIENDS = "SELECT unnest(app.activity_friend_ids()) AS user_id"
COMPARE_SQL = f"""
WITH participants AS (SELECT '{me}'::uuid AS user_id UNION {FRIENDS}),
folded AS (
    SELECT a.user_id, count(*) AS activity_count, avg((a.metrics ->> 'score')::numeric) AS value
    FROM activities a
    WHERE a.company_id = '{company}'
      AND a.kind_id = (SELECT id FROM activity_kinds WHERE company_id = '{company}' AND name = 'sleep')
      AND a.user_id IN (SELECT user_id FROM participants)
      AND a.occurred_at >= now() - interval '30 days' AND a.occurred_at < 'infinity'
    GROUP BY a.user_id)
SELECT p.user_id, f.value::float8 AS value, COALESCE(f.activity_count, 0)::int8 AS activity_count,
       rank() OVER (ORDER BY f.value DESC NULLS LAST)::int8 AS rank
FROM participants p LEFT JOIN folded f ON f.user_id = p.user_id
WHERE f.user_id IS NOT NULL OR p.user_id = '{me}'
ORDER BY rank, p.user_id""".replace("\n", " ")
FEED_SQL = (f"SELECT * FROM activities WHERE company_id = '{company}' "
            f"AND user_id = ANY ((SELECT app.activity_friend_ids())::uuid[]) "
            f"ORDER BY occurred_at DESC, id DESC LIMIT 21")

COMPARE = """query($from: DateTime) { compareWithFriends(kind: "sleep", metric: "score", aggregate: AVG, from: $from)
  { userId value activityCount rank } }"""
FEED = "{ friendFeed(first: 20) { edges { node { id userId kind occurredAt metrics visibility } } pageInfo { hasNextPage endCursor } } }"

since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400))
rows = post({"query": COMPARE, "variables": {"from": since}}, token)["compareWithFriends"]
page = post({"query": FEED}, token)["friendFeed"]["edges"]

print(f"machine before the run: {machine()}")
print(f"compareWithFriends: {len(rows)} participants; friendFeed: {len(page)} activities on the first page")
print(f"{'query':<20} {'GraphQL p50/p99':>17} {'SQL p50/p99':>15} {'ratio':>6}   (ms)")
for name, (query, variables, statement) in {
    "compareWithFriends": (COMPARE, {"from": since}, COMPARE_SQL),
    "friendFeed first 20": (FEED, {}, FEED_SQL),
}.items():
    idle = machine()
    g50, g99 = timed(query, variables)
    s50, s99 = sql(statement)
    print(f"{name:<20} {g50:>7.1f} / {g99:<7.1f} {s50:>6.1f} / {s99:<6.1f} {g50 / s50:>6.2f}   [{idle}]")
