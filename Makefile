# Two commands do everything: `make run` and `make test`. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
# Tests wait on PostgreSQL and Redis far more than on the CPU: run several at once.
TEST_THREADS ?= 6

.PHONY: run test test-citus deps build check fmt clippy schema catalog bench clean-data

## Install PostgreSQL and Redis server binaries when missing (Debian/Ubuntu, via apt-get).
deps:
	@bash scripts/install-deps.sh

## Start private PostgreSQL + Redis under DATA_DIR (unless DATABASE_URL / REDIS_URL are set) and serve.
run: deps
	$(CARGO) run --release -p server-cli --bin server -- serve

## Every test of the workspace, against real PostgreSQL and Redis started by the tests.
test:
	@bash scripts/install-deps.sh --all
	$(CARGO) build --workspace --all-targets
	RUST_TEST_THREADS=$(TEST_THREADS) $(CARGO) test --workspace --no-fail-fast

## The Citus tests, and the end-to-end suites of isolation, authorization, the RLS matrix,
## presets and audiences, friendships and chat again, on a private Citus cluster (a
## coordinator and two workers; Citus is built and installed first when missing, see
## scripts/install-deps.sh and README.md, "Scaling out").
CITUS_SUITES ?= citus:: isolation:: authz:: db_matrix:: presets:: audience:: friends chat
test-citus:
	@bash scripts/install-deps.sh --all --citus
	$(CARGO) build -p tests --tests
	TEST_CITUS=1 RUST_TEST_THREADS=$(TEST_THREADS) $(CARGO) test -p tests --test e2e --no-fail-fast -- $(CITUS_SUITES)

## Formatting, lints and the dependency policy (deny.toml); CI runs it after the tests.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@if $(CARGO) deny --version >/dev/null 2>&1; then \
		$(CARGO) deny --log-level error check licenses bans sources; \
	else \
		echo "cargo-deny is not installed (cargo install cargo-deny --locked): dependency policy not checked" >&2; \
		test -z "$$CI"; \
	fi

fmt:
	$(CARGO) fmt --all

## Regenerate schema.graphql from the code.
schema:
	$(CARGO) run -q -p server-cli --bin server -- print-schema > schema.graphql

## Regenerate policies/database.sql: the authorization catalog of a freshly migrated database
## (a throw-away private PostgreSQL cluster is started for it).
catalog: deps
	$(CARGO) run -q -p server-cli --bin server -- print-catalog --fresh > policies/database.sql.tmp
	mv policies/database.sql.tmp policies/database.sql

## Release build, seeded data; the users and presets pages side by side with PostGraphile 5,
## pgbench of the server's SQL and of the one-round-trip limit, audience, activities and chat;
## prints the figures and rewrites BENCHMARKS.md, with flame graphs of the users page and of chat
## streaming in .bench/ (BENCH_PROFILE=0 leaves the profiles out); then the users page on a
## private Citus cluster (scripts/bench-citus.sh).
bench: deps
	@BENCH_PROFILE="$${BENCH_PROFILE:-1}" bash scripts/bench.sh
	@bash scripts/bench-audience.sh
	@bash scripts/bench-activities.sh
	@BENCH_PROFILE="$${BENCH_PROFILE:-1}" bash scripts/bench-chat.sh
	@bash scripts/bench-citus.sh

## Forget the private PostgreSQL and Redis data of `make run`.
clean-data:
	rm -rf .data
