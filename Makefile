# Everything a fresh machine needs: `make demo` and `make test` create .venv and install into it.
# TORCH_SPEC picks the torch build. The default is the CPU build of 2.13.0; with a GPU, e.g.
#   make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.tora-installed

.PHONY: install demo test test-slow lint bench clean

install: $(STAMP)

# bullet-safety-gym (the safe-RL tasks) pins gymnasium~=0.28.1 but works on gymnasium 1.x, so it
# is installed last and without its dependencies; pybullet comes with the "safe" extra.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev,safe,serve,scale]"
	$(BIN)/python -m pip install --quiet --no-deps bullet-safety-gym==1.4.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tora demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/tora bench speed

clean:
	rm -rf $(VENV) runs
