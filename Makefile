# Both targets create .venv on first use and install the project with its test dependencies.
# constraints.txt pins torch to the 2.13.0 CPU build on this project's machines.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := demo

.PHONY: install test typecheck demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing steplr and its dependencies (torch CPU, matplotlib, scikit-learn, optuna, pytest, mypy) into $(VENV):" \
		"about 1-2 minutes the first time, quiet while it works."
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

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

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis .mypy_cache
