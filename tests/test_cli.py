"Command lines: ris_generate and ris_verify, end to end in subprocesses."

import json, shutil, subprocess, sys
import numpy as np
from conftest import BIN


def run(*args):
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True)


GENERATE = ['ris_generate', '--preset', 'tiny', '--n-train', '40', '--n-val', '10', '--n-test', '10']
GENERATE += ['--shard-size', '16', '--workers', '2', '--seed', '1']


def test_generate_then_verify(tmp_path):
    out = tmp_path / 'd'
    p = run(*GENERATE, '--out', str(out))
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info['counts'] == dict(train=40, val=10, test=10) and info['generated']['shards'] == 5
    p = run('ris_verify', str(out))
    assert p.returncode == 0 and 'ok' in p.stdout
    # a second run reuses every shard
    p = run(*GENERATE, '--out', str(out))
    assert json.loads(p.stdout.strip().splitlines()[-1])['generated']['shards'] == 0


def test_verify_reports_nan_and_checksum(tiny_dataset, tmp_path):
    d = tmp_path / 'copy'
    shutil.copytree(tiny_dataset, d)
    f = d / 'train' / '00002' / 'snr_db.npy'
    a = np.load(f)
    a[5, 0] = np.inf
    with open(f, 'wb') as fh:
        np.save(fh, a)
    p = run('ris_verify', str(d))
    assert p.returncode == 1
    assert "train/00002/snr_db.npy: checksum mismatch for field 'snr_db'" in p.stderr
    assert "field 'snr_db' has NaN/Inf in 1 samples (first at row 5)" in p.stderr


def test_verify_missing_dataset(tmp_path):
    p = run('ris_verify', str(tmp_path / 'nowhere'))
    assert p.returncode == 1 and 'no manifest' in p.stderr


def test_unknown_preset_cli(tmp_path):
    p = run('ris_generate', '--preset', 'huge', '--out', str(tmp_path / 'x'))
    assert p.returncode != 0 and "unknown preset 'huge'" in p.stderr


def test_coded_ml_cache_cli(tiny_dataset, tmp_path):
    "ris_coded_ml caches coded-ML fits of every split; a second run reuses them; readers get them with the batches."
    d = tmp_path / 'c'
    shutil.copytree(tiny_dataset, d)
    shutil.rmtree(d / 'derived', ignore_errors=True)                  # whatever another test cached
    p = run('ris_coded_ml', str(d), '--workers', '2', '--chunk', '16')
    assert p.returncode == 0, p.stderr
    assert set(json.loads(p.stdout.strip().splitlines()[-1])['seconds']) == {'train', 'val', 'test'}
    p = run('ris_coded_ml', str(d))
    assert json.loads(p.stdout.strip().splitlines()[-1])['seconds'] == {}
    from ris_music import ShardDataset, coded_ml_localize
    b = ShardDataset(d, 'test', derived=('coded_ml',)).__getitems__([0, 5])
    cfg = ShardDataset(d, 'test').cfg
    ref = coded_ml_localize(cfg, b['y'], b['H'], b['codes'], b['noise_var'], early_stop=False)
    assert (b['coded_ml_K'] == ref['K']).all() and (b['coded_ml_phi'] - ref['phi']).abs().max() < 1e-6


def test_train_cli_errors_are_one_line(tiny_dataset, tmp_path):
    "ris_train: a bad --params or --epochs is one clear line and exit 1 or 2, no traceback, nothing written."
    base = ['ris_train', '--data-dir', str(tiny_dataset), '--out-dir', str(tmp_path / 'o'), '--quiet']
    for extra, msg in ((['--params', '{"batch_size": "32"}'], "Config field 'batch_size': expected int, got '32'"),
                       (['--params', 'notjson'], '--params is not JSON'),
                       (['--params', '{"lr_max": 1}'], "unknown config key 'lr_max' (did you mean lr,"),
                       (['--epochs', '0'], '--epochs must be >= 1, got 0')):
        p = run(*base, *extra)
        assert p.returncode in (1, 2) and msg in p.stderr and 'Traceback' not in p.stderr, p.stderr[-1500:]
    assert not (tmp_path / 'o').exists()
