# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv through `make setup`.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 python3.11 python3.10 python3; do \
             if command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then command -v $$p; break; fi; done)
VENV ?= .venv
REQS ?= requirements.txt
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
# The Fast DDS profile is set by the test suite and by the demo (seg_perception.dds picks the
# one variable the installed ROS 2 reads).

.PHONY: setup test test-jazzy demo lint bench clean

setup: $(STAMP)

$(STAMP): $(REQS) requirements-common.txt setup.py
	@test -n "$(PYTHON)" || { echo "error: need Python 3.10 to 3.12 (python3.1x on PATH)"; exit 1; }
	@[ "$$(uname -m)" = x86_64 ] || { echo "error: the ROS 2 wheels exist for x86_64 only; on a Jetson use the ROS workspace path in README.md"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(REQS)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test: setup
	$(BIN)/python -m pytest -q

# The suite again on ROS 2 Jazzy (rclpy 7.1), in its own environment.
test-jazzy:
	$(MAKE) test VENV=.venv-jazzy REQS=requirements-jazzy.txt

demo: setup
	$(BIN)/python -m seg_perception demo --out demo_output

lint: setup
	$(BIN)/ruff check seg_perception test launch bench setup.py
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/bench_node.py
	$(BIN)/python bench/bench_backends.py

clean:
	rm -rf .venv .venv-jazzy build install log demo_output .pytest_cache
