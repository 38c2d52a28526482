# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-solver solver-corpus constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all]'
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/jobtrail demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/deptry src tests bench

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25

bench: $(VENV)/.installed-test
	$(BIN)/python bench/bench_jobs.py

# Solver corpus (issue 11): jobtrail's solver against plain SymPy, judged with mpmath.
bench-solver: $(VENV)/.installed-test
	$(BIN)/python bench/bench_solver.py --quiet

# Regenerate bench/solver_corpus.jsonl (mpmath references) from bench/solver_problems.py.
solver-corpus: $(VENV)/.installed-test
	$(BIN)/python bench/make_solver_corpus.py

# Resolve every dependency afresh (newest releases pyproject.toml admits) into
# constraints.txt; commit it after a green `make test`.
constraints:
	rm -rf /tmp/jobtrail-constraints && $(PYTHON) -m venv /tmp/jobtrail-constraints
	/tmp/jobtrail-constraints/bin/python -m pip install -q --upgrade pip
	/tmp/jobtrail-constraints/bin/python -m pip install -q -e '.[test]'
	head -4 constraints.txt > constraints.txt.new
	/tmp/jobtrail-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^jobtrail' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) build dist src/*.egg-info
