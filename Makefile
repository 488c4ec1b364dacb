# Hookline: a thin index over scripts/*.sh. `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help up down test lint fmt schema-check ci services bench bench-smoke bench-scale soak cluster-test overload chaos

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

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

bench-scale: ## Ingest on an empty database vs 20 M stored events, and during maintenance (~30 min, ~21 GB disk)
	@scripts/bench_scale.sh

soak: ## hookline-ingest under steady load for 10 min; fails if its memory grows
	@scripts/soak.sh

cluster-test: ## 3-node RabbitMQ cluster, kill the work queue's leader under load: nothing lost (~3 min)
	@scripts/cluster_test.sh
.PHONY: fuzz fuzz-smoke
fuzz: ## Every fuzz target for FUZZ_SECS s each (default 600) from fuzz/corpus: executions, coverage, crashes
	@scripts/fuzz.sh

fuzz-smoke: ## Every fuzz target for 20 s after one build (CI)
	@FUZZ_SECS=$${FUZZ_SECS:-20} scripts/fuzz.sh

overload: ## ingest with its database stalled under 10 000 connections (~40 s); fails if RSS, answer time or recovery miss
	@scripts/overload.sh

chaos: ## 50 000 webhooks while ingest, workers, broker, PostgreSQL are killed (private stack, ~4 min); fails on any loss
	@scripts/chaos.sh

services: ## Only make sure PostgreSQL and RabbitMQ are running
	@scripts/ensure_services.sh

ci: lint schema-check test ## What CI runs

.PHONY: k8s-check
k8s-check: ## Render deploy/k8s (kustomize) and validate every manifest against the Kubernetes schemas
	@scripts/k8s_check.sh
