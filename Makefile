# The README's commands. `make test` installs everything it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
OUT ?= runs/demo
# Offline, the shared RetinaMNIST file; with internet, DATA=retinamnist downloads through medmnist.
DATA ?= $(if $(wildcard ../shared/data/retinamnist.npz),../shared/data/retinamnist.npz,retinamnist)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,ray,tb]'
	touch $@

demo: setup
	$(BIN)/ganaug run --profile $(PROFILE) --data $(DATA) --out $(OUT)

lint: setup
	$(BIN)/ruff check src tests $(wildcard bench)

test: setup lint
	$(BIN)/python -m pytest -q

# the speed rows (under a minute), then time to quality (about 75 min on 2 CPU cores)
bench: setup
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.time_to_quality

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
