# XenoFlow-OVS. On a fresh Debian 12 machine, as root:
#   make demo   install deps, build .venv, run the lab demo
#   make test   install deps, lint, run the whole suite in both runtimes (tox: lint, osken, ryu)
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

.PHONY: help deps venv test test-osken test-ryu lint demo bench bench-smoke clean

help:
	@echo "make demo         install deps + .venv, then run 'xenoflow lab demo'"
	@echo "make test         install deps, then 'tox -e $(XF_TOXENVS)' (lint, whole suite in both runtimes)"
	@echo "make test-osken   only the os-ken 4.2 / Python 3.11 env (ARGS='...' go to pytest)"
	@echo "make test-ryu     only the Ryu 4.34 / Python 3.9 env"
	@echo "make lint         ruff and vulture over the tree (part of make test)"
	@echo "make bench        every benchmark suite (~30 min), then benchmarks/REPORT.md"
	@echo "make bench-smoke  a CI-sized run of every suite (~5 min), into results/smoke/"
	@echo "make venv         dev venv .venv (3.11, editable, extras osken,test,bench)"
	@echo "make deps         apt packages + tox (idempotent, fast when nothing is missing)"
	@echo "make clean        remove .tox, build artefacts (keeps .venv, .venv-tools)"

deps:
	scripts/install-deps.sh

# the glue's C sources too: the editable install compiles them, a stale .so would hide a change
$(VENV)/.stamp: setup.cfg setup.py pyproject.toml $(wildcard dpdk_glue/build_glue.py dpdk_glue/*.[ch] \
		dpdk_glue/softdoca/*.[ch] dpdk_glue/softdoca/include/*.h)
	@test -n "$(PY311)" || { echo "no python3.11 found"; exit 1; }
	test -x $(VENV)/bin/python || $(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[osken,test,bench]'
	touch $@

venv: $(VENV)/.stamp

bench: deps venv
	$(VENV)/bin/python benchmarks/run.py all --wait-paper 900
	$(VENV)/bin/python benchmarks/bench_disruption.py
	$(VENV)/bin/python benchmarks/bench_glue_install.py
	$(VENV)/bin/python benchmarks/report.py

bench-smoke: deps venv
	$(VENV)/bin/python benchmarks/run.py all --smoke

test: deps
	$(TOX) -e $(XF_TOXENVS) -- $(ARGS)

test-osken: deps
	$(TOX) -e osken -- $(ARGS)

test-ryu: deps
	$(TOX) -e ryu -- $(ARGS)

lint: deps
	$(TOX) -e lint

demo: deps venv
	$(VENV)/bin/xenoflow lab demo

clean:
	rm -rf .tox build dist *.egg-info .pytest_cache .hypothesis
