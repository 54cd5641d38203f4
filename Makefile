# Two set-up commands for a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
# Both create .venv on first use and are safe to run again.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: on CPU machines this is the local CPU build, never a CUDA download.
	$(BIN)/pip install --quiet torch==2.13.0
	# scale: Ray, so the test suite runs the Ray executor on a local 2-CPU instance
	$(BIN)/pip install --quiet -e '.[dev,scale]'
	touch $(STAMP)

.PHONY: install demo test test-unit lint bench bench-peers chromium
install: $(STAMP)

# the browser test of report.html needs Chromium (Debian package); best effort, else it is skipped
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update && apt-get install -y chromium; } || \
	  echo "chromium not installed: the browser test of report.html will be skipped"

demo: $(STAMP)
	$(BIN)/python cli.py demo --out demo-out

# every tier (unit, embedded, slow): what CI runs
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

# the unit tier only (tiny random models, about a minute)
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not embedded and not slow"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# valuebias against TransformerLens, nnsight, reward-lens and plain transformers, one run (~20 min
# on 2 CPU cores): writes benchmarks/results/peers_cpu.json and prints the table
bench-peers: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]' torch==2.13.0
	$(BIN)/python benchmarks/run.py peers
