# Set-up and entry points. `make demo` and `make test` each create .venv if it is
# missing, install system packages (apt, when root) and the project, then run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test bench sysdeps clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchaudio==2.11.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

sysdeps:
	bash scripts/system-deps.sh

demo: install
	$(VENV)/bin/testbed demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/testbed bench --json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
