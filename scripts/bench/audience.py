"""Audience latencies: audienceSize and audience(first: 20) through GraphQL for three filters,
and the same counts by hand in SQL through psql. Prints one table."""
import json, statistics, subprocess, sys, time, urllib.request

url, email, password, runs, company, psql, pg_port, superpw = sys.argv[1:9]
runs = int(runs)

FILTERS = {
    "selective": ({"include": {"all": [
        {"field": "plan", "op": "eq", "value": "enterprise"},
        {"any": [{"field": "country", "op": "eq", "value": "DE"}, {"field": "country", "op": "eq", "value": "FR"}]},
        {"field": "tags", "op": "contains", "value": "vip"}]}},
        """attributes @> '{"plan":"enterprise"}' AND (attributes @> '{"country":"DE"}' OR attributes @> '{"country":"FR"}') AND attributes @> '{"tags":["vip"]}'"""),
    "broad": ({"include": {"field": "last_active_at", "op": "within_last_days", "value": 30}},
              "last_active_at >= now() - interval '30 days'"),
    "exclusion": ({"include": {"field": "plan", "op": "in", "value": ["pro", "enterprise"]},
                   "exclude": {"field": "tags", "op": "contains", "value": "churn-risk"}},
                  """attributes->>'plan' IN ('pro', 'enterprise') AND NOT attributes @> '{"tags":["churn-risk"]}'"""),
}

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

def timed(query, variables):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        post({"query": query, "variables": variables}, token)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]

def sql_p50(where):
    script = "\\timing on\n" + "\n".join(
        [f"SELECT count(*) FROM users WHERE company_id = '{company}' AND {where};"] * runs)
    out = subprocess.run([psql, "-X", "-h", "127.0.0.1", "-p", pg_port, "-U", "postgres", "-d", "app"],
                         input=script, capture_output=True, text=True, env={"PGPASSWORD": superpw}, check=True).stdout
    times = sorted(float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:"))
    return statistics.median(times)

print(f"{'filter':<10} {'size':>8} {'audienceSize p50/p99 ms':>24} {'audience p50/p99 ms':>20} {'SQL p50 ms':>11} {'ratio':>6}")
for name, (doc, where) in FILTERS.items():
    size = post({"query": "query($f: JSON) { audienceSize(filter: $f) }", "variables": {"f": doc}}, token)["audienceSize"]
    s50, s99 = timed("query($f: JSON) { audienceSize(filter: $f) }", {"f": doc})
    p50, p99 = timed("query($f: JSON) { audience(filter: $f, first: 20) { users { id } } }", {"f": doc})
    q50 = sql_p50(where)
    print(f"{name:<10} {size:>8} {s50:>11.1f} / {s99:<10.1f} {p50:>9.1f} / {p99:<8.1f} {q50:>11.1f} {s50 / q50:>6.2f}")
