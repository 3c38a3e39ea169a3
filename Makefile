# The two commands of the README:
#   make repro   set up the environment, then `dvc repro` the pipeline of the active profile
#   make test    set up the environment, run the unit tests, run the (default) pipeline, run nbmake on
#                every notebook
# Everything is installed from pyproject.toml into .venv; nothing needs to be installed by hand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
export PYTHONHASHSEED := 0

.PHONY: install repro test unit notebooks clean-outputs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

repro: install
	$(BIN)/dvc repro

unit: install
	$(BIN)/python -m pytest tests

notebooks: install
	$(BIN)/dvc repro
	$(BIN)/python -m pytest --nbmake notebooks

test: unit notebooks
