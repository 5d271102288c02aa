# The front door: every command the README and CI use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KAFKA_PORT ?= 9092

.PHONY: help install lint test kafka-start kafka-stop simulator constraints clean

help:
	@echo "make install      create $(VENV)/ and install requirements (quick when nothing changed)"
	@echo "make lint         ruff, with Airflow's AIR rules"
	@echo "make test         install, lint, then the whole pytest suite against a real Kafka broker"
	@echo "make kafka-start  start a single-node Kafka broker on 127.0.0.1:\$$KAFKA_PORT ($(KAFKA_PORT))"
	@echo "make kafka-stop   stop that broker"
	@echo "make simulator    run the X API simulator on 127.0.0.1:\$$X_SIM_PORT (8099)"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

kafka-start: install
	scripts/kafka.sh start

kafka-stop:
	scripts/kafka.sh stop

simulator: install
	$(BIN)/python -m include.x_api_simulator

constraints: install
	@{ sed -n 1,2p constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean: kafka-stop
	rm -rf $(VENV) .kafka .pytest_cache .ruff_cache
