# `make demo` and `make test` work on a fresh machine with internet for pip: both set up .venv first, from the
# pinned requirements (requirements-pinned.txt, torch included); requirements.txt is for a GPU machine's own torch.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
SYSTEM_PATH := $(PATH)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test grade report compare bench gpu-check clean

setup: $(STAMP)

# The stamp marks a finished install, and the graded scripts use .venv only then. A failed install removes the
# venv, so no half-made one is left for them (or for the PATH above) to pick up.
$(STAMP): requirements-pinned.txt requirements-dev.txt
	rm -f $(STAMP)
	$(PY) -m venv $(VENV) && $(VENV)/bin/pip install -q -r requirements-dev.txt || \
	  { rm -rf $(VENV); echo "error: installing the requirements into $(VENV) failed (see above); removed it" >&2; \
	    exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	python3 -m pytest -q -rs --durations=20 tests

# The graders' run on a scratch clone (needs the demo's outputs: runs `make demo` first when they are missing).
grade: $(STAMP)
	@[ -f demo_out/p1/best.safetensors ] && [ -f demo_out/p2/checkpoint.pth ] || bash scripts/demo.sh
	python3 scripts/grade.py

# The report's evidence from the demo's outputs (offline): demo_out/report/report.{md,html,pdf}.
report: $(STAMP)
	@[ -f demo_out/p1/trust.json ] && [ -f demo_out/p2/attn/scene_002001.json ] || bash scripts/demo.sh
	python3 hw3_report.py --p1-run demo_out/p1 --val-dir demo_out/data/val --p2-dir demo_out/p2/attn \
	  --p2-captions demo_out/world/val/captions.json \
	  --attn-images $$(ls demo_out/data/val/*.jpg | awk 'NR % 100 == 1' | head -n 3) --output demo_out/report \
	  --p1-pointing demo_out/p1/trust.json $$([ -f demo_out/p2/trust.json ] && echo --p2-pointing demo_out/p2/trust.json) \
	  --p2-limit 5 $(REPORT_FLAGS)

# Two extra short runs for Problem 1 question 1's settings discussion: the demo's recipe for 3 epochs, once with its
# AdamW and once with SGD (momentum 0.9), everything else equal (one factor), about a minute each on two CPU
# cores; then the report again with both beside the demo's run. docs/report.md has the real-data equivalent.
COMPARE_RECIPE := --data-dir demo_out/data --model vit_demo_patch8 --no-pretrained --epochs 3 --batch-size 32 \
  --lr 2e-3 --weight-decay 0.05 --drop-path 0 --label-smoothing 0 --workers 2
COMPARE_RUNS := demo_out/compare/adamw demo_out/compare/sgd

compare: $(STAMP)
	@[ -f demo_out/p1/trust.json ] && [ -f demo_out/p2/attn/scene_002001.json ] || bash scripts/demo.sh
	HF_HUB_OFFLINE=1 python3 p1_train.py $(COMPARE_RECIPE) --opt adamw --output-dir demo_out/compare/adamw
	HF_HUB_OFFLINE=1 python3 p1_train.py $(COMPARE_RECIPE) --opt sgd --output-dir demo_out/compare/sgd
	$(MAKE) report REPORT_FLAGS="--compare $(COMPARE_RUNS)"

bench: $(STAMP)
	python3 bench/bench_p1_inference.py
	python3 bench/bench_catr_decode.py
	python3 bench/bench_catr_beam.py
	python3 bench/bench_p1_precision.py
	python3 bench/bench_catr_train.py --seeds 0 1 2
	python3 bench/bench_p1_pointing.py

# On a CUDA machine: one table of everything that differs there, with the python3 that machine has (no venv, no
# install; the same as `python3 scripts/gpu_check.py`; --cpu runs it at toy sizes).
gpu-check:
	PATH="$(SYSTEM_PATH)" $(PY) scripts/gpu_check.py

clean:
	rm -rf $(VENV) demo_out
