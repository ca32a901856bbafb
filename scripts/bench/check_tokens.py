#!/usr/bin/env python3
"""Sends a bench request once with every minted token and checks each answer (stdlib only).

usage: check_tokens.py URL BODY_JSON_FILE TOKENS_FILE [ROUNDS] [--page users|presets]
                       [--field NAME]

Each answer must be HTTP 200 without `errors`, with a page of 20 edges and hasNextPage true,
under `data.NAME` (default: the page's field of this server, `users` or `presets`; PostGraphile's
are `allUserProfiles` and `allPresets`). Users page: only users of the token's own company
(emails end in @bench<c>.example). Presets page: only presets shared with the company or owned
by the token's user. This proves every token the load test will use is accepted and maps to a
seeded user, so the load test's throughput is throughput of real answers; it also warms the
server and PostgreSQL up. Exits non-zero on the first bad answer. ROUNDS (default 1): how many
times to go through the tokens.
"""

import argparse
import hashlib
import http.client
import json
import sys
import time
import urllib.parse
import uuid


def md5_uuid(text: str) -> str:
    return str(uuid.UUID(hex=hashlib.md5(text.encode()).hexdigest()))


def check_users(n: int, nodes: list) -> str | None:
    domain = f"@bench{n % 2 + 1}.example"
    if any(not (node.get("email") or "").endswith(domain) for node in nodes):
        return f"users outside the token's company (expected emails ending in {domain})"
    return None


def check_presets(n: int, nodes: list) -> str | None:
    me = md5_uuid(f"bench-user-{n}")
    for node in nodes:
        if str(node.get("visibility")).lower() != "company" and node.get("ownerId") != me:
            return f"preset {node.get('id')} is neither shared with the company nor the caller's"
    return None


PAGES = {"users": check_users, "presets": check_presets}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body")
    parser.add_argument("tokens")
    parser.add_argument("rounds", nargs="?", type=int, default=1)
    parser.add_argument("--page", choices=sorted(PAGES), default="users")
    parser.add_argument("--field")
    args = parser.parse_args()
    field = args.field or args.page
    check_page = PAGES[args.page]
    parsed = urllib.parse.urlsplit(args.url)
    with open(args.body, "rb") as f:
        body = f.read()
    with open(args.tokens) as f:
        tokens = [line.split() for line in f if line.strip()]
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    sizes = []
    started = time.monotonic()
    for n, token in tokens * args.rounds:
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
            sys.exit(f"check failed for user {n} ({args.page} page, {args.url}): {reason}\n"
                     f"  status {response.status}\n  {raw[:600]!r}")

        if response.status != 200:
            fail("HTTP status is not 200")
        answer = json.loads(raw)
        if answer.get("errors"):
            fail("the answer has errors")
        page = (answer.get("data") or {}).get(field)
        if not page:
            fail(f"no data.{field} in the answer")
        nodes = [edge["node"] for edge in page["edges"]]
        if len(nodes) != 20:
            fail(f"{len(nodes)} edges instead of 20")
        if page["pageInfo"]["hasNextPage"] is not True or not page["pageInfo"]["endCursor"]:
            fail("pageInfo does not announce a next page")
        if reason := check_page(int(n), nodes):
            fail(reason)
    elapsed = time.monotonic() - started
    print(
        f"  checked {len(tokens)} token(s) x {args.rounds} ({args.page} page): every answer is "
        f"a page of 20 the token's user may see ({min(sizes)}-{max(sizes)} bytes, "
        f"{elapsed:.1f} s sequentially)"
    )


if __name__ == "__main__":
    main()
