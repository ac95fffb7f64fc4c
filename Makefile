# kit: the README's commands. Everything installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kit-installed
NOTEBOOKS := $(shell find notebooks -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' 2>/dev/null)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo test lint lab voila bench clean

$(STAMP): pyproject.toml
	@echo "[kit] creating $(VENV) with $(PYTHON) and installing kit[lab,dev] (torch 2.14.1, a few minutes the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,dev]'
	@touch $(STAMP)
	@echo "[kit] installed into $(VENV)"

setup: $(STAMP)

demo: setup
	$(BIN)/python -m kit demo

lint: setup
	$(BIN)/ruff check kit widgets tests benchmarks
	$(BIN)/nbstripout --verify $(NOTEBOOKS)
	@echo "[kit] lint: ruff clean, notebooks stripped"

# tests/browser (JupyterLab and Voila in Debian's chromium) runs where chromium is installed; KIT_BROWSER_TESTS=1
# (set by .ci/run) makes a missing browser an error, KIT_BROWSER_TESTS=0 skips it. Its tests share one xdist
# group, so one worker holds the Jupyter server and the browser while the other runs the rest.
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup --timeout 900 --durations 25
	@echo "[kit] tests passed"

lab: setup
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

# the explore notebooks as apps, no code cells: `make voila` (all of them) or `make voila SERIES=trajectory`
voila: setup
	$(BIN)/python -m kit voila $(SERIES)

bench: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
