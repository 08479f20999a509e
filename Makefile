# XenoFlow-OVS. On a fresh Debian 12 machine, as root:
#   make demo   install deps, build .venv, run the lab demo (Python 3.11 only)
#   make test   install deps, lint, run the whole suite in both runtimes (tox: lint, osken, ryu;
#               the ryu env needs Python 3.9: `make test XF_TOXENVS=lint,osken` runs without it)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY311 ?= $(shell scripts/find-python.sh 3.11 2>/dev/null)
PY39  ?= $(shell scripts/find-python.sh 3.9 2>/dev/null)
TOOLS ?= $(CURDIR)/.venv-tools
TOX   := $(TOOLS)/bin/tox
VENV  := $(CURDIR)/.venv
XF_TOXENVS ?= lint,osken,ryu
export XF_PY311 := $(PY311)
export XF_PY39  := $(PY39)
export XF_TOOLS_VENV := $(TOOLS)
# the Pythons install-deps.sh insists on: 3.9 only when a Ryu env is asked for
RUNTIMES = 3.11$(if $(findstring ryu,$(1)), 3.9)

.PHONY: help deps deps-311 deps-demo venv test test-osken test-ryu lint demo bench bench-smoke clean

help:
	@echo "make demo         install deps + .venv, then run 'xenoflow lab demo'"
	@echo "make test         install deps, then 'tox -e $(XF_TOXENVS)' (lint, whole suite in both runtimes)"
	@echo "make test-osken   only the os-ken 4.2 / Python 3.11 env (ARGS='...' go to pytest)"
	@echo "make test-ryu     only the Ryu 4.34 / Python 3.9 env"
	@echo "make lint         ruff and vulture over the tree (part of make test)"
	@echo "make bench        every benchmark suite (~80 min, the scale and fleet suites included), then benchmarks/REPORT.md"
	@echo "make bench-smoke  a CI-sized run of every suite (~5 min), into results/smoke/"
	@echo "make venv         dev venv .venv (3.11, editable, extras osken,test,bench)"
	@echo "make deps         apt packages, Python 3.11 and 3.9, tox (idempotent, fast when nothing is missing)"
	@echo "make clean        remove .tox, build artefacts (keeps .venv, .venv-tools)"

deps:
	XF_RUNTIMES="$(call RUNTIMES,$(XF_TOXENVS))" scripts/install-deps.sh

# what the venv and the os-ken env need: no Python 3.9
deps-311:
	XF_RUNTIMES=3.11 scripts/install-deps.sh

# the demo runs from .venv: no Python 3.9, no tox
deps-demo:
	XF_RUNTIMES=3.11 XF_NO_TOX=1 scripts/install-deps.sh

# the glue's C sources too: the editable install compiles them, a stale .so would hide a change
$(VENV)/.stamp: setup.cfg setup.py pyproject.toml $(wildcard dpdk_glue/build_glue.py dpdk_glue/*.[ch] \
		dpdk_glue/softdoca/*.[ch] dpdk_glue/softdoca/include/*.h)
	@test -n "$(PY311)" || { echo "no python3.11 found (Debian 12: apt-get install python3 python3-venv)"; exit 1; }
	test -x $(VENV)/bin/python || $(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[osken,test,bench]'
	touch $@

venv: $(VENV)/.stamp

bench: deps-311 venv
	$(VENV)/bin/python benchmarks/run.py all --wait-paper 900
	$(VENV)/bin/python benchmarks/bench_disruption.py
	$(VENV)/bin/python benchmarks/bench_glue_install.py
	$(VENV)/bin/python benchmarks/bench_scale.py
	$(VENV)/bin/python benchmarks/bench_fleet.py
	$(VENV)/bin/python benchmarks/bench_fleet_events.py
	$(VENV)/bin/python benchmarks/bench_idle.py
	$(VENV)/bin/python benchmarks/bench_ipv6.py
	$(VENV)/bin/python benchmarks/bench_transports.py
	$(VENV)/bin/python benchmarks/bench_meters.py
	$(VENV)/bin/python benchmarks/report.py

bench-smoke: deps-311 venv
	$(VENV)/bin/python benchmarks/run.py all --smoke

test: deps
	$(TOX) -e $(XF_TOXENVS) -- $(ARGS)

test-osken: deps-311
	$(TOX) -e osken -- $(ARGS)

test-ryu:
	XF_RUNTIMES="3.11 3.9" scripts/install-deps.sh
	$(TOX) -e ryu -- $(ARGS)

lint: deps-311
	$(TOX) -e lint

demo: deps-demo venv
	$(VENV)/bin/xenoflow lab demo

clean:
	rm -rf .tox build dist *.egg-info .pytest_cache .hypothesis test-artefacts
