# Two commands on a fresh machine: `make report` and `make test`. Each creates .venv from
# requirements.txt when it is missing (or older than requirements.txt) and then runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: report test smoke verify verify-loso render spread bench bench-verify submission clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

report: $(VENV)/.installed  ## train everything, write report/ and README.md
	$(PY) reproduce.py --all

test: $(VENV)/.installed  ## the test suite (a few minutes on a laptop CPU)
	$(PY) -m pytest -q

smoke: $(VENV)/.installed  ## the whole pipeline on tiny sizes, into report-smoke/
	$(PY) reproduce.py --smoke --all

verify: $(VENV)/.installed  ## recompute every section in scratch/ and compare with report/results.json
	$(PY) reproduce.py --verify

verify-loso: $(VENV)/.installed  ## every recorded seed (and rounding perturbation) verified against tolerances made from the others (no training)
	$(PY) bench/verify.py --loso

render: $(VENV)/.installed  ## rebuild the PDFs and READMEs from the registry
	$(PY) reproduce.py --render

spread: $(VENV)/.installed  ## every section with seeds 1 and 2 beside the registry's 0, and 3 reruns of seed 0 with perturbed rounding: the spreads --verify takes its tolerances from
	$(PY) reproduce.py --spread --seeds 0,1,2
	$(PY) reproduce.py --spread --jitter 3

bench: $(VENV)/.installed  ## time cold runs and the data path on this machine: bench/results.json, then the README
	$(PY) bench/run.py
	$(PY) reproduce.py --render

bench-verify: $(VENV)/.installed  ## the report's sections rerun with 2 threads and verified: bench/results.json, then the README
	-$(PY) bench/verify.py
	$(PY) reproduce.py --render

submission: $(VENV)/.installed  ## the zip of the brief's section 4.3.3 from report/: needs your name in author.toml
	$(PY) reproduce.py --submission submission.zip

clean:  ## remove caches and scratch output (keeps .venv, data and checkpoints)
	rm -rf scratch report-smoke .pytest_cache
