# make test: set up .venv and run every test.  make demo: set up and run the pipeline on tiny_real (PRESET=tiny: ideal).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := runs/demo
export OMP_NUM_THREADS ?= 2

.PHONY: setup test demo lab bench clean-demo style docs-outputs train-ddp

setup: $(VENV)/.installed

$(VENV)/.installed: constraints.txt settings.ini setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt --no-build-isolation -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name python3 >/dev/null
	touch $@

docs-outputs: setup   # refresh the saved outputs the docs site shows (figures, audit numbers)
	$(BIN)/python tools/docs_outputs.py run
	$(BIN)/nbdev_clean

style: setup
	$(BIN)/python tools/style.py

test: setup
	$(BIN)/nbdev_test --n_workers 1 --timing
	$(BIN)/pytest -q tests

# make demo PRESET=tiny: the nominal (ideal-world) workflow, in runs/demo; a *_real preset in runs/demo/<preset>
PRESET ?= tiny_real
# a real deployment's calibration scenes in the demo (chapter 02d: 2000 scenes gain about 0.02 success, at 4x the time)
CAL_SCENES ?= 500
DEMO_BETAS_REAL := '[0.5, 1.0]'
DEMO_ROWS_tiny_real := ['hybrid', 'coded_ml', 'coded_ml_calibrated', 'coded_ml_oracle', 'coded_ml_genie', 'music_rsamp_mdl', 'music_rsamp_trueK', 'music_trueR']
DEMO_EPOCHS ?= $(if $(filter %_real,$(PRESET)),12,20)
# the sizes of the demo (a reduced budget at another preset: make demo PRESET=large N_TRAIN=400 N_VAL=100 N_TEST=100 ...)
N_TRAIN ?= 2000
N_VAL ?= 500
N_TEST ?= 500
SHARD_SIZE ?= 500
HPO_TRIALS ?= 4
HPO_EPOCHS ?= 3
CRB_SCENES ?= 120
METHODS ?= $(DEMO_ROWS_$(PRESET))
DEVICE ?= cpu
DEMO_OUT := $(if $(filter tiny,$(PRESET)),$(DEMO),$(DEMO)/$(PRESET))

demo: setup
	mkdir -p $(DEMO_OUT)
	@echo "== 1/5 data: $(PRESET) preset (reuses valid shards) =="
	$(BIN)/papermill nbs/01_data.ipynb $(DEMO_OUT)/01_data.ipynb --cwd nbs --progress-bar \
	    -p preset $(PRESET) -p n_train $(N_TRAIN) -p n_val $(N_VAL) -p n_test $(N_TEST) -p shard_size $(SHARD_SIZE) -p workers 2 -p out_dir ../data/$(PRESET)
	$(BIN)/ris_verify data/$(PRESET)
	$(if $(filter %_real,$(PRESET)),$(BIN)/ris_calibrate data/$(PRESET) --n $(CAL_SCENES))
	@echo "== 2/5 covariance and MUSIC audits (the ideal tiny preset's; a real preset: its calibration instead) =="
	$(if $(filter %_real,$(PRESET)),,$(BIN)/papermill nbs/02_covariance.ipynb $(DEMO_OUT)/02_covariance.ipynb --cwd nbs --progress-bar)
	$(if $(filter %_real,$(PRESET)),,$(BIN)/papermill nbs/02b_music.ipynb $(DEMO_OUT)/02b_music.ipynb --cwd nbs --progress-bar)
	@echo "== 3/5 HPO (resumes the study in $(DEMO_OUT)/hpo; a real deployment is calibrated first, once) =="
	$(BIN)/papermill nbs/06_hpo.ipynb $(DEMO_OUT)/06_hpo.ipynb --cwd nbs --log-output \
	    -p data_dir ../data/$(PRESET) -p out_dir ../$(DEMO_OUT)/hpo -p trials $(HPO_TRIALS) -p epochs $(HPO_EPOCHS) -p train_frac 0.5 -p val_frac 0.5
	@echo "== 4/5 training with the HPO's best.json (resumes $(DEMO_OUT)/train) =="
	$(BIN)/papermill nbs/05_train.ipynb $(DEMO_OUT)/05_train.ipynb --cwd nbs --log-output \
	    -p data_dir ../data/$(PRESET) -p params_json ../$(DEMO_OUT)/hpo/best.json -p epochs $(DEMO_EPOCHS) -p out_dir ../$(DEMO_OUT)/train -p resume True -p device $(DEVICE)
	@echo "== 5/5 thresholds on validation, then the test split =="
	$(BIN)/papermill nbs/07_eval.ipynb $(DEMO_OUT)/07_eval.ipynb --cwd nbs --log-output \
	    -p ckpt ../$(DEMO_OUT)/train/best.pt -p data_dir ../data/$(PRESET) -p out_dir ../$(DEMO_OUT) -p train_if_missing False -p crb_scenes $(CRB_SCENES) -p device $(DEVICE) \
	    -p methods "$(METHODS)" $(if $(filter %_real,$(PRESET)),-p betas $(DEMO_BETAS_REAL))
	@echo "demo done: executed notebooks in $(DEMO_OUT)/, report $(DEMO_OUT)/report.html, results $(DEMO_OUT)/results.json"

NPROC ?= 2
train-ddp: setup   # the demo's training on NPROC processes with torchrun (gloo on CPU, NCCL on CUDA); resumes
	$(BIN)/ris_generate --preset tiny --out data/tiny --n-train 2000 --n-val 500 --n-test 500 --shard-size 500 --workers 2
	$(BIN)/torchrun --standalone --nproc_per_node $(NPROC) $(BIN)/ris_train --data-dir data/tiny \
	    --out-dir $(DEMO)/train_ddp --epochs 20 $$(test -f $(DEMO)/hpo/best.json && echo --params-json $(DEMO)/hpo/best.json)

lab: setup
	$(BIN)/pip install -q -c constraints.txt jupyterlab   # pinned in constraints.txt
	$(BIN)/jupyter lab --notebook-dir nbs

bench: setup
	$(BIN)/python bench/bench_generate.py --preset seed --n 20000
	$(BIN)/python bench/bench_music.py --preset seed --batch 64
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_ddp.py

clean-demo:
	rm -rf $(DEMO) data/tiny data/tiny_real
