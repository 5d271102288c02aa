# The front door: every command the README and CI use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KAFKA_PORT ?= 9092

.PHONY: help install lint test test-faults test-distributed compose-config kafka-start kafka-stop simulator constraints clean run stop tail browser bench

help:
	@echo "make install      create $(VENV)/ and install requirements (quick when nothing changed)"
	@echo "make lint         ruff, with Airflow's AIR rules"
	@echo "make test         install, lint, then the whole pytest suite against a real Kafka broker"
	@echo "make test-faults  the reliability suite alone (make test runs it too): .artifacts/reliability.json"
	@echo "make test-distributed  CeleryExecutor on Postgres and Redis (Debian packages), and docker-compose.yaml's wiring"
	@echo "make compose-config    check docker-compose.yaml with your .env (Debian's docker-compose)"
	@echo "make kafka-start  start a single-node Kafka broker on 127.0.0.1:\$$KAFKA_PORT ($(KAFKA_PORT))"
	@echo "make kafka-stop   stop that broker"
	@echo "make simulator    run the X API simulator on 127.0.0.1:\$$X_SIM_PORT (8099)"
	@echo "make run          broker, simulator and Airflow (UI on 127.0.0.1:\$$AIRFLOW_PORT, 8080); Ctrl-C stops"
	@echo "make stop         stop everything make run started"
	@echo "make tail         print the topic's records as they arrive (TOPIC, TAIL_FROM=beginning)"
	@echo "make browser      install Debian's chromium for the browser test (make test does it)"
	@echo "make bench        benchmarks on their own broker and simulator: bench/results.json and .png (not in CI)"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt plugins/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned requirements into $(VENV)/ (a few minutes the first time; pip's progress follows)"
	set -o pipefail; $(BIN)/pip install --disable-pip-version-check -r requirements.txt -r requirements-dev.txt \
		-c constraints.txt | { grep --line-buffered -E '^(Collecting|Installing|Successfully)' || true; }
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# make test runs the suite as five pytest runs side by side, since most tests wait on servers or on the clock
# rather than use the CPU: the rest in the foreground, and beside it the fault tests that stop, kill or freeze
# a broker, and the tests that wait out whole minutes in three runs (the crash and pause of
# test_continuous_coverage.py with the rate-limited backfill; the outage past the horizon with the streams;
# the others: the healing, day two). Each side run has a broker of its own; its output is in .artifacts/<run>-tests.log,
# printed after the foreground run's. The runs add their fault cases to one .artifacts/reliability.json.
BROKER_FAULTS_KAFKA_PORT ?= 19292
WALL_CLOCK_KAFKA_PORT ?= 19192
HORIZON_KAFKA_PORT ?= 19392
HEALING_KAFKA_PORT ?= 19592
WALL_CLOCK_RUN := tests/system/test_continuous_coverage.py tests/faults/test_postgres_scheduler.py
HORIZON_RUN := tests/system/test_horizon_outage.py tests/system/test_streams.py
PYTEST := $(BIN)/pytest -p no:cacheprovider --durations=10

test: lint browser
	@mkdir -p .artifacts; export RELIABILITY_RUN=$$(date +%s%N); runs=; \
	beside() { run=$$1; shift; env "$$@" > .artifacts/$$run-tests.log 2>&1 & runs="$$runs $$run:$$!"; }; \
	beside broker-faults TEST_KAFKA_PORT=$(BROKER_FAULTS_KAFKA_PORT) FAULTS_SIMULATOR_PORT=0 \
		$(PYTEST) -m "broker_faults and not wall_clock" tests/faults; \
	beside wall-clock TEST_KAFKA_PORT=$(WALL_CLOCK_KAFKA_PORT) $(PYTEST) -m wall_clock $(WALL_CLOCK_RUN); \
	beside horizon TEST_KAFKA_PORT=$(HORIZON_KAFKA_PORT) $(PYTEST) -m wall_clock $(HORIZON_RUN); \
	beside healing TEST_KAFKA_PORT=$(HEALING_KAFKA_PORT) $(PYTEST) -m wall_clock \
		$(foreach path,$(WALL_CLOCK_RUN) $(HORIZON_RUN),--ignore=$(path)); \
	$(PYTEST) -m "not wall_clock and not broker_faults"; status=$$?; \
	for side in $$runs; do \
		wait $${side#*:} || status=1; \
		echo "== $${side%%:*} tests, run beside the others (.artifacts/$${side%%:*}-tests.log) =="; \
		cat .artifacts/$${side%%:*}-tests.log; \
	done; \
	exit $$status

test-faults: install
	$(BIN)/pytest tests/faults

test-distributed: install
	$(BIN)/pytest tests/distributed tests/compose

compose-config: install
	$(BIN)/python -m local_system debian docker-compose
	docker-compose config -q

kafka-start: install
	$(BIN)/python -m local_system kafka start

kafka-stop:
	$(BIN)/python -m local_system kafka stop

simulator: install
	$(BIN)/python -m x_api_simulator

constraints: install
	@{ sed -n 1,2p constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

run: install
	$(BIN)/python -m local_system run

stop:
	$(BIN)/python -m local_system stop

tail: install
	$(BIN)/python -m local_system tail

browser:
	scripts/install-browser.sh

bench: install
	$(BIN)/python -m bench.run

clean:
	-test ! -x $(BIN)/python || $(BIN)/python -m local_system stop
	rm -rf $(VENV) .kafka .pytest_cache .ruff_cache
