# kit: the README's commands. Everything installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kit-installed
NOTEBOOKS := $(shell find notebooks -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' 2>/dev/null)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo test lint lab bench clean

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

test: lint
	$(BIN)/python -m pytest -n 2 --timeout 900 --durations 15
	@echo "[kit] tests passed"

lab: setup
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

bench: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
