# The two commands of a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv with the pinned dependencies on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test contact-sheet clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m addon demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

contact-sheet: $(STAMP)
	$(BIN)/python -m addon contact-sheet -o out/contact_sheet.png

clean:
	rm -rf $(VENV) out build dist *.egg-info
