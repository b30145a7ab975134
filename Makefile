# seqmask: `make demo` trains the bundled example, `make test` runs the tests.
# Both create .venv and install the package into it first (only when pyproject.toml changed),
# then build seqmask's CPU LSTM kernel (seqmask/model/native.py; cached in ~/.cache/seqmask).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo lint test test-fast bench bench-quick bench-quality bench-quality-quick bench-detect bench-detect-quick bench-export data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,export]'
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -c 'from seqmask.model import native; print("CPU LSTM:", native.status())'  # compiles the CPU LSTM kernel once (~25 s)
	touch $(STAMP)

demo: install
	$(BIN)/seqmask train runs/demo --config configs/example.yaml --overwrite --quiet
	$(BIN)/seqmask evaluate runs/demo
	$(BIN)/seqmask encode runs/demo --data data/trajectories.npz --output runs/demo/latent.csv
	$(BIN)/seqmask calibrate runs/demo --data data/trajectories.npz --contamination 0.02
	$(BIN)/seqmask detect runs/demo --data data/trajectories.npz --labels data/trajectories_anomalies.csv \
		--output runs/demo/detections.csv --steps runs/demo/detection_steps.csv
	$(BIN)/seqmask report runs/demo --labels data/trajectories_labels.csv
	$(BIN)/seqmask export runs/demo --output runs/demo_export --overwrite
	@echo
	@echo "Results in runs/demo: history.csv, metrics.json, checkpoints/, evaluation_best.csv, latent.csv,"
	@echo "detections.csv, detection_steps.csv (README: 'Finding unusual sequences')"
	@echo "Open runs/demo/report.html in a browser to see the run; runs/demo_export is the model for serving (README: 'Serving')."

# Lint, import order, layout, types and the import rules between layers: part of `make test`,
# so CI enforces them.
lint: install
	$(BIN)/ruff check seqmask tests bench scripts
	$(BIN)/ruff format --check seqmask tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache  # the layers and import rules in pyproject.toml, [tool.importlinter]

# Two worker processes (pytest-xdist): most tests are single-threaded Python and graph
# tracing, so two cores run two of them at once (README, "Development", says how long).
test: install lint
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-fast: install lint
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench.py

bench-quick: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench.py --quick

# Quality on real data: linear-probe accuracy and reconstruction R² against baselines
# (about 30 minutes on 2 cores; BENCHMARKS.md, "Quality").
bench-quality: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/quality.py

# Anomaly detection on real data: every score against an isolation forest and a kNN on
# summary statistics (about 30 minutes on 2 cores; BENCHMARKS.md, "Anomaly detection").
bench-detect: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/detect.py

bench-detect-quick: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/detect.py --quick

bench-export: install
	$(BIN)/python bench/export.py

bench-quality-quick: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/quality.py --quick

data: install
	$(BIN)/python scripts/make_example_data.py
	$(BIN)/python scripts/make_token_data.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
