"""Issue 18, fixed-deployment speed: coded-ML given one channel H (M, N) for the whole batch builds the grid dictionary
once per distinct code and gives the per-scene path's answer on the same scenes (any complex codes), chunked or not;
bad channel shapes are errors that say what is expected; the `large` preset and its `_real` twin exist."""

import math
import pytest, torch
from ris_music.core import load_preset, make_codebook, PRESETS
from ris_music.data import simulate, complete_batch, make_deployment
from ris_music.coded_ml import (coded_ml_localize, coded_ml_refine, range_posterior, vp_fit, vp_refine, grid_dictionary,
                                grid_manifold, GridDictionary, matched_filter, coded_ml_grid, CODED_ML_OSR)

POS = ('phi', 'theta', 'r')


@pytest.fixture(scope='module')
def fixed():
    "24 tiny scenes of one fixed deployment (the channel shared, ideal hardware)."
    cfg = load_preset('tiny', deployment='fixed')
    cb = make_codebook(cfg)
    dep = make_deployment(cfg, cb, 0)
    sc = complete_batch(cfg, simulate(cfg, 24, torch.Generator().manual_seed(7), cb, latent=True, deployment=dep), cb,
                        deployment=dep)
    assert sc['H'].stride(0) == 0                           # one channel viewed for every scene
    return cfg, sc


def same(a, b, tol=1e-6):
    """Two estimate dicts give the same orders, positions (to tol) and cost of the chosen order (relative 1e-9); the
    fits of the other orders end where rounding lets them (relative 1e-3)."""
    assert torch.equal(a['K'], b['K'])
    for k in POS: assert (a[k] - b[k]).abs().max().item() <= tol, k
    fin = torch.isfinite(a['J'])
    assert torch.equal(fin, torch.isfinite(b['J']))
    Ja, Jb = (e['J'].gather(1, e['K'][:, None])[:, 0] for e in (a, b))
    assert ((Ja - Jb).abs() <= 1e-9 * Ja).all()
    assert ((a['J'] - b['J'])[fin].abs() <= 1e-3 * a['J'][fin].abs()).all()


def test_fixed_equals_per_scene(fixed):
    cfg, sc = fixed
    a = coded_ml_localize(cfg, sc['y'], sc['H'], sc['codes'], sc['noise_var'])
    b = coded_ml_localize(cfg, sc['y'], sc['H'][0], sc['codes'], sc['noise_var'])
    same(a, b)
    for n in (1, 5):                                        # chunking changes nothing
        same(coded_ml_localize(cfg, sc['y'], sc['H'][0], sc['codes'], sc['noise_var'], chunk=n), b)
    kb = coded_ml_localize(cfg, sc['y'], sc['H'][0], sc['codes'], sc['noise_var'], K=2, early_stop=False)
    same(coded_ml_localize(cfg, sc['y'], sc['H'], sc['codes'], sc['noise_var'], K=2, early_stop=False), kb)


def test_non_unit_codes(fixed):
    "Codes that are any complex values (calibrated responses), some rows shared between scenes: still the same."
    cfg, sc = fixed
    g = torch.Generator().manual_seed(11)
    B, L, N = sc['codes'].shape
    c = sc['codes'].to(torch.complex128) * (0.6 + 0.8 * torch.rand(B, L, N, generator=g, dtype=torch.float64))
    phase = 0.3 * torch.randn(B, L, N, generator=g, dtype=torch.float64)
    c = c * torch.polar(torch.ones((), dtype=torch.float64), phase)
    c[:, :3] = c[0, :3]
    H0 = sc['H'][0].to(torch.complex128)
    noise = torch.randn(B, L, cfg.M, generator=g, dtype=torch.complex128)
    y = (c * sc['x'].to(torch.complex128)) @ H0.T + noise                   # the snapshots these responses give
    a = coded_ml_localize(cfg, y, sc['H'], c, sc['noise_var'])
    b = coded_ml_localize(cfg, y, H0, c, sc['noise_var'])
    same(a, b)
    assert (a['K'] == sc['K']).double().mean() > 0.8                          # and a real fit: mostly the true K
    dic = grid_dictionary(cfg, coded_ml_grid(cfg, *CODED_ML_OSR).points, H0, c)
    assert dic.fixed and len(dic.D) == len(torch.unique(torch.view_as_real(c.reshape(-1, N)).reshape(B * L, -1), dim=0))


def test_dictionary_projects_as_the_manifold(fixed):
    cfg, sc = fixed
    pts = coded_ml_grid(cfg, *CODED_ML_OSR).points
    H0, c = sc['H'][0].to(torch.complex128), sc['codes'][:6].to(torch.complex128)
    Zc, nrm = grid_manifold(cfg, pts, H0.expand(6, -1, -1), c)
    dic = grid_dictionary(cfg, pts, H0, c)
    torch.testing.assert_close(dic.nrm, nrm, rtol=1e-5, atol=1e-5 * nrm.max().item())
    V = torch.randn(6, cfg.L, cfg.M, 3, dtype=torch.complex64)
    ref = V.mT @ Zc
    torch.testing.assert_close(dic.project(V), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    torch.testing.assert_close(dic[2:4].project(V[2:4]), ref[2:4], rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    y = sc['y'][:6].to(torch.complex128)
    Z = torch.randn(6, cfg.L, cfg.M, 2, dtype=torch.complex128)
    Gi = torch.linalg.inv(Z.mH @ Z)
    s = (Gi @ (Z.mH @ y[..., None]))[..., 0]
    for loo in (False, True):
        n0, l0 = matched_filter(Zc, nrm, y, Z, s, Gi, loo=loo)
        n1, l1 = matched_filter(dic, None, y, Z, s, Gi, loo=loo)
        torch.testing.assert_close(n1, n0, rtol=1e-4, atol=1e-4 * n0.max().item())
        if loo: torch.testing.assert_close(l1, l0, rtol=1e-4, atol=1e-4 * l0.max().item())
    dic.block_mb = 0                                        # one snapshot per block: the same statistic
    torch.testing.assert_close(matched_filter(dic, None, y, Z, s, Gi)[0], n0, rtol=1e-4, atol=1e-4 * n0.max().item())


def test_fits_take_one_channel(fixed):
    cfg, sc = fixed
    y, H, c = (sc[k][:5].to(torch.complex128) for k in ('y', 'H', 'codes'))
    e = coded_ml_localize(cfg, y, H, c, sc['noise_var'][:5])
    p = torch.stack([e['phi'], e['theta'], 1 / e['r'].clamp_min(1e-3)], -1).double()[:, :1]
    for a, b in zip(vp_fit(cfg, p, y, H, c), vp_fit(cfg, p, y, H[0], c)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for a, b in zip(vp_refine(cfg, p, y, H, c), vp_refine(cfg, p, y, H[0], c)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
    ra, rb = coded_ml_refine(cfg, y, H, c, e, e['K']), coded_ml_refine(cfg, y, H[0], c, e, e['K'])
    for k in POS: torch.testing.assert_close(ra[k], rb[k], rtol=1e-6, atol=1e-6)
    pa = range_posterior(cfg, y, H, c, sc['noise_var'][:5], e, e['K'])
    pb = range_posterior(cfg, y, H[0], c, sc['noise_var'][:5], e, e['K'])
    for k in ('r', 'r_std'): torch.testing.assert_close(pa[k], pb[k], rtol=1e-5, atol=1e-6)


def test_bad_channels(fixed):
    cfg, sc = fixed
    y, H, c = sc['y'][:3], sc['H'][:3], sc['codes'][:3]
    for bad in (H[0, :5], H[:, :, 0], H[0, 0], H[:2], H[None]):
        with pytest.raises(ValueError, match=r'H must be \(B, M, N\) or \(M, N\)'):
            coded_ml_localize(cfg, y, bad, c)
    with pytest.raises(ValueError, match='H has N = 20 columns'):
        coded_ml_localize(cfg, y, H[0, :, :20], c)
    with pytest.raises(ValueError, match='the one fixed channel.*all zeros'):
        coded_ml_localize(cfg, y, torch.zeros_like(H[0]), c)
    nan = H[0].clone()
    nan[1, 2] = math.nan
    with pytest.raises(ValueError, match='H has 1 non-finite entries'):
        coded_ml_localize(cfg, y, nan, c)
    with pytest.raises(ValueError, match=r'H must be \(B, M, N\) or \(M, N\)'):
        est = dict(phi=torch.zeros(3, 3), theta=torch.zeros(3, 3), r=torch.ones(3, 3))
        coded_ml_refine(cfg, y, H[0, :4], c, est, 1)


def test_large_preset():
    cfg = load_preset('large')
    assert (cfg.Nh, cfg.Nv, cfg.N, cfg.M, cfg.L, cfg.K_min, cfg.K_max) == (16, 16, 256, 64, 64, 1, 5)
    assert cfg.freq == 3.5e9 and cfg.spacing == 0.5 and (cfg.cb_h, cfg.cb_v, cfg.codebook) == (8, 8, 'dft')
    assert (cfg.n_train, cfg.n_val, cfg.n_test, cfg.shard_size) == (100_000, 10_000, 10_000, 2000)
    box = (cfg.phi_deg, cfg.theta_deg, cfg.r_min, cfg.r_max, cfg.snr_min_db, cfg.snr_max_db)
    assert box == (60, 30, 0.5, 10, -5, 20)
    seed = load_preset('seed')
    net = ('phi_grid', 'theta_grid', 'range_grid', 'D_MODEL', 'NUM_HEADS', 'n_layers', 'dropout', 'batch_size', 'lr')
    for k in net:
        assert getattr(cfg, k) == getattr(seed, k), k
    real = load_preset('large_real')
    assert 'large_real' in PRESETS and real.deployment == 'fixed' and real.N == 256
    assert make_codebook(cfg).shape == (64, 256)
