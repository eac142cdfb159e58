# Entry points for developers and CI; the real work is in deploy/local/*.sh.
VENV := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help bootstrap compile run test lint unit bench kafka-start kafka-stop redis-start redis-stop clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: ## set up .venv, redis-server and the Kafka jars (idempotent)
	deploy/local/bootstrap.sh

compile: ## build the package with its pure core compiled (mypyc) into .build/compiled
	deploy/local/compile.sh

run: ## run Kafka, Redis and the worker locally (Ctrl-C stops all)
	deploy/local/run.sh

# The tests start their own Kafka and Redis through pytest fixtures. The unit and agent tests
# run twice: on the source, and on the compiled build the image and the benchmark run (appended
# to sys.path, the tests' own root must not put the source before it).
test: ## the whole suite, as CI runs it: bootstrap, lint, type-check, compile, pytest (source, then compiled)
	deploy/local/bootstrap.sh
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	deploy/local/compile.sh >/dev/null
	$(VENV)/pytest
	PROCESSOR_TEST_COMPILED=1 PYTHONPATH=.build/compiled \
		$(VENV)/pytest --import-mode=append -p no:cacheprovider tests/unit tests/agents

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
clean: ## stop local servers, remove .run/ and .build/
	@for d in .run/kafka-*/; do [ ! -d "$$d" ] || KAFKA_HOME_DIR="$$d" deploy/local/kafka.sh stop; done
	@for d in .run/redis-*/; do [ ! -d "$$d" ] || REDIS_HOME_DIR="$$d" deploy/local/redis.sh stop; done
	rm -rf .run .build
