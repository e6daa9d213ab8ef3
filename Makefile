# The two ways in (README): `make demo` and `make test`. Both set up what is missing first.
VENV  ?= .venv
PY    := $(VENV)/bin/python
PIP   := $(PY) -m pip
STAMP := $(VENV)/.seppo-installed
# Every pip call takes the constraints file: torch stays the CPU build pinned there.
PIPC  := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install demo demo-quick test clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIPC) torch==2.13.0
	$(PIPC) -e ".[test]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/seppo demo --out demo-out

demo-quick: install
	$(VENV)/bin/seppo demo --quick --out demo-out/quick

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

clean:
	rm -rf demo-out runs .pytest_cache
