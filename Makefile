# Two commands do everything: `make run` (the whole lab, headless) and `make test`.
# Both create ./.venv and install tplib into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The course data, if a copy sits beside the checkout; override: make run DATA=/path/to/15SceneData
DATA ?= $(firstword $(wildcard ../shared/data/15SceneData))
ARGS ?=
# pytest workers for `make test`: the notebook kernels run in one, the other tests beside them
JOBS ?= 2

.PHONY: run quick test lint notebooks students answer-key bench clean-venv

$(BIN)/tplib: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

run: $(BIN)/tplib  ## the lab: 15 Scene -> features -> LinearSVC -> report in ./reports/
	$(BIN)/tplib run $(if $(DATA),--data $(DATA)) $(ARGS)

quick: $(BIN)/tplib  ## a one-minute classroom demo (5 + 5 images per class)
	$(BIN)/tplib run --quick $(if $(DATA),--data $(DATA)) $(ARGS)

test: $(BIN)/tplib  ## the test suite (real-data tests need ../shared/data or TPLIB_REAL_DATA)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup $(ARGS)

notebooks: $(BIN)/tplib  ## run the solution notebooks in the ci profile, store outputs, regenerate students
	$(BIN)/python tools/refresh_notebooks.py $(NB)

students: $(BIN)/tplib  ## nbgrader metadata in the solutions, then regenerate notebooks/student/
	$(BIN)/python tools/nbgrader_metadata.py
	$(BIN)/python tools/student_notebooks.py

answer-key: $(BIN)/tplib  ## run the notebooks in the full profile, write docs/answer-key.md
	$(BIN)/python tools/answer_key.py $(NB)

lint: $(BIN)/tplib  ## ruff (configured in pyproject.toml)
	$(BIN)/ruff check .

bench: $(BIN)/tplib  ## extraction benchmark (ratios measured side by side)
	$(BIN)/python benchmarks/extraction.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
