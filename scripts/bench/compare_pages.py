#!/usr/bin/env python3
"""Checks that the server and PostGraphile answer a bench page with the same rows (stdlib only).

usage: compare_pages.py PAGE TOKENS_FILE COUNT URL_A BODY_A FIELD_A URL_B BODY_B FIELD_B

For the first COUNT tokens (the bench's rotating users), sends BODY_A to URL_A and BODY_B to
URL_B with the same bearer token, takes the page under data.FIELD_A / data.FIELD_B and compares
the rows, in order, field by field, and hasNextPage. Values are compared as what they mean:
enum spellings (PRIVATE / 'private') ignore case, timestamps compare as instants. Cursors are
not compared (each server has its own). Exits non-zero, printing both rows, on the first
difference, so that the side-by-side figures are figures of the same answer.
"""

import datetime
import http.client
import json
import sys
import urllib.parse


def post(url: str, body: bytes, token: str) -> dict:
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.request("POST", parsed.path, body=body, headers={
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    })
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    if response.status != 200:
        sys.exit(f"compare: {url} answered HTTP {response.status}: {raw[:600]!r}")
    answer = json.loads(raw)
    if answer.get("errors"):
        sys.exit(f"compare: {url} answered errors: {json.dumps(answer['errors'])[:600]}")
    return answer


def normalise(value):
    if isinstance(value, str):
        try:
            instant = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value.lower() if value.isupper() else value  # enum spellings
        if instant.tzinfo is not None:
            return instant.astimezone(datetime.timezone.utc).isoformat()
    return value


def page(answer: dict, field: str):
    data = (answer.get("data") or {}).get(field)
    if data is None:
        sys.exit(f"compare: no data.{field} in {json.dumps(answer)[:600]}")
    rows = [{k: normalise(v) for k, v in edge["node"].items()} for edge in data["edges"]]
    return rows, data["pageInfo"]["hasNextPage"]


def main() -> None:
    name, tokens_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    (url_a, body_a, field_a), (url_b, body_b, field_b) = (
        (sys.argv[4], sys.argv[5], sys.argv[6]), (sys.argv[7], sys.argv[8], sys.argv[9]))
    body_a, body_b = open(body_a, "rb").read(), open(body_b, "rb").read()
    with open(tokens_path) as f:
        tokens = [line.split() for line in f if line.strip()][:count]
    for n, token in tokens:
        rows_a, next_a = page(post(url_a, body_a, token), field_a)
        rows_b, next_b = page(post(url_b, body_b, token), field_b)
        if not rows_a:
            sys.exit(f"compare: the {name} page of user {n} is empty")
        if len(rows_a) != len(rows_b):
            sys.exit(f"compare: {name} page of user {n}: {len(rows_a)} rows from {url_a}, "
                     f"{len(rows_b)} from {url_b}")
        for i, (a, b) in enumerate(zip(rows_a, rows_b)):
            if a != b:
                sys.exit(f"compare: {name} page of user {n}, row {i + 1} differs:\n"
                         f"  {url_a}: {a}\n  {url_b}: {b}")
        if next_a != next_b:
            sys.exit(f"compare: {name} page of user {n}: hasNextPage {next_a} vs {next_b}")
    print(f"  {name} page: both answer the same {len(rows_a)} rows (fields "
          f"{', '.join(rows_a[0])}) and hasNextPage for {len(tokens)} users")


if __name__ == "__main__":
    main()
