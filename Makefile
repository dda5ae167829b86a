# sinktop-eval: one command per job. `make install` builds the project venv from nothing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch and torchvision must come as a matched pair (see README "Install"); the rest is pinned in constraints.txt
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
TEST_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false

.PHONY: install test bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt $(TORCH_PINS)
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	touch $@

test: install
	$(TEST_ENV) $(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(PY) scripts/bench_pruners.py
