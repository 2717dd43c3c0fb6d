PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench quality lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned before the package so pip never resolves a multi-GB CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,pretrained,images,safe,distributed]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m skmm demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q --doctest-modules skmm tests $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Quality of the defaults beside scikit-learn baselines, on the real datasets
# of ../shared/data when present: QUALITY_ARGS=--quick takes about 15 minutes
# on one thread, the full run longer.
quality: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/quality.py $(QUALITY_ARGS)

# The HTML site in docs/_build/html, offline; a warning fails the build.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

lint: $(STAMP)
	$(VENV)/bin/ruff check skmm tests benchmarks examples
	$(VENV)/bin/ruff format --check skmm tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/generated docs/api.rst
