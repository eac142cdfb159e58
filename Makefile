# Entry points for developers and CI; the real work is in deploy/local/*.sh.
VENV := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help bootstrap run test lint unit bench kafka-start kafka-stop redis-start redis-stop clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: ## set up .venv, redis-server and the Kafka jars (idempotent)
	deploy/local/bootstrap.sh

run: ## run Kafka, Redis and the worker locally (Ctrl-C stops all)
	deploy/local/run.sh

# The tests start their own Kafka and Redis through pytest fixtures.
test: ## the whole suite, as CI runs it: bootstrap, lint, type-check, pytest
	deploy/local/bootstrap.sh
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/pytest

lint: ## ruff check, ruff format --check, mypy
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

unit: ## fast tests only (no servers)
	$(VENV)/pytest tests/unit tests/agents

bench: ## run the benchmark
	$(VENV)/python -m bench

kafka-start: ## start a local Kafka (KAFKA_PORT, default 9092)
	deploy/local/kafka.sh start

kafka-stop: ## stop it
	deploy/local/kafka.sh stop

redis-start: ## start a local Redis (REDIS_PORT, default 6379)
	deploy/local/redis.sh start

redis-stop: ## stop it
	deploy/local/redis.sh stop

# Stop whatever still runs from .run/ first, so no server is left without its files.
clean: ## stop local servers and remove .run/
	@for d in .run/kafka-*/; do [ ! -d "$$d" ] || KAFKA_HOME_DIR="$$d" deploy/local/kafka.sh stop; done
	@for d in .run/redis-*/; do [ ! -d "$$d" ] || REDIS_HOME_DIR="$$d" deploy/local/redis.sh stop; done
	rm -rf .run
