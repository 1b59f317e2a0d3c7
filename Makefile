# The two entry points of the README:
#   make quickstart   set up, then run notebooks/00_quickstart.ipynb headless on the embedded data
#   make test         set up, then run the test suite
# Set-up is a stamp file: it reruns only when requirements.txt or pyproject.toml change.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT := runs/notebooks
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup quickstart test test-fast system-data sync strip lab clean-runs

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Debian's FashionMNIST package (real data for the tests; read in place, never copied).
system-data:
	@if [ ! -d $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "FashionMNIST tests need: sudo apt-get install dataset-fashion-mnist"; fi; \
	fi

quickstart: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/papermill notebooks/00_quickstart.ipynb $(OUT)/00_quickstart.ipynb -p INTERACTIVE False --cwd notebooks
	$(BIN)/jupyter nbconvert --to html $(OUT)/00_quickstart.ipynb --output-dir $(OUT)
	@echo "executed notebook and HTML in $(OUT)/"

test: $(STAMP) system-data
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Regenerate every .ipynb from its paired percent-format .py (the .py is the reviewed source).
sync: $(STAMP)
	$(BIN)/jupytext --update --to ipynb notebooks/*.py
	$(BIN)/nbstripout notebooks/*.ipynb

strip: $(STAMP)
	$(BIN)/nbstripout notebooks/*.ipynb

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet jupyterlab
	$(BIN)/jupyter lab notebooks

clean-runs:
	rm -rf runs
