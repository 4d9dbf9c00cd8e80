# make test: set up .venv and run every test.  make demo: set up and run the pipeline on the tiny preset.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := runs/demo
export OMP_NUM_THREADS ?= 2

.PHONY: setup test demo lab bench clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: constraints.txt settings.ini setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt --no-build-isolation -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name python3 >/dev/null
	touch $@

test: setup
	$(BIN)/nbdev_test --n_workers 1 --timing
	$(BIN)/pytest -q tests

demo: setup
	mkdir -p $(DEMO)
	$(BIN)/papermill nbs/01_data.ipynb $(DEMO)/01_data.ipynb --cwd nbs --progress-bar \
	    -p preset tiny -p n_train 2000 -p n_val 500 -p n_test 500 -p shard_size 500 -p workers 2 -p out_dir ../data/tiny
	$(BIN)/ris_verify data/tiny
	$(BIN)/papermill nbs/02_covariance.ipynb $(DEMO)/02_covariance.ipynb --cwd nbs --progress-bar
	$(BIN)/papermill nbs/05_train.ipynb $(DEMO)/05_train.ipynb --cwd nbs --log-output \
	    -p data_dir ../data/tiny -p epochs 20 -p out_dir ../$(DEMO)/train -p resume True
	@echo "demo done: executed notebooks in $(DEMO)/, dataset in data/tiny/"

lab: setup
	$(BIN)/pip install -q -c constraints.txt jupyterlab
	$(BIN)/jupyter lab nbs/

bench: setup
	$(BIN)/python bench/bench_generate.py --preset seed --n 20000
	$(BIN)/python bench/bench_music.py --preset seed --batch 64
	$(BIN)/python bench/bench_train.py

clean-demo:
	rm -rf $(DEMO) data/tiny
