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
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The tests that mostly wait on wall-clock minutes (outages, pauses) run beside the others, on their own
# broker and ports; their output follows the others'.
test: lint browser
	@mkdir -p .artifacts; \
	TEST_KAFKA_PORT=19192 $(BIN)/pytest -m wall_clock -p no:cacheprovider > .artifacts/wall-clock-tests.log 2>&1 & \
	beside=$$!; $(BIN)/pytest -m "not wall_clock"; status=$$?; \
	wait $$beside; beside_status=$$?; \
	echo "== the wall-clock tests, run beside the others (.artifacts/wall-clock-tests.log) =="; \
	cat .artifacts/wall-clock-tests.log; \
	exit $$(( status || beside_status ))

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
