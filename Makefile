# `make demo` and `make test` work on a fresh machine: both set up .venv first.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test grade bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	python3 -m pytest -q tests

# The graders' run on a scratch clone (needs the demo's outputs: runs `make demo` first when they are missing).
grade: $(STAMP)
	@[ -f demo_out/p1/best.safetensors ] && [ -f demo_out/p2/tiny_catr.pth ] || bash scripts/demo.sh
	python3 scripts/grade.py

bench: $(STAMP)
	python3 bench/bench_p1_inference.py
	python3 bench/bench_catr_decode.py
	python3 bench/bench_p1_int8.py

clean:
	rm -rf $(VENV) demo_out
