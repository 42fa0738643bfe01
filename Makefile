# MLOps Workbook — `make help` lists the targets.
# A fresh machine needs only Python 3.11+, make and git: `make course`, then `make test`.

.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
VENV_PY := $(VENV)/bin/python
# The course's processes cache bytecode as they import, even where PYTHONDONTWRITEBYTECODE is set (as
# on some CI machines): without the cache every process compiles every module it imports, every time,
# and compiling all 37,000 at set-up instead took a minute. The .pyc files land only in the
# environments and in __pycache__ folders that git ignores.
unexport PYTHONDONTWRITEBYTECODE
# Rebuilt whenever the lock or the project changes; it lives inside .venv so that removing
# .venv also forgets it.
VENV_STAMP := $(VENV)/.synced-from-lock
# Chapter 05's orchestrator, Mage, gets an environment of its own (see orchestration/requirements.in).
MAGE_VENV := .venv-mage
MAGE_STAMP := $(MAGE_VENV)/.synced-from-lock
MAGE_LOCK := orchestration/requirements.lock
MAGE_PORT ?= 6789
# The helpers modules Mage's blocks run, tested again in .venv-mage with its own library versions
# (by a test in tests/orchestrate/test_mage.py, so the pass runs beside the others).
MAGE_TESTS := tests/orchestrate/test_pipelines.py tests/core/test_features.py tests/ml/test_training.py \
	tests/core/test_data.py tests/core/test_twin.py tests/ml/test_tracking.py tests/ml/test_registry.py \
	tests/ml/test_models.py tests/serve/test_batch.py tests/monitor/test_alerts.py tests/core/test_config.py \
	tests/core/test_tlc.py tests/ml/test_boosting.py tests/core/test_distributions.py tests/serve/test_predictions.py \
	tests/core/test_polling.py

# Use uv from PATH when there is one; otherwise bootstrap a pinned copy into a private
# tools venv (.tools/), never into the user's site-packages.
UV ?= $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
UV_BOOTSTRAP := $(filter .tools/bin/uv,$(UV))

# Extra arguments for `make course`, e.g. COURSE_ARGS="--only 02 --offline".
COURSE_ARGS ?=
# Extra arguments for `make test`, e.g. PYTEST_ARGS="-k course -x".
PYTEST_ARGS ?=

# JupyterLab listens on loopback only. That is enough on a laptop, through an SSH tunnel
# (EC2: ssh -L 8888:localhost:8888 ...) and through Codespaces port forwarding, which
# connects from inside the container. Set LAB_IP=0.0.0.0 when the browser must reach the
# machine directly (e.g. an EC2 security-group rule or a container's published port): it
# then listens on every interface, still protected by Jupyter's token.
LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888
# Jupyter refuses to start as root (a container's or CI machine's default user) unless told to.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# Chapter 09's team tracking server (make mlflow-team); its data lives in team-server/.
TEAM_PORT ?= $(or $(WORKBOOK_TEAM_PORT),5001)

# The browser tests' screenshots that the README shows, copied into docs/screenshots/ by `make screenshots`.
SCREENSHOTS := lab-chapter-01 mlflow-runs mlflow-run mlflow-model mage-pipelines mage-runs
# The tests that take them: the browser tests, and test_mage.py whole, since its UI test looks at the
# runs its earlier tests trigger; not the check of the copies, which this target is about to make.
SCREENSHOT_TESTS := tests/test_browser.py tests/orchestrate/test_mage.py \
	tests/servers/test_team_server.py::test_the_ui_in_a_browser_asks_for_a_login_and_opens_for_the_admin \
	--deselect tests/test_browser.py::test_the_readme_shows_every_screenshot_make_screenshots_takes_and_they_stay_small

.PHONY: help setup course lab test unit lint clean distclean lock mlflow mlflow-team notebooks replay serve mage mage-setup mage-lock \
	screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) \
		| awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup: $(VENV_STAMP) ## Create .venv from uv.lock with helpers installed editable

$(VENV_STAMP): uv.lock pyproject.toml | $(UV_BOOTSTRAP)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --python $(PYTHON)
	@touch $@

mage-setup: $(MAGE_STAMP) ## Create .venv-mage (Mage, chapter 05) from its lock, with helpers installed editable

# `pip sync` makes the venv exactly the lock, which removes helpers' editable install: so it goes after.
$(MAGE_STAMP): $(MAGE_LOCK) pyproject.toml | $(UV_BOOTSTRAP)
	test -x $(MAGE_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(MAGE_VENV)
	$(UV) pip sync --quiet --python $(MAGE_VENV)/bin/python $(MAGE_LOCK)
	$(UV) pip install --quiet --no-deps --python $(MAGE_VENV)/bin/python -e .
	@touch $@

mage-lock: $(UV_BOOTSTRAP) ## Re-resolve orchestration/requirements.lock after editing orchestration/requirements.in
	$(UV) pip compile --quiet --universal --python-version 3.11 orchestration/requirements.in -o $(MAGE_LOCK)

mage: setup mage-setup ## Open the Mage UI on the course's pipelines (port 6789) until Ctrl-C
	$(VENV_PY) -m helpers.orchestrate.mage --port $(MAGE_PORT)

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

course: setup mage-setup ## Run every chapter notebook into build/notebooks/ and print a summary
	$(VENV_PY) -m helpers.course $(COURSE_ARGS)

lab: setup mage-setup ## Start JupyterLab on the course environment (port 8888)
	$(VENV)/bin/jupyter lab --ip $(LAB_IP) --port $(LAB_PORT) --no-browser $(LAB_ROOT_FLAG)

mlflow: setup ## Start the MLflow tracking server and UI on the course store (port 5000) until Ctrl-C
	$(VENV_PY) -m helpers.servers.mlflow_server --port 5000

mlflow-team: setup ## Start the team's MLflow server (PostgreSQL, S3, users; port 5001) until Ctrl-C
	$(VENV_PY) -m helpers.servers.team_server --port $(TEAM_PORT)

serve: setup ## Serve MODEL_URI (default: the champion) with gunicorn on SERVE_BIND (127.0.0.1:9696) until Ctrl-C
	$(VENV_PY) -m helpers.serve.service_process --bind $(or $(SERVE_BIND),127.0.0.1:9696)

notebooks: setup mage-setup ## Run the course as a learner would, in a fresh clone of the working tree, offline, and copy its executed notebooks back: their committed form (~7 min)
	$(VENV_PY) -m helpers.course.notebook_form refresh

test: setup mage-setup lint ## Run every test offline, as CI does (MAGE_TESTS also in .venv-mage, by test_mage.py)
	WORKBOOK_OFFLINE=1 WORKBOOK_QUICK=1 $(VENV_PY) -m pytest -n 2 --dist loadgroup --no-loadscope-reorder \
		--durations=25 $(PYTEST_ARGS)

lint: setup ## Check the code with ruff: lint rules and formatting (pyproject.toml's [tool.ruff])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

screenshots: setup mage-setup ## Re-take the README's screenshots with the browser tests (~5 min) into docs/screenshots/
	rm -rf build/screenshots
	WORKBOOK_OFFLINE=1 WORKBOOK_QUICK=1 WORKBOOK_SCREENSHOTS_DIR=build/screenshots $(VENV_PY) -m pytest $(SCREENSHOT_TESTS)
	mkdir -p docs/screenshots
	cp $(SCREENSHOTS:%=build/screenshots/%.png) docs/screenshots/

replay: setup mage-setup ## Replay the committed notebooks with nbval, offline in the default mode, comparing their checked outputs (~6 min)
	WORKBOOK_OFFLINE=1 $(VENV_PY) -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--durations=10 notebooks/ $(PYTEST_ARGS)

# The quick loop: only the tests that start no server, kernel or install (conftest.py's --unit refuses
# to start one); add -n 2 through PYTEST_ARGS for two workers.
unit: setup ## Run the unit tests alone, a quick loop: no server, kernel, install, notebook or clone
	WORKBOOK_OFFLINE=1 WORKBOOK_QUICK=1 $(VENV_PY) -m pytest --unit $(PYTEST_ARGS)

lock: $(UV_BOOTSTRAP) ## Re-resolve uv.lock after editing pyproject.toml and rewrite environment.yml to match
	$(UV) lock
	{ sed '/^  - pip:$$/q' environment.yml; \
	  $(UV) export --frozen --no-hashes --no-emit-project --no-header --no-annotate | sed 's/^/      - /'; \
	  echo '      - -e .'; } > environment.yml.part
	mv environment.yml.part environment.yml

clean: ## Remove generated outputs (build/, models/, MLflow files, team-server/, monitoring.db, caches); keeps data/
	rm -rf build models mlflow.db monitoring.db mlruns mlartifacts team-server .pytest_cache
	find . -type d -name __pycache__ -not -path './.venv/*' -not -path './.tools/*' -prune \
		-exec rm -rf {} +

distclean: clean ## Also remove .venv, .tools and the offline twin of the data
	rm -rf $(VENV) $(MAGE_VENV) .tools data/twin
