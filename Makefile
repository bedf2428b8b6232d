# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/lstm

.PHONY: demo test lint format install install-dev browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp files make a second `make` skip the install when nothing changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The bundle is a file target: a second `make demo` serves the trained model straight away.
$(RUN)/bundle.json: | $(VENV)/.installed
	$(BIN)/critic train --model lstm --out $(RUN) --max-seconds 420
	$(BIN)/critic evaluate $(RUN) --split test --plots $(RUN)/evaluation
	$(BIN)/critic predict $(RUN) \
		"One of the best films I have seen in years: a moving story, a superb cast and a score I still hum." \
		"I wanted to like it, but the plot was a mess, the acting was wooden and the ending was not worth the wait."

demo: install $(RUN)/bundle.json
	$(BIN)/critic serve $(RUN) --host 127.0.0.1 --port 8080

# The browser tests drive Debian's chromium: Playwright's own browser download needs the internet.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		echo "make: installing Debian's chromium for the browser tests"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install-dev browser
	$(BIN)/pytest -q

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install-dev
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: install
	$(BIN)/python bench/train_reference.py

clean:
	rm -rf $(VENV) runs .pytest_cache
