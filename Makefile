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
# `make demo`: the paper's runs on the embedded default (tiny offline twins, synthetic benchmark): the grid
# on the three twins (two ratios on LLaVA-OV's so the accuracy-vs-retention plot has lines), FlashVID
# (Table 6), the ablation (Table 4), and small versions of the figure runs (frames, sink-handling
# alternatives, a calibration sweep) on the hallucination tasks; then every table and figure, and a sink
# heat map. Random weights rarely emit EOS, so answers are capped at DEMO_TOKENS.
DEMO_OUT ?= results/demo
DEMO_TOKENS ?= 16
DEMO_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install test bench sweep ablation frames alternatives calibrate tables demo heatmap

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

# Fig. 6: dense and VisionZip with/without SToP at 16, 32 and 64 frames (EventHallusion by default)
FRAMES ?= 16,32,64
FIG_TASKS ?= hallucination
frames: install
	$(PY) -m sinktop_eval -m +model=$(MODELS) +pruner=dense,visionzip stop=off,on frames=$(FRAMES) ratio=$(RATIO) \
		tasks=$(FIG_TASKS) limit=$(LIMIT) output_dir=$(OUT) $(CACHE_ARGS) $(EXTRA)

# Fig. 7: ways of handling sinks on VisionZip: none, SToP, attention redistribution, hard pruning at several K
HARD_K ?= 0.05,0.1,0.15,0.2
alternatives: install
	$(PY) -m sinktop_eval -m +model=$(MODELS) +pruner=visionzip stop=off,on,redistribute ratio=$(RATIO) \
		tasks=$(FIG_TASKS) limit=$(LIMIT) output_dir=$(OUT) $(CACHE_ARGS) $(EXTRA)
	$(PY) -m sinktop_eval -m +model=$(MODELS) +pruner=visionzip stop=hard stop.hard_k=$(HARD_K) ratio=$(RATIO) \
		tasks=$(FIG_TASKS) limit=$(LIMIT) output_dir=$(OUT) $(CACHE_ARGS) $(EXTRA)

# Appendix D.4 / re-tuning mu for a (backbone, pruner, ratio): one-parameter sweeps of mu_s, of gamma (mu_s at
# the paper's value) and, for HoliTom, of mu_t (mu_s at the paper's value); then calibration.json (best values)
# and sensitivity.png. CAL_SWEEPER=optuna searches mu_s and gamma together with Hydra's Optuna sweeper instead.
CAL_MODEL ?= llava_ov
CAL_PRUNER ?= visionzip
CAL_TASKS ?= hallucination
CAL_OUT ?= results/calibration/runs
CAL_REPORT ?= $(CAL_OUT)/../report
CAL_MU_S ?= 0,0.01,0.02,0.03,0.04,0.05,0.07,0.1
CAL_GAMMA ?= 1.0,1.05,1.1,1.15,1.2
CAL_MU_T ?= 0,0.03,0.05,0.07,0.09,0.11
CAL_OBJECTIVE ?= eventhallusion/binary_acc
CAL_TRIALS ?= 20
CAL = $(PY) -m sinktop_eval -m +model=$(CAL_MODEL) +pruner=$(CAL_PRUNER) ratio=$(RATIO) tasks=$(CAL_TASKS) \
	limit=$(LIMIT) output_dir=$(CAL_OUT) $(CACHE_ARGS) $(EXTRA)
calibrate: install
ifeq ($(CAL_SWEEPER),optuna)
	$(CAL) stop=stsp hydra/sweeper=optuna hydra.sweeper.direction=maximize hydra.sweeper.n_trials=$(CAL_TRIALS) \
		hydra.sweeper.sampler.seed=0 "stop.mu_s=interval(0,0.1)" "stop.gamma=interval(1.0,1.2)" \
		objective=$(CAL_OBJECTIVE)
else
	$(CAL) stop=stsp stop.mu_s=$(CAL_MU_S)
	$(CAL) stop=stsp stop.gamma=$(CAL_GAMMA)
	$(if $(filter holitom,$(CAL_PRUNER)),$(CAL) stop=on stop.mu_t=$(CAL_MU_T))
endif
	$(PY) -m sinktop_eval.tables $(CAL_OUT) --out $(CAL_REPORT)

tables: install
	$(PY) -m sinktop_eval.tables $(OUT) --out $(OUT)/../tables

heatmap: install
	$(PY) scripts/sink_heatmap.py $(VIDEO) --model $(or $(MODEL),tiny_llava_ov) --out $(OUT)/../figures/sink_heatmap.png

DEMO_RUN = $(DEMO_ENV) $(MAKE) --no-print-directory
DEMO_ARGS = OUT=$(DEMO_OUT)/runs EXTRA="max_new_tokens=$(DEMO_TOKENS) $(EXTRA)"
demo: install
	$(DEMO_RUN) sweep MODELS=tiny_llava_ov TASKS=smoke RATIO=0.1,0.25 $(DEMO_ARGS)
	$(DEMO_RUN) sweep MODELS=tiny_qwen25vl,tiny_llava_video TASKS=smoke RATIO=0.1 $(DEMO_ARGS)
	$(DEMO_RUN) sweep MODELS=tiny_llava_ov PRUNERS=flashvid TASKS=smoke RATIO=0.1 $(DEMO_ARGS)
	$(DEMO_RUN) ablation MODELS=tiny_llava_ov TASKS=smoke RATIO=0.1 $(DEMO_ARGS)
	$(DEMO_RUN) frames MODELS=tiny_llava_ov FRAMES=16,32 FIG_TASKS=smoke_hallucination $(DEMO_ARGS)
	$(DEMO_RUN) alternatives MODELS=tiny_llava_ov HARD_K=0.05,0.1 FIG_TASKS=smoke_hallucination $(DEMO_ARGS)
	$(DEMO_RUN) calibrate CAL_MODEL=tiny_llava_ov CAL_TASKS=smoke_hallucination CAL_MU_S=0,0.03,0.1 \
		CAL_GAMMA=1.0,1.2 CAL_OUT=$(DEMO_OUT)/runs CAL_REPORT=$(DEMO_OUT)/tables FEATURE_CACHE=$(DEMO_OUT)/feature_cache \
		EXTRA="max_new_tokens=$(DEMO_TOKENS) $(EXTRA)"
	$(PY) -m sinktop_eval.tables $(DEMO_OUT)/runs --out $(DEMO_OUT)/tables
	$(DEMO_ENV) $(PY) scripts/sink_heatmap.py --model tiny_llava_ov --out $(DEMO_OUT)/figures/sink_heatmap.png
