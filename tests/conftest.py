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
