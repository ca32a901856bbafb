#!/usr/bin/env bash
# Fetches the browser files of the GraphiQL page from the npm registry, at the exact versions
# below, checks each package's tarball against the integrity hash the registry publishes for
# it, and copies the files into server/assets/graphiql/ (checked in: builds and CI need no
# network). assets.lock records what came from where: package, version, the tarball's
# integrity, the file and its SHA-256, which a unit test of the server compares with the
# embedded files. Run it again after changing a version; review the diff.
set -euo pipefail

# package  version  file in the package          served as
PACKAGES=(
    "graphiql    4.1.2   graphiql.min.js                graphiql.min.js"
    "graphiql    4.1.2   graphiql.min.css               graphiql.min.css"
    "graphiql    4.1.2   LICENSE                        LICENSE.graphiql"
    "react       18.3.1  umd/react.production.min.js    react.production.min.js"
    "react       18.3.1  LICENSE                        LICENSE.react"
    "react-dom   18.3.1  umd/react-dom.production.min.js react-dom.production.min.js"
    "graphql-ws  6.4.2   umd/graphql-ws.min.js          graphql-ws.min.js"
    "graphql-ws  6.4.2   LICENSE.md                     LICENSE.graphql-ws"
)

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/server/assets/graphiql"
command -v npm >/dev/null || { echo "npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"

lock="$work/assets.lock"
{
    echo "# Written by scripts/vendor-graphiql.sh: the files of server/assets/graphiql/ and where"
    echo "# they come from. Tab separated: package, version, integrity of the package's tarball"
    echo "# (as the npm registry publishes it, checked), file in the package, file here, SHA-256."
} >"$lock"

declare -A unpacked=()
for line in "${PACKAGES[@]}"; do
    read -r name version from to <<<"$line"
    spec="$name@$version"
    dir="$work/$name-$version"
    if [ -z "${unpacked[$spec]:-}" ]; then
        expected="$(npm view "$spec" dist.integrity)"
        case "$expected" in
            sha512-*) ;;
            *) echo "$spec: the registry publishes no sha512 integrity ($expected)" >&2; exit 1 ;;
        esac
        tarball="$(cd "$work" && npm pack --silent "$spec")"
        actual="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
        if [ "$actual" != "$expected" ]; then
            echo "$spec: tarball integrity $actual differs from the registry's $expected" >&2
            exit 1
        fi
        mkdir -p "$dir"
        tar -xzf "$work/$tarball" -C "$dir"
        unpacked[$spec]="$expected"
    fi
    cp "$dir/package/$from" "$dest/$to"
    sha="$(sha256sum "$dest/$to" | cut -d' ' -f1)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$version" "${unpacked[$spec]}" "$from" "$to" "$sha" >>"$lock"
    echo "$spec $from -> server/assets/graphiql/$to"
done
cp "$lock" "$dest/assets.lock"
