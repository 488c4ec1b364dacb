# Hookline: a thin index over scripts/*.sh. `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help up down test lint fmt schema-check ci services bench bench-smoke bench-scale soak

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

up: ## Start PostgreSQL, RabbitMQ, hookline-ingest and hookline-worker locally (logs in .run/)
	@scripts/up.sh

down: ## Stop what `make up` started
	@scripts/down.sh

test: ## Run every test against the real PostgreSQL and RabbitMQ
	@scripts/test.sh

lint: ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	cargo fmt --all

schema-check: ## Fail if hookline_db's generated schema.rs is not what migrations/ produce
	@scripts/check_schema.sh

bench: ## Ceilings + Hookline figures from one run (~5 min), written to BENCHMARKS.md
	@scripts/bench.sh

bench-smoke: ## Every benchmark step for ~1 s (CI; figures meaningless), to .run/BENCHMARKS.smoke.md
	@BENCH_SMOKE=1 BENCH_OUT=.run/BENCHMARKS.smoke.md scripts/bench.sh >/dev/null

bench-scale: ## Ingest on an empty database vs 20 M stored events, and during maintenance (~20 min, ~15 GB disk)
	@scripts/bench_scale.sh

soak: ## hookline-ingest under steady load for 10 min; fails if its memory grows
	@scripts/soak.sh

services: ## Only make sure PostgreSQL and RabbitMQ are running
	@scripts/ensure_services.sh

ci: lint schema-check test ## What CI runs
