import os, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
    "A small tiny-preset dataset written once for the session."
    from ris_music import load_preset, generate_dataset

    root = tmp_path_factory.mktemp('data') / 'tiny'
    generate_dataset(load_preset('tiny'), root, 60, 20, 20, shard_size=20, workers=1, seed=3, progress=False)
    return root


def calibrated_real(tmp_path_factory, name, n_val, n_test, seed, deployment_seed, rounds, iters, floors=None):
    "A small tiny_real dataset of 40 train scenes, calibrated on them (and a counting floor chosen on val if asked)."
    from ris_music import load_preset, generate_dataset
    from ris_music.calibration import cache_calibration, cache_count_floor

    root = tmp_path_factory.mktemp(name) / 'd'
    generate_dataset(load_preset('tiny_real'), root, 40, n_val, n_test, shard_size=20, workers=1, seed=seed,
                     deployment_seed=deployment_seed, progress=False)
    cache_calibration(root, n=40, rounds=rounds, iters=iters)
    if floors: cache_count_floor(root, n=n_val, floors=floors)
    return root
