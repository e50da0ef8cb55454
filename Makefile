# lifelab: two commands on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NBVAL  := --nbval-lax --nbval-sanitize-with notebooks/nbval_sanitize.cfg

.PHONY: run results test lint lab bench perfcheck install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dev,cluster]'
	touch $(STAMP)

install: $(STAMP)

# The main job: every experiment at quick size, headless, then a report of this run. Quick
# tables go to data/results/quick/ and the report to data/runs/report/ (both ignored by git):
# `make run` never replaces the full-size tables or docs/performance/ (that is `make results`).
run: $(STAMP)
	@for f in experiments/*.toml; do \
	  echo "== experiment $$f"; \
	  $(BIN)/lifelab experiment run $$f --json | tail -1 | $(BIN)/python -c \
	    'import json,sys; r=json.load(sys.stdin); print("   ", r["status"], "%.0f s" % r["duration_s"], r["notebook"])' \
	  || exit 1; \
	done
	$(BIN)/lifelab report --results data/results/quick --out data/runs/report
	@echo "results: data/results/quick/   report: data/runs/report/README.md   notebooks: data/runs/experiments/"

# The same at full size (long: tens of minutes on 2 cores): the committed performance record,
# data/results/<suite>/ and docs/performance/.
results: $(STAMP)
	@for f in experiments/*.toml; do $(BIN)/lifelab experiment run $$f --full || exit 1; done
	$(BIN)/lifelab report

# The compiled engine's kernels (the tick, and real-time pacing) are compiled once per machine
# (~20 s each) into numba's cache, before the tests, so no test process pays for it. The suite
# runs on the compiled engine (the default), then the runtime's own tests again on the Python engine (the reference), less the
# slow load and soak tests: on the Python engine the 200 000-push flood of test_load took from
# under a minute to over its 10-minute limit (four producers and a CPU-bound tick thread
# convoy on the queue lock and the GIL); they run on the compiled engine in the first pass.
test: $(STAMP)
	$(BIN)/ruff check lifelab tests
	$(BIN)/python -c 'from lifelab import Life, LifeConfig; Life(LifeConfig()).run(1); \
		Life(LifeConfig(clock="realtime", tick_interval=0.001)).run(3)'
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -q --engine python -m "not slow" tests/life tests/memory tests/store tests/reliability
	$(BIN)/python -m pytest $(NBVAL) notebooks/

lint: $(STAMP)
	$(BIN)/ruff check lifelab tests
	$(BIN)/ruff format --check lifelab tests

bench: $(STAMP)
	$(BIN)/lifelab bench loop --ticks 200000 --baseline
	$(BIN)/lifelab bench loop --ticks 20000 --events-per-tick 64 --batch-size 64
	$(BIN)/lifelab bench memory --entries 100000

# Instruction counts (valgrind) of fixed workloads against data/results/perfcheck/baseline.json:
# exit 1 when one grew by more than 3 %. For people and CI jobs that want a regression gate;
# not part of `make test`. `lifelab perfcheck --update` rewrites the baseline.
perfcheck: $(STAMP)
	$(BIN)/lifelab perfcheck

# JupyterLab refuses to start as root without --allow-root; containers usually run as root.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
