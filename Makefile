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

.PHONY: setup quickstart notebooks teach test test-fast system-data system-browser sync strip lab clean-runs

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

# Debian's Chromium for the browser test (Playwright drives it; no browser is ever downloaded).
system-browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "the browser test needs: sudo apt-get install chromium"; fi; \
	fi

quickstart: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/papermill notebooks/00_quickstart.ipynb $(OUT)/00_quickstart.ipynb -p INTERACTIVE False --cwd notebooks
	$(BIN)/jupyter nbconvert --to html $(OUT)/00_quickstart.ipynb --output-dir $(OUT)
	@echo "executed notebook and HTML in $(OUT)/"

# The whole series, headless: every notebooks/0*.ipynb executed into $(OUT) and rendered to HTML there
# (`make notebooks SERIES=notebooks/02_latent_losses_and_collapse.ipynb` runs one). Each notebook
# trains its runs under runs/<notebook>/ and writes its headline numbers there.
SERIES ?= $(sort $(wildcard notebooks/0*.ipynb))
notebooks: $(STAMP)
	mkdir -p $(OUT)
	@set -e; for nb in $(SERIES); do \
	  name=$$(basename $$nb); \
	  echo "== $$name"; \
	  $(BIN)/papermill $$nb $(OUT)/$$name -p INTERACTIVE False --cwd notebooks; \
	  $(BIN)/jupyter nbconvert --to html $(OUT)/$$name --output-dir $(OUT); \
	done
	@echo "executed notebooks and HTML in $(OUT)/"

# Student copies in teach/: the cells tagged `solution` replaced by an empty exercise cell.
teach: $(STAMP)
	$(BIN)/python -m workbench.analysis.teach notebooks/*.ipynb --out teach

test: $(STAMP) system-data system-browser
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Regenerate every .ipynb from its paired percent-format .py (the .py is the reviewed source).
sync: $(STAMP)
	$(BIN)/jupytext --update --to ipynb notebooks/*.py
	$(BIN)/nbstripout notebooks/*.ipynb

strip: $(STAMP)
	$(BIN)/nbstripout notebooks/*.ipynb

# JupyterLab on the notebooks; it refuses to start as root unless told to (containers, CI machines).
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

clean-runs:
	rm -rf runs
