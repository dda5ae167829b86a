# sinktop-eval: one command per job. `make install` builds the project venv from nothing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch and torchvision must come as a matched pair (see README "Install"); the rest is pinned in constraints.txt
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
TEST_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false

# The paper grid (`make sweep RATIO=0.1`): every model x {visionzip, fastvid, holitom} x SToP {off, on},
# plus dense (dense resolves to one run per model whatever stop/ratio say, so it runs once).
MODELS ?= llava_ov,qwen25vl
PRUNERS ?= dense,visionzip,fastvid,holitom
STOP ?= off,on
RATIO ?= 0.1
TASKS ?= paper
LIMIT ?= null
OUT ?= results/runs
EXTRA ?=
# vision-encoder outputs shared by every combination of a backbone (one encoder pass per video);
# FEATURE_CACHE= (empty) turns it off, FEATURE_CACHE_GB bounds it
FEATURE_CACHE ?= $(OUT)/../feature_cache
FEATURE_CACHE_GB ?= 50
CACHE_ARGS = $(if $(FEATURE_CACHE),feature_cache=$(FEATURE_CACHE) feature_cache_gb=$(FEATURE_CACHE_GB),)
SWEEP = $(PY) -m sinktop_eval -m +model=$(MODELS) +pruner=$(PRUNERS) stop=$(STOP) ratio=$(RATIO) \
	tasks=$(TASKS) limit=$(LIMIT) output_dir=$(OUT) $(CACHE_ARGS) $(EXTRA)
# `make demo`: the same sweep on the embedded default (tiny offline twins, synthetic benchmark), two
# ratios so the accuracy-vs-retention plot has lines; then tables, plots and a sink heat map. Random
# weights rarely emit EOS, so answers are capped at DEMO_TOKENS (the open-ended tasks allow 1024).
DEMO_OUT ?= results/demo
DEMO_TOKENS ?= 16
DEMO_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install test bench sweep ablation tables demo heatmap

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

sweep: install
	$(SWEEP)

# Table 4: HoliTom with STSP only and STTP only (SToP off/on come from `make sweep`)
ablation: install
	$(PY) -m sinktop_eval -m +model=$(MODELS) +pruner=holitom stop=stsp,sttp ratio=$(RATIO) tasks=$(TASKS) \
		limit=$(LIMIT) output_dir=$(OUT) $(CACHE_ARGS) $(EXTRA)

tables: install
	$(PY) -m sinktop_eval.tables $(OUT) --out $(OUT)/../tables

heatmap: install
	$(PY) scripts/sink_heatmap.py $(VIDEO) --model $(or $(MODEL),tiny_llava_ov) --out $(OUT)/../figures/sink_heatmap.png

demo: install
	$(DEMO_ENV) $(MAKE) --no-print-directory sweep MODELS=tiny_qwen25vl,tiny_llava_ov TASKS=smoke RATIO=0.1,0.25 \
		OUT=$(DEMO_OUT)/runs EXTRA="max_new_tokens=$(DEMO_TOKENS) $(EXTRA)"
	$(DEMO_ENV) $(MAKE) --no-print-directory ablation MODELS=tiny_llava_ov TASKS=smoke RATIO=0.1 OUT=$(DEMO_OUT)/runs \
		EXTRA="max_new_tokens=$(DEMO_TOKENS) $(EXTRA)"
	$(PY) -m sinktop_eval.tables $(DEMO_OUT)/runs --out $(DEMO_OUT)/tables
	$(DEMO_ENV) $(PY) scripts/sink_heatmap.py --model tiny_llava_ov --out $(DEMO_OUT)/figures/sink_heatmap.png
