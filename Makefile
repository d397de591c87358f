# The two commands a newcomer needs: `make book` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

.PHONY: venv book test study clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Build the demo study (synthetic phantoms, CPU) and the book into _build/html.
book: $(STAMP)
	$(BIN)/xlm study run demo
	$(BIN)/xlm book build

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf _build results/demo .cache
