# The two commands of a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv with the pinned dependencies on first use; `make test` also creates .venv42
# with Blender 4.2 LTS (bpy 4.2.0) and runs the Blender-side tests there too (the add-on supports
# Blender 4.2 .. 5.0).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENV42 := .venv42
STAMP42 := $(VENV42)/.installed
# bpy 4.2.0 and what the Blender-side tests import, at the versions pyproject.toml pins
BLENDER42 := bpy==4.2.0 numpy==1.26.4 torch==2.13.0 pytest==8.3.4 opencv-python-headless==4.11.0.86 \
	onnxruntime==1.20.1 tqdm==4.67.1
BLENDER_TESTS := tests/test_bake.py tests/test_blender_rig.py tests/test_build_addon.py tests/test_retarget.py \
	tests/test_capture.py tests/test_export.py
# bpy 4.2.0 crashes while the interpreter shuts down after Rigify was used (the tests have passed by
# then): exit with pytest's own status as soon as it has reported
export PYTEST_THEN_EXIT := import os, sys, pytest; code = int(pytest.main(sys.argv[1:])); \
	sys.stdout.flush(); sys.stderr.flush(); os._exit(code)

.PHONY: demo test contact-sheet beside pairs bench bench-render bench-tracker bench-bake bench-detector train-landmarks train-generator \
	generator-sheet clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps mediapipe==0.10.21 face-alignment==1.5.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/au2rig demo

$(STAMP42): Makefile pyproject.toml
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/pip install --quiet --disable-pip-version-check $(BLENDER42)
	$(VENV42)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP42)

test: $(STAMP) $(STAMP42)
	$(BIN)/python -m pytest -q
	$(VENV42)/bin/python -c "$$PYTEST_THEN_EXIT" -q -p no:cacheprovider $(BLENDER_TESTS)

contact-sheet: $(STAMP)
	$(BIN)/au2rig contact-sheet -o out/contact_sheet.png

# the rig performing the posed stills' expressions beside them (needs ../shared/media)
MEDIA := ../shared/media
beside: $(STAMP)
	$(BIN)/au2rig contact-sheet -o out/beside.png --size 300 --beside $(MEDIA)/0-f15-hao-ph.jpg=AU6+AU12+AU25 \
	  --beside $(MEDIA)/15-f13-anc-ph.jpg=AU4+AU23+AU24 --beside $(MEDIA)/0-f1-su-ph.jpg=AU1+AU2+AU5+AU26 \
	  --beside $(MEDIA)/45-m7-di-ph.jpg=AU9+AU10

pairs: $(STAMP)
	$(BIN)/au2rig render-pairs out/pairs --count 80000 --size 128 --masks

bench: $(STAMP)
	$(BIN)/au2rig bench --preset small

bench-render: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_rig_render.py

bench-bake: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_bake.py

bench-detector: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_detector_on_rig.py --out out/bench

bench-tracker: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_tracker.py

# Reproduces the shipped estimator (core/models/landmarks.onnx and .pt): three networks, seeds 0-2,
# averaged (~20 min each on 2 cores; each resumes in runs/landmarks/seedN). The shipped ones were
# trained with --threads 1; thread count and CPU change the order of float sums, so a retrain
# elsewhere is another draw of the same recipe (300 steps apart by 1e-3 in a weight), not the same bits.
train-landmarks: $(STAMP)
	$(BIN)/au2rig train-landmarks -o runs/landmarks --members 3 --steps 20000 --threads 2 \
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
	rm -rf $(VENV) $(VENV42) out build dist *.egg-info
