#!/usr/bin/env bash
# Installs what the project needs beyond a Rust toolchain: PostgreSQL (15+) and Redis server
# binaries; with --all (`make test`) also Chromium, which the GraphiQL test drives headless, and
# the WebSocket client wscat (npm), which the README's examples use, and the OpenID provider the
# OIDC tests run (`npm ci` in tests/fixtures/oidc-provider, with Node.js).
# Debian/Ubuntu only (apt-get); elsewhere install them yourself (see README.md).
set -euo pipefail

have_postgres() {
    if [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/postgres" ]; then return 0; fi
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && return 0
    done
    command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1
}

have_redis() {
    command -v redis-server >/dev/null 2>&1
}

missing=()
# Only what will be started privately is needed.
if [ -z "${DATABASE_URL:-}" ] && ! have_postgres; then missing+=(postgresql postgresql-contrib); fi
if [ -z "${REDIS_URL:-}" ] && ! have_redis; then missing+=(redis-server); fi
# Where Node.js is there already, the tests' OpenID provider comes along (it is small).
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then want_oidc_fixture=1; fi
# Tests always start private servers, so `make test` needs both binaries.
if [ "${1:-}" = "--all" ]; then
    have_postgres || missing+=(postgresql postgresql-contrib)
    have_redis || missing+=(redis-server)
    # The GraphiQL test drives /usr/bin/chromium (Debian's package; Ubuntu's is a snap stub).
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    if ! command -v wscat >/dev/null 2>&1; then
        want_wscat=1
    fi
    want_oidc_fixture=1
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

install_wscat() {
    if [ -n "${want_wscat:-}" ]; then
        echo "installing wscat (npm)"
        $sudo npm install --global --no-fund --no-audit wscat@6.1.0 >/dev/null
    fi
}

# The OpenID provider of the OIDC tests, exactly as package-lock.json pins it.
install_oidc_fixture() {
    if [ -n "${want_oidc_fixture:-}" ]; then
        local dir
        dir="$(dirname "$0")/../tests/fixtures/oidc-provider"
        if [ ! -f "$dir/node_modules/.package-lock.json" ] \
            || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
            echo "installing the OpenID provider of the tests (npm ci in tests/fixtures/oidc-provider)"
            (cd "$dir" && npm ci --no-fund --no-audit --loglevel=error >/dev/null)
        fi
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    install_wscat
    install_oidc_fixture
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${missing[*]} -- install them with your package manager (PostgreSQL 15+ and Redis 7 server binaries; for the tests Chromium at /usr/bin/chromium and `npm install -g wscat`)" >&2
    exit 1
fi

echo "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The OS package may start its own servers; ours use other ports and data directories, so
# they do not clash either way.
install_wscat
install_oidc_fixture
