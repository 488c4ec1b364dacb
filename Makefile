# Hookline: a thin index over scripts/*.sh. `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help up down test lint fmt ci services

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

services: ## Only make sure PostgreSQL and RabbitMQ are running
	@scripts/ensure_services.sh

ci: lint test ## What CI runs
