"""Issue 18: a calibration is derived data of a fixed deployment's dataset (checked, atomic, refused where it makes no
sense), the calibrated rows run only with one, and no estimator but the oracles reads the truth."""

import json, shutil
import numpy as np, pytest, torch
from ris_music.core import load_preset
from ris_music.data import generate_dataset, ShardDataset, DataError, REAL_TRUTH, derived_dir
from ris_music.calibration import (cache_calibration, read_calibration, add_calibration, calibrate, robust_localize,
                                   coherent_leaders, CALIBRATION, element_responses, nominal_table)
from ris_music.evaluate import run_methods, run_coded_ml, estimate, EST_FIELDS


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    "A small tiny_real dataset (seed 3, deployment 7), calibrated on its 40 train scenes (2 rounds)."
    root = tmp_path_factory.mktemp('cal') / 'd'
    generate_dataset(load_preset('tiny_real'), root, 40, 8, 12, shard_size=20, workers=1, seed=3, deployment_seed=7,
                     progress=False)
    cache_calibration(root, n=40, rounds=2, iters=6)
    return root


def test_stored_and_read_back(real):
    cal = read_calibration(real)
    assert cal['settings'] == dict(n=40, rounds=2, iters=6, cg_iters=40) and cal['n'] == 40
    assert cal['deployment'] == json.loads((real / 'manifest.json').read_text())['deployment']['id']
    assert tuple(cal['H'].shape) == (10, 36) and tuple(cal['table'].shape) == (36, 4)
    assert not list(derived_dir(real, CALIBRATION, 'train').parent.glob('.*tmp*'))        # nothing half-written left


def test_missing_or_stale_calibration_is_a_clear_error(real, tmp_path):
    c = tmp_path / 'c'
    shutil.copytree(real, c)
    shutil.rmtree(c / 'derived' / CALIBRATION)
    with pytest.raises(DataError, match='no calibration .*cache_calibration'): read_calibration(c)
    meta = derived_dir(real, CALIBRATION, 'train') / 'meta.json'
    shutil.copytree(real, tmp_path / 'e')
    m = json.loads(meta.read_text())
    m['deployment'] = 'another site'
    (derived_dir(tmp_path / 'e', CALIBRATION, 'train') / 'meta.json').write_text(json.dumps(m))
    with pytest.raises(DataError, match='another version'): read_calibration(tmp_path / 'e')


def test_refused_where_nothing_is_static(tiny_dataset):
    with pytest.raises(ValueError, match='not of a fixed deployment'): cache_calibration(tiny_dataset)


@pytest.mark.parametrize('bad', [0, -3, 10 ** 6, 2.5])
def test_bad_scene_count(real, bad):
    with pytest.raises(ValueError, match='n must be a number of train scenes in 1..40'): cache_calibration(real, n=bad)


def test_calibrated_rows_need_a_calibration(real, tmp_path, capsys):
    c = tmp_path / 'c'
    shutil.copytree(real, c)
    shutil.rmtree(c / 'derived' / CALIBRATION)
    ds = ShardDataset(c, 'test')
    est, _, _ = run_methods(ds, 4, methods=None, batch_size=4)
    assert 'coded_ml_calibrated' not in est and 'coded_ml_oracle' in est
    assert 'the calibrated row is left out' in capsys.readouterr().out
    with pytest.raises(ValueError, match='needs a calibrated fixed deployment'):
        run_methods(ds, 4, methods=['coded_ml_calibrated'])
    with pytest.raises(ValueError, match='calibrated=True needs a calibrated batch'):
        run_coded_ml(ds.cfg, ds.__getitems__([0, 1]), calibrated=True, robust=True)


def test_calibrated_row_reads_no_truth(real):
    ds = ShardDataset(real, 'test')
    b = add_calibration(ds.cfg, ds.__getitems__([0, 1, 2]), read_calibration(real))
    spoiled = {k: (torch.full_like(v, float('nan')) if k in REAL_TRUTH else v) for k, v in b.items()}
    a, c = estimate('coded_ml_calibrated', ds.cfg, spoiled), estimate('coded_ml_calibrated', ds.cfg, b)
    for k in EST_FIELDS: torch.testing.assert_close(a[k], c[k], equal_nan=True)
    est, _, _ = run_methods(ds, 12, batch_size=6)
    assert 'coded_ml_calibrated' in est and 'coded_ml_genie' in est
    assert int(est['coded_ml_calibrated']['K'].max()) <= ds.cfg.K_max


def test_grouping_is_order_free():
    "Shuffling the fitted components changes neither the number of sources nor which components lead."
    g = torch.Generator().manual_seed(1)
    s = torch.randn(1, 16, 2, dtype=torch.complex128, generator=g) * 3
    S = torch.cat([s, 0.5 * s + 0.2 * torch.randn(1, 16, 2, dtype=torch.complex128, generator=g)], -1)
    var, mask, nv = torch.full((1, 16, 4), 0.04), torch.ones(1, 4, dtype=torch.bool), torch.ones(1)
    o1, l1 = coherent_leaders(S, var, mask, nv)
    perm = torch.tensor([3, 1, 0, 2])
    o2, l2 = coherent_leaders(S[..., perm], var, mask, nv)
    assert int(l1.sum()) == int(l2.sum()) == 2
    assert set(o1[0][l1[0]].tolist()) == set(perm[o2[0][l2[0]]].tolist()) == {0, 1}


def test_one_fixed_channel_gives_the_same_sources(real):
    """robust_localize on one fixed channel (M, N) (the grid-dictionary path) finds what the per-scene view (B, M, N)
    does, given the true model. (With a model 40 scenes calibrated, fits of 7-9 components differ between the two
    paths in 4 of 6 scenes: the grid statistics round differently, and an over-complete fit turns that into another
    argmax.)"""
    ds = ShardDataset(real, 'test')
    b = ds.__getitems__(list(range(6)))
    one = robust_localize(ds.cfg, b['y'], b['H_true'][0], b['ris_response'], b['noise_var'])
    per = robust_localize(ds.cfg, b['y'], b['H_true'].contiguous(), b['ris_response'], b['noise_var'])
    assert torch.equal(one['K'], per['K'])
    torch.testing.assert_close(one['phi'], per['phi'], atol=1e-5, rtol=0)
    torch.testing.assert_close(one['r'], per['r'], atol=1e-4, rtol=0)


def test_calibrated_row_reads_no_labels(real):
    "The calibrated row reads neither the truth of the real world nor the scene's labels (K, positions, SNRs)."
    ds = ShardDataset(real, 'test')
    b = add_calibration(ds.cfg, ds.__getitems__([0, 1, 2]), read_calibration(real))
    spoil = set(REAL_TRUTH) | {'phi', 'theta', 'r', 'snr_db'}
    bad = {k: (torch.full_like(v, float('nan')) if k in spoil else v) for k, v in b.items()}
    bad['K'] = torch.full_like(b['K'], 99)
    run = lambda batch: run_coded_ml(ds.cfg, batch, calibrated=True, robust=True)
    a, c = run(bad), run(b)
    for k in EST_FIELDS: torch.testing.assert_close(a[k], c[k])


@pytest.mark.parametrize('bad', [dict(rounds=0), dict(iters=-1), dict(cg_iters=True)])
def test_calibrate_settings_checked(real, bad):
    ds = ShardDataset(real, 'train', with_rsamp=False)
    b = ds.__getitems__([0, 1])
    with pytest.raises(ValueError, match=f'calibrate: {next(iter(bad))} must be an integer >= 1'):
        calibrate(ds.cfg, b, ds.deployment['H'], ds.codebook, **bad)


def test_calibration_of_other_code_is_stale(real, tmp_path):
    shutil.copytree(real, tmp_path / 'v')
    p = derived_dir(tmp_path / 'v', CALIBRATION, 'train') / 'meta.json'
    m = json.loads(p.read_text())
    m['version'] = 0
    p.write_text(json.dumps(m))
    with pytest.raises(DataError, match="of the code \\(version 0, now 1\\)"): read_calibration(tmp_path / 'v')
