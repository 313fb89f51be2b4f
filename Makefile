# mbnode developer entry points. `make test` is what CI runs (.ci/run).
# Everything generated goes to .cache/ (tools, venv, MicroPython builds) or build/.
#
#   make setup                  install/build prerequisites (tools/setup.sh, idempotent, fast when done)
#   make setup-mcu              also the emulated MCUs: rp2 and qemu ports, rp2040js (tools/setup-mcu.sh)
#   make sim SIMARGS='--bits 64 --tcp 127.0.0.1:5020'
#   make test                   = make test-unix: the pytest suite against the unix-port simulator
#   make fuzz                   the property-based fuzzing, longer: FUZZ_EXAMPLES inputs per target (100000)
#   make bench
#   make soak SECONDS=600       TCP, RTU and MQTT traffic together; fails on a lost answer or heap growth
#   make clean / distclean
#
# Environment variables such as CI pass through to the commands unchanged.

ROOT  := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV  := $(ROOT)/.cache/venv
PYTHON := $(VENV)/bin/python

SIMARGS ?=
PYTEST_ARGS ?=
FUZZ_EXAMPLES ?= 100000
SECONDS ?= 60

.PHONY: all setup setup-mcu sim test test-unix test-mcu fuzz bench soak clean distclean

all: test

setup:
	bash $(ROOT)/tools/setup.sh

setup-mcu: setup
	bash $(ROOT)/tools/setup-mcu.sh

sim: setup
	$(VENV)/bin/mbnode sim $(SIMARGS)

test: test-unix

test-unix: setup
	cd $(ROOT) && $(PYTHON) -m pytest -q tests --ignore=tests/mcu --durations=25 $(PYTEST_ARGS)

test-mcu: setup-mcu
	cd $(ROOT) && $(PYTHON) -m pytest -q tests/mcu --durations=25 $(PYTEST_ARGS)

# The fuzz targets of tests/fuzz (test-unix runs them too, 400 inputs per property) with
# FUZZ_EXAMPLES inputs per target and hypothesis's statistics: docs/reliability.md.
fuzz: setup
	cd $(ROOT) && MBNODE_FUZZ_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PYTHON) -m pytest -q tests/fuzz \
		--hypothesis-show-statistics $(PYTEST_ARGS)

bench: setup
	cd $(ROOT) && $(PYTHON) bench/run.py

# docs/reliability.md: one 32-bit simulator with the MQTT bridge and RTU, 4 TCP clients, an RTU
# master and MQTT gateway traffic for SECONDS; exit status 1 on a lost or wrong answer or growth.
soak: setup
	cd $(ROOT) && $(PYTHON) bench/soak.py --seconds $(SECONDS)

clean:
	rm -rf $(ROOT)/build $(ROOT)/.pytest_cache

# Also drops the venv, the MicroPython sources/builds and the apt lists: next setup starts over.
distclean: clean
	rm -rf $(ROOT)/.cache $(ROOT)/*.egg-info
