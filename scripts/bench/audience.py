"""Audience latencies: audienceSize and audience(first: 20) through GraphQL for three filters,
and the same counts by hand in SQL through psql: over the representation the server counts
with (the per-term bitmaps of audience_bits, or the users' index for a range), and over the
users' rows as counted before the bitmaps. Prints the machine's CPUs and idle share, then one
table of p50 / p99 per filter."""
import json, statistics, subprocess, sys, time, urllib.request

url, email, password, runs, company, psql, pg_port, superpw = sys.argv[1:9]
runs = int(runs)

Z = "B'0'::bit(1024)"


def bitmaps(expr, terms):
    """A count over audience_bits (no masking: the superuser's view), `expr` over one column per
    term named t0, t1, ...: the hand-written form of what the server sends."""
    columns = ", ".join(
        f"COALESCE(bit_or(bits) FILTER (WHERE term = '{t}'), {Z}) AS t{i}" for i, t in enumerate(terms))
    listed = ", ".join(f"'{t}'" for t in terms)
    return (f"SELECT COALESCE(SUM(bit_count({expr})), 0) FROM (SELECT seg, {columns} FROM audience_bits "
            f"WHERE company_id = '{company}' AND term IN ({listed}) GROUP BY seg) s")


def rows(where):
    return f"SELECT count(*) FROM users WHERE company_id = '{company}' AND {where}"


FILTERS = {
    "selective": (
        {"include": {"all": [
            {"field": "plan", "op": "eq", "value": "enterprise"},
            {"any": [{"field": "country", "op": "eq", "value": "DE"},
                     {"field": "country", "op": "eq", "value": "FR"}]},
            {"field": "tags", "op": "contains", "value": "vip"}]}},
        bitmaps("t0 & (t1 | t2) & t3", ["plan:s=enterprise", "country:s=DE", "country:s=FR", "tags:a=vip"]),
        rows("""attributes @> '{"plan":"enterprise"}' AND (attributes @> '{"country":"DE"}' OR """
             """attributes @> '{"country":"FR"}') AND attributes @> '{"tags":["vip"]}'"""),
    ),
    "broad": (
        {"include": {"field": "last_active_at", "op": "within_last_days", "value": 30}},
        rows("last_active_at >= now() - interval '30 days'"),
        rows("last_active_at >= now() - interval '30 days'"),
    ),
    "exclusion": (
        {"include": {"field": "plan", "op": "in", "value": ["pro", "enterprise"]},
         "exclude": {"field": "tags", "op": "contains", "value": "churn-risk"}},
        bitmaps("(t0 | t1) & ~t2 & t3", ["plan:s=pro", "plan:s=enterprise", "tags:a=churn-risk", "*"]),
        rows("""(attributes @> '{"plan":"pro"}' OR attributes @> '{"plan":"enterprise"}') """
             """AND NOT attributes @> '{"tags":["churn-risk"]}'"""),
    ),
}


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


login = post({"query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
              "variables": {"i": {"email": email, "password": password}}})
token = login["login"]["accessToken"]


def percentiles(samples):
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99 + 0.5) - 1)]


def timed(query, variables):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        post({"query": query, "variables": variables}, token)
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def sql(statement):
    """p50 / p99 of `statement` through psql (\\timing), and the count it gives."""
    script = "\\timing on\n" + "\n".join([statement + ";"] * runs)
    out = subprocess.run([psql, "-X", "-A", "-t", "-h", "127.0.0.1", "-p", pg_port, "-U", "postgres", "-d", "app"],
                         input=script, capture_output=True, text=True, env={"PGPASSWORD": superpw},
                         check=True).stdout
    times = [float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:")]
    counts = {l.strip() for l in out.splitlines() if l.strip().isdigit()}
    return percentiles(times), counts


SIZE = "query($f: JSON) { audienceSize(filter: $f) }"
PAGE = "query($f: JSON) { audience(filter: $f, first: 20) { users { id } } }"

print(f"machine before the run: {machine()}")
print(f"{'filter':<10} {'size':>7} {'audienceSize p50/p99':>21} {'audience p50/p99':>17} "
      f"{'SQL p50/p99':>14} {'ratio':>5} {'rows SQL p50':>12}   (ms)")
for name, (doc, counted, before) in FILTERS.items():
    size = post({"query": SIZE, "variables": {"f": doc}}, token)["audienceSize"]
    idle = machine()
    s50, s99 = timed(SIZE, {"f": doc})
    p50, p99 = timed(PAGE, {"f": doc})
    (q50, q99), counts = sql(counted)
    (r50, _), before_counts = sql(before)
    if counts != {str(size)} or before_counts != {str(size)}:
        raise SystemExit(f"{name}: audienceSize {size}, SQL {counts}, rows {before_counts}")
    print(f"{name:<10} {size:>7} {s50:>9.1f} / {s99:<9.1f} {p50:>7.1f} / {p99:<7.1f} "
          f"{q50:>6.1f} / {q99:<6.1f} {s50 / q50:>5.2f} {r50:>12.1f}   [{idle}]")
