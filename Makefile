# Two commands do all set-up on a fresh machine:
#   make demo   - installs into .venv, then runs the report's two experiments on MNIST
#   make test   - installs into .venv, then runs ruff and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNS ?= runs

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-ci.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-ci.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test,onnx,bench]'
	touch $@

demo: setup
	$(BIN)/oneclass reproduce all-digits --out $(RUNS)/all-digits --overwrite
	$(BIN)/oneclass reproduce digits-069 --out $(RUNS)/digits-069 --overwrite
	@echo "figures: $(RUNS)/all-digits/*.png $(RUNS)/digits-069/*.png"

lint: setup
	$(BIN)/ruff check src tests benchmarks

test: setup lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(RUNS) .pytest_cache .ruff_cache
