#!/usr/bin/env python3
"""Sends the bench request once with every minted token and checks each answer (stdlib only).

usage: check_tokens.py URL BODY_JSON_FILE TOKENS_FILE [ROUNDS]

Each answer must be HTTP 200 without `errors`, with 20 edges, hasNextPage true and only
users of the token's own company (emails end in @bench<c>.example). This proves every
token the load test will use is accepted and maps to a seeded user, so the load test's
throughput is throughput of real answers; it also warms the server and PostgreSQL up.
Exits non-zero on the first bad answer. ROUNDS (default 1): how many times to go through the
tokens.
"""

import http.client
import json
import sys
import time
import urllib.parse


def main() -> None:
    url, body_path, tokens_path = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    parsed = urllib.parse.urlsplit(url)
    with open(body_path, "rb") as f:
        body = f.read()
    with open(tokens_path) as f:
        tokens = [line.split() for line in f if line.strip()]
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    sizes = []
    started = time.monotonic()
    for n, token in tokens * rounds:
        conn.request(
            "POST",
            parsed.path,
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        response = conn.getresponse()
        raw = response.read()
        sizes.append(len(raw))

        def fail(reason: str) -> None:
            sys.exit(f"check failed for user {n}: {reason}\n  status {response.status}\n  {raw[:600]!r}")

        if response.status != 200:
            fail("HTTP status is not 200")
        answer = json.loads(raw)
        if answer.get("errors"):
            fail("the answer has errors")
        users = answer["data"]["users"]
        if len(users["edges"]) != 20:
            fail(f"{len(users['edges'])} edges instead of 20")
        if users["pageInfo"]["hasNextPage"] is not True or not users["pageInfo"]["endCursor"]:
            fail("pageInfo does not announce a next page")
        domain = f"@bench{int(n) % 2 + 1}.example"
        if any(not e["node"]["email"].endswith(domain) for e in users["edges"]):
            fail(f"users outside the token's company (expected emails ending in {domain})")
    elapsed = time.monotonic() - started
    print(
        f"  checked {len(tokens)} token(s) x {rounds}: all answered 20 users of their own company "
        f"({min(sizes)}-{max(sizes)} bytes, {elapsed:.1f} s sequentially)"
    )


if __name__ == "__main__":
    main()
