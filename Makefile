# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/lstm

.PHONY: demo test lint format install install-dev browser wrk domains bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp files make a second `make` skip the install when nothing changed.
# The onnx extra: ONNX Runtime answers the LSTM 2-3x faster than eager PyTorch (see
# docs/benchmarks.md), and critic serve picks it by itself where it measured faster.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[onnx]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The demo serves two production variants side by side: a strong model that fits in about a
# minute (nbsvm) as the champion, and the reference LSTM as the challenger. The bundles are
# file targets: a second `make demo` serves straight away.
CHAMPION ?= runs/nbsvm
CHALLENGER ?= runs/lstm
SAMPLES := "One of the best films I have seen in years: a moving story, a superb cast and a score I still hum." \
	"I wanted to like it, but the plot was a mess, the acting was wooden and the ending was not worth the wait."

$(CHAMPION)/bundle.json: | $(VENV)/.installed
	$(BIN)/critic train --model nbsvm --out $(CHAMPION)

$(CHALLENGER)/bundle.json: | $(VENV)/.installed
	$(BIN)/critic train --model lstm --out $(CHALLENGER) --max-seconds 300
	$(BIN)/critic evaluate $(CHALLENGER) --split test --plots $(CHALLENGER)/evaluation

runs/compare/report.md: $(CHAMPION)/bundle.json $(CHALLENGER)/bundle.json
	$(BIN)/critic compare $(CHAMPION) $(CHALLENGER) --out runs/compare --repeats 1
	$(BIN)/critic predict $(CHAMPION) $(SAMPLES)

demo: install runs/compare/report.md
	$(BIN)/critic serve --variant champion=$(CHAMPION):0.7 --variant challenger=$(CHALLENGER):0.3 \
		--host 127.0.0.1 --port 8080

# The browser tests drive Debian's chromium: Playwright's own browser download needs the internet.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		echo "make: installing Debian's chromium for the browser tests"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The load benchmarks (and their tests) drive the server with Debian's wrk.
wrk:
	@command -v wrk >/dev/null || { \
		echo "make: installing Debian's wrk for the load benchmarks"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }

# The Amazon review snippets (critic's --source amazon, a domain that is not films) ship in
# VADER's source package on PyPI: fetched once, read where it lies, never at run time.
VADER_SDIST ?= $(VENV)/packages/vaderSentiment-3.3.2.tar.gz
$(VADER_SDIST): | $(BIN)/python
	$(BIN)/pip download --quiet --no-deps --no-binary :all: vaderSentiment==3.3.2 -d $(dir $@)
domains: $(VADER_SDIST)

# Two passes: the suite on TEST_PROCESSES processes (pytest-xdist), then the tests marked
# `alone` (they read how busy the cores are) by themselves. --durations: the slowest tests
# named at the end, so the suite stays within its 15 minutes on 2 cores.
TEST_PROCESSES ?= 2
test: install-dev browser wrk domains
	CRITIC_VADER_SDIST=$(abspath $(VADER_SDIST)) $(BIN)/pytest -q -n $(TEST_PROCESSES) \
		-m "not alone" --durations=25
	$(BIN)/pytest -q -m alone

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install-dev
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# The benchmarks the README quotes (about 20 minutes): the reference training, and the
# endpoint against the ten-line server on the demo's bundles (trained first if missing).
bench: install wrk $(CHAMPION)/bundle.json $(CHALLENGER)/bundle.json
	$(BIN)/python bench/train_reference.py
	$(BIN)/python bench/serve_load.py $(CHAMPION) $(CHALLENGER)

clean:
	rm -rf $(VENV) runs .pytest_cache
