"""Issue 18: a calibration is derived data of a fixed deployment's dataset (checked, atomic, refused where it makes no
sense), the calibrated rows run only with one, and no estimator but the oracles reads the truth."""

import json, shutil
import numpy as np, pytest, torch
from ris_music.core import load_preset
from ris_music.data import generate_dataset, ShardDataset, DataError, REAL_TRUTH, derived_dir
from ris_music.calibration import (cache_calibration, read_calibration, add_calibration, calibrate, robust_localize,
                                   coherent_leaders, CALIBRATION, element_responses, nominal_table)
from ris_music.evaluate import run_methods, run_coded_ml, estimate, EST_FIELDS
from conftest import calibrated_real


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    "A small tiny_real dataset (seed 3, deployment 7), calibrated on its 40 train scenes (2 rounds)."
    return calibrated_real(tmp_path_factory, 'cal', 8, 12, seed=3, deployment_seed=7, rounds=2, iters=6)


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
    assert 'the calibrated rows are left out' in capsys.readouterr().out
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


# ---- the coherent multipath model and the counting floor

from ris_music.calibration import (coherent_fit, coherent_refine, coherent_localize, coherent_genie, signature_manifold,
                                   tune_floor, cache_count_floor, read_count_floor, COUNT_FLOOR)
from ris_music.core import to_points, source_mask, search_box


def _truth_state(cfg, b):
    "The true components of scenes b: direct paths (gain 1, slot = source) then scatterers (their true gains)."
    B, Km, Pm = len(b['K']), cfg.K_max, cfg.mp_scatterers
    T = to_points(b).double()
    S = torch.stack([b['scat_phi'], b['scat_theta'], 1 / b['scat_r'].clamp_min(1e-3)], -1).double()
    on = source_mask(b['K'], Km)
    act = on[..., None] & torch.cat([torch.ones(B, Km, 1, dtype=torch.bool), b['scat_gain'].abs() > 0], 2)
    act = act.reshape(B, -1)
    P = torch.where(act[..., None], torch.cat([T[:, :, None], S], 2).reshape(B, -1, 3), T[:, :1])
    gam = torch.cat([torch.ones(B, Km, 1, dtype=torch.complex128), b['scat_gain'].to(torch.complex128)], 2)
    gam = gam.reshape(B, -1)
    lead = torch.cat([on[..., None], torch.zeros(B, Km, Pm, dtype=torch.bool)], 2).reshape(B, -1)
    memb = torch.arange(Km)[None, :, None].expand(B, Km, 1 + Pm).reshape(B, -1)
    return dict(P=P, gam=torch.where(act, gam, 0), memb=memb, act=act, lead=lead)


def _c(x): return x.to(torch.complex128)


def test_coherent_model_is_the_simulators(real):
    "With the true components, gains and model, the coherent cost is the noise's share sigma^2 (LM - KL), on average."
    ds = ShardDataset(real, 'test')
    b = ds.__getitems__(list(range(12)))
    st = _truth_state(ds.cfg, b)
    _, J, s, _ = coherent_fit(ds.cfg, st['P'], st['gam'], st['memb'], ds.cfg.K_max, _c(b['y']), _c(b['H_true'][0]),
                              _c(b['ris_response']), deriv=False)
    dof = ds.cfg.L * ds.cfg.M - ds.cfg.L * b['K'].double()
    ratio = float((J / b['noise_var'].double()).sum() / dof.sum())
    assert abs(ratio - 1) < 0.1, ratio                     # 12 scenes of ~120 noise dimensions: about 3% spread
    assert tuple(s.shape) == (12, ds.cfg.L, ds.cfg.K_max)


def test_coherent_jacobian_matches_finite_differences(real):
    ds = ShardDataset(real, 'test')
    b = ds.__getitems__([0, 1])
    cfg, st = ds.cfg, _truth_state(ds.cfg, b)
    args = _c(b['y']), _c(b['H_true']), _c(b['ris_response'])               # per-scene channels (B, M, N)
    gen = torch.Generator().manual_seed(2)
    P = st['P'] + 0.01 * torch.randn(st['P'].shape, dtype=torch.float64, generator=gen)
    r, _, _, Jac = coherent_fit(cfg, P, st['gam'], st['memb'], cfg.K_max, *args)
    for c, q in ((0, 0), (0, 1), (1, 2), (2, 3), (1, 4)):
        def res(t):
            P2, g2 = P.clone(), st['gam'].clone()
            if q < 3: P2[:, c, q] += t
            else: g2[:, c] += t * (1 if q == 3 else 1j)
            return coherent_fit(cfg, P2, g2, st['memb'], cfg.K_max, *args, deriv=False)[0].reshape(2, -1)
        fd = (res(1e-6) - res(-1e-6)) / 2e-6
        torch.testing.assert_close(Jac[:, :, 5 * c + q], fd, atol=1e-5 * float(fd.abs().max()), rtol=0)


def test_coherent_refine_keeps_fixed_gains_and_never_worsens(real):
    ds = ShardDataset(real, 'test')
    b = ds.__getitems__(list(range(6)))
    cfg, st = ds.cfg, _truth_state(ds.cfg, b)
    args = _c(b['y']), _c(b['H_true'][0]), _c(b['ris_response'])
    P0 = st['P'] + 0.02 * torch.randn(st['P'].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lo, hi = search_box(cfg)
    P0 = torch.minimum(torch.maximum(P0, lo), hi)
    J0 = coherent_fit(cfg, P0, st['gam'], st['memb'], cfg.K_max, *args, deriv=False)[1]
    P, g, J, _ = coherent_refine(cfg, P0, st['gam'], st['memb'], cfg.K_max, *args, st['act'] & ~st['lead'], iters=15)
    assert bool((J <= J0).all()) and float((J / J0).median()) < 0.9          # it moves, and towards the truth
    assert bool((g[st['lead']] == 1).all()) and bool((g[~st['act']] == 0).all())


def test_coherent_rows_count_as_the_calibrated_row_and_read_no_labels(real):
    ds = ShardDataset(real, 'test')
    b = add_calibration(ds.cfg, ds.__getitems__(list(range(6))), read_calibration(real))
    coh = run_coded_ml(ds.cfg, b, calibrated=True, coherent=True)
    rob = run_coded_ml(ds.cfg, b, calibrated=True, robust=True)
    assert torch.equal(coh['K'], rob['K']) and bool((coh['mask'].sum(-1) == coh['K']).all())
    spoil = set(REAL_TRUTH) | {'phi', 'theta', 'r', 'snr_db'}
    bad = {k: (torch.full_like(v, float('nan')) if k in spoil else v) for k, v in b.items()}
    bad['K'] = torch.full_like(b['K'], 99)
    a = run_coded_ml(ds.cfg, bad, calibrated=True, coherent=True)
    for k in EST_FIELDS: torch.testing.assert_close(a[k], coh[k])


def test_coherent_genie_gets_the_true_count(real):
    ds = ShardDataset(real, 'test')
    b = ds.__getitems__(list(range(6)))
    e = coherent_genie(ds.cfg, b['y'], b['H_true'][0], b['ris_response'], b['noise_var'], b)
    assert torch.equal(e['K'], b['K'].long()) and bool((e['mask'].sum(-1) == e['K']).all())
    from ris_music.metrics import metrics
    rob = robust_localize(ds.cfg, b['y'], b['H_true'][0], b['ris_response'], b['noise_var'])
    assert metrics(ds.cfg, e, b)['rmse_phi_deg'] < metrics(ds.cfg, rob, b)['rmse_phi_deg']   # closer than the rule


def test_count_floor_is_chosen_on_val_and_stored(real, tmp_path):
    c = tmp_path / 'f'
    shutil.copytree(real, c)
    with pytest.raises(DataError, match='no model-error floor .*cache_count_floor'): read_count_floor(c)
    cf = cache_count_floor(c, n=8, floors=(0.0, 1e-3))
    assert cf['floor'] in (0.0, 1e-3) and cf['settings']['n'] == 8 and len(cf['table']) == 2
    assert read_count_floor(c) == cf and cache_count_floor(c, n=8, floors=(0.0, 1e-3)) == cf
    meta = json.loads((derived_dir(c, COUNT_FLOOR, 'val') / 'meta.json').read_text())
    assert meta['split'] == 'val' and meta['settings']['calibration']['n'] == read_calibration(c)['settings']['n']
    assert len(meta['settings']['calibration']['fingerprint']) == 16
    forced = cache_count_floor(c, n=8, floors=(0.05,), overwrite=True)      # one floor: it must reach the row
    assert forced['floor'] == 0.05
    ds = ShardDataset(c, 'test')
    est, _, _ = run_methods(ds, 6, methods=['coded_ml_calibrated'], batch_size=6)
    b = ds.__getitems__(list(range(6)))
    cal = read_calibration(c)
    want = robust_localize(ds.cfg, b['y'], cal['H'].to(torch.complex64),
                           element_responses(ds.cfg, cal['table'], b['codes']).to(torch.complex64), b['noise_var'],
                           floor=0.05)
    torch.testing.assert_close(est['coded_ml_calibrated']['phi'], want['phi'].cpu().float())
    assert torch.equal(est['coded_ml_calibrated']['K'], want['K'])
    with pytest.raises(ValueError, match='distinct'):
        tune_floor(ShardDataset(c, 'val').cfg, {}, None, None, (1e-3, 1e-3))
    cache_calibration(c, n=20, rounds=1, iters=3)                       # another calibration: the floor is stale
    with pytest.raises(DataError, match='another calibration'): read_count_floor(c)
