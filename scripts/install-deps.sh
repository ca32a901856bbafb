#!/usr/bin/env bash
# Installs what the project needs beyond a Rust toolchain: PostgreSQL (15+) and Redis server
# binaries; with --all (`make test`) also Chromium, which the GraphiQL test drives headless, and
# the WebSocket client wscat (npm), which the README's examples use, and the OpenID provider the
# OIDC tests run (`npm ci` in tests/fixtures/oidc-provider, with Node.js), and the Citus
# extension, built from source (see install_citus below; --citus alone installs just that).
# Debian/Ubuntu only (apt-get); elsewhere install them yourself (see README.md).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

want_all=""
want_citus=""
for arg in "$@"; do
    case "$arg" in
        # `make test` runs the Citus tests too.
        --all) want_all=1; want_citus=1 ;;
        --citus) want_citus=1 ;;
        *) echo "install-deps.sh: unknown argument $arg (--all, --citus)" >&2; exit 2 ;;
    esac
done

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
if [ -n "$want_all" ]; then
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
        dir="$HERE/../tests/fixtures/oidc-provider"
        if [ ! -f "$dir/node_modules/.package-lock.json" ] \
            || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
            echo "installing the OpenID provider of the tests (npm ci in tests/fixtures/oidc-provider)"
            (cd "$dir" && npm ci --no-fund --no-audit --loglevel=error >/dev/null)
        fi
    fi
}

CITUS_VERSION=13.2.2
CITUS_RELEASE="https://github.com/citusdata/citus/archive/refs/tags/v$CITUS_VERSION.tar.gz"

# The newest installed PostgreSQL major version (the one the private clusters run).
pg_major() {
    local dir newest=""
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/postgres" ] || continue
        dir="${dir%/bin}"
        newest="${dir##*/}"
    done
    echo "$newest"
}

have_citus() {
    local major
    major="$(pg_major)"
    [ -n "$major" ] && [ -f "/usr/lib/postgresql/$major/lib/citus.so" ]
}

# Citus is not packaged by Debian: build it from its source tarball and install it into the
# system's PostgreSQL (about 2 minutes on 2 cores). The tarball is CITUS_SOURCE when set (CI
# points it at a local copy), else Citus's release from GitHub. Installing the server headers
# (postgresql-server-dev-N) may upgrade the server package to the archive's newest minor
# release: PostgreSQL clusters already running must be restarted afterwards.
install_citus() {
    [ -n "$want_citus" ] || return 0
    have_citus && return 0
    local major build tarball
    major="$(pg_major)"
    if [ -z "$major" ]; then
        echo "Citus: PostgreSQL is not installed" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "Citus $CITUS_VERSION is missing: build it for PostgreSQL $major from $CITUS_RELEASE (./configure && make && make install)" >&2
        exit 1
    fi
    echo "building Citus $CITUS_VERSION for PostgreSQL $major"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$major" \
        build-essential patch curl libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libssl-dev \
        libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev >/dev/null
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    if [ -n "${CITUS_SOURCE:-}" ]; then
        tarball="$CITUS_SOURCE"
    else
        tarball="$build/citus.tar.gz"
        curl -fsSL --retry 3 -o "$tarball" "$CITUS_RELEASE"
    fi
    tar xzf "$tarball" -C "$build" --strip-components=1
    # PostgreSQL 15.20 exports have_createdb_privilege(); Citus 13.2.2 still carries a static
    # copy of it for older minor releases, which then no longer compiles.
    if grep -q have_createdb_privilege "/usr/include/postgresql/$major/server/commands/dbcommands.h" \
        && grep -q "^have_createdb_privilege(void)" "$build/src/include/pg_version_compat.h"; then
        (cd "$build" && patch -s -p1 < "$HERE/citus/pg15-have_createdb_privilege.patch")
    fi
    (cd "$build" && ./configure --quiet PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null \
        && make -s -j"$(nproc)" >/dev/null && $sudo make -s install >/dev/null)
    have_citus || { echo "Citus: the build did not install citus.so" >&2; exit 1; }
    echo "installed Citus $CITUS_VERSION into PostgreSQL $major"
}

if [ ${#missing[@]} -eq 0 ]; then
    install_wscat
    install_oidc_fixture
    install_citus
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
install_citus
