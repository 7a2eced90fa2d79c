# The two commands of a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv with the pinned dependencies on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test contact-sheet pairs bench bench-render bench-tracker bench-bake train-landmarks train-generator \
	generator-sheet clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps mediapipe==0.10.21 face-alignment==1.5.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/au2rig demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

contact-sheet: $(STAMP)
	$(BIN)/au2rig contact-sheet -o out/contact_sheet.png

pairs: $(STAMP)
	$(BIN)/au2rig render-pairs out/pairs --count 80000 --size 128 --masks

bench: $(STAMP)
	$(BIN)/au2rig bench --preset small

bench-render: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_rig_render.py

bench-bake: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_bake.py

bench-tracker: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_tracker.py

# Reproduces the shipped estimator (core/models/landmarks.onnx and .pt)
train-landmarks: $(STAMP)
	$(BIN)/au2rig train-landmarks -o runs/landmarks --steps 20000 --threads 2 \
		--export core/models/landmarks.onnx --save-checkpoint core/models/landmarks.pt

# Reproduces the shipped generator (core/models/generator.pt): 20,480 pairs, then ~1 h on 2 cores
train-generator: $(STAMP)
	$(BIN)/au2rig render-pairs data/pairs128 --count 20480 --size 128 --masks
	$(BIN)/au2rig train-generator data/pairs128 -o runs/g128 --steps 3000 --batch 16 --lr 5e-4 \
		--lr-final 0.05 --region-weight 5 --threads 2 --save-weights core/models/generator.pt

# Every AU, identity, brow style and pose: the rig's render beside the shipped G's image
generator-sheet: $(STAMP)
	$(BIN)/au2rig contact-sheet -o out/generator_sheet.png --generator core/models/generator.pt --columns 6

clean:
	rm -rf $(VENV) out build dist *.egg-info
