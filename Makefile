# Every target creates .venv on first use and installs the project with all its extras and test tools.
# constraints.txt pins torch to the 2.13.0 CPU build on this project's machines.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := demo

.PHONY: install test test-fast lint typecheck demo bench clean docs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing steplr with every extra (torch CPU, matplotlib, scikit-learn, optuna) and its test tools into $(VENV):" \
		"about 1-2 minutes the first time, quiet while it works."
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,test]'
	touch $(STAMP)

# Everything, the integration tests included (PostgreSQL, Chromium, signals, Lightning, a fresh core-only venv).
test: $(STAMP)
	$(PY) -m pytest -q

# The unit tests alone: no servers, browsers, subprocess kills or long command runs.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration"

# Style (ruff) and the layer contract of DESIGN.md (import-linter, configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check

typecheck: $(STAMP)
	$(PY) -m mypy

demo: $(STAMP)
	mkdir -p $(DEMO)
	$(VENV)/bin/steplr explain --lr 0.1 --step-size 10 --gamma 0.5 --epochs 40
	$(VENV)/bin/steplr plot --lr 0.1 --step-size 10 --gamma 0.5 --epochs 40 -o $(DEMO)/lr.png --force
	$(VENV)/bin/steplr compare qwerty --seeds 5 --schedules none,step,cosine,plateau --out $(DEMO)/qwerty --force
	$(VENV)/bin/steplr compare digits --seeds 5 --schedules none,step,cosine,plateau --out $(DEMO)/digits --force
	@echo "plot: $(DEMO)/lr.png"
	@echo "reports: $(DEMO)/qwerty/report.html $(DEMO)/digits/report.html"
	@echo "to run steplr yourself: . $(VENV)/bin/activate (or call $(VENV)/bin/steplr)"

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_experiments.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_command.py
	$(PY) benchmarks/bench_generic.py
	$(PY) benchmarks/bench_user_model.py

# The documentation site into site/ (mkdocs-material, mkdocstrings; pinned in docs/requirements.txt, installed into
# .venv when missing). --strict: a broken link or reference fails it. docs/hooks.py runs the commands the pages show
# and draws their figures with steplr itself (about a minute).
docs: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -r docs/requirements.txt
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis .mypy_cache build dist site
