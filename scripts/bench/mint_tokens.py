#!/usr/bin/env python3
"""Mints HS256 access tokens for seeded bench users (stdlib only).

usage: mint_tokens.py SECRETS_JSON COUNT OUT_FILE

Picks COUNT distinct user numbers n in 1..20000 (fixed seed, so runs are comparable) and
writes one line per token: "<n> <token>". Ids follow scripts/bench/seed.sql:
user md5('bench-user-<n>'), company md5('bench-company-<(n % 2) + 1>'), role 'member',
session md5('bench-session-<n>').
The key is the jwt_secret string's UTF-8 bytes as-is (the server does not hex-decode it).
"""

import base64
import hashlib
import hmac
import json
import random
import sys
import time
import uuid

USERS = 20000


def md5_uuid(text: str) -> str:
    # PostgreSQL's md5(text)::uuid reads the 32 hex digits as a uuid.
    return str(uuid.UUID(hex=hashlib.md5(text.encode()).hexdigest()))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims: dict, key: bytes) -> str:
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def main() -> None:
    secrets_path, count, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(secrets_path) as f:
        key = json.load(f)["jwt_secret"].encode()
    now = int(time.time())
    numbers = random.Random(42).sample(range(1, USERS + 1), count)
    with open(out_path, "w") as out:
        for n in numbers:
            claims = {
                "sub": md5_uuid(f"bench-user-{n}"),
                "company": md5_uuid(f"bench-company-{n % 2 + 1}"),
                "role": "member",
                "sid": md5_uuid(f"bench-session-{n}"),
                "iat": now,
                "exp": now + 3600,
                "iss": "graphql-server",
                "aud": "graphql-api",
            }
            out.write(f"{n} {sign(claims, key)}\n")


if __name__ == "__main__":
    main()
