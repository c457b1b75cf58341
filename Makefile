# Every target sets up .venv itself when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MPLBACKEND ?= Agg
export SDL_VIDEODRIVER ?= dummy

.PHONY: setup train test test-slow test-all bench docs lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,viz]"
	touch $(STAMP)

# The default experiment: A2C on CartPole-v1, 64 seeds at once.
train: $(STAMP)
	$(PY) experiments/train.py --agent a2c --env CartPole-v1 --num-seeds 64 \
		--out results/a2c_CartPole-v1 --overwrite

# The fast core (what CI runs). Learning tests are marked slow. The core's programs are small
# and run for moments, so compiling them is most of its time: XLA:CPU compiles them with LLVM's
# optimisation level 0 and with its older elemental emitters instead of its fusion emitters,
# which halves compile time (the same programs and checks; test-slow and test-all compile at
# the default level, and benchmarks/goldens.py checks results bit for bit there). Tests that
# compare two differently built programs bit for bit compile those with the fusion emitters
# (tests/bitwise.py).
FAST_XLA_FLAGS := --xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false
test: $(STAMP)
	XLA_FLAGS="$(FAST_XLA_FLAGS) $$XLA_FLAGS" $(PY) -m pytest -q -m "not slow" -n 2

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_train.py --agent a2c --seeds 1 16 64 256 1024 --steps 50000 \
		--solve --solve-seeds 1 16 64 256 --out benchmarks/results.json
	$(PY) benchmarks/bench_train.py --agent ppo --seeds 1 16 64 256 1024 --steps 50000 \
		--solve --solve-seeds 1 16 64 --out benchmarks/results.json

# The API reference from the docstrings (mkdocs + mkdocstrings, the dev extra installs them):
# site/index.html. --strict turns every warning (a bad docstring section, a broken link) into an
# error. NO_MKDOCS_2_WARNING silences Material for MkDocs' banner about its own future.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) results site .pytest_cache .ruff_cache
