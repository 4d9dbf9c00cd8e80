"Issue 21, estimators and metrics (#4, #9, #12, #13, #14): polynomial matching, empty batches, checked inputs, CLI."

import json, math, shutil, subprocess, time, warnings
import numpy as np
import pytest
import torch
from conftest import BIN

from ris_music import load_preset, make_codebook, simulate, complete_batch, true_cov, NonFiniteError
from ris_music.metrics import metrics, match, _match_exhaustive, _match_hungarian, EXHAUSTIVE_MAX
from ris_music.music import music_localize
from ris_music.coded_ml import coded_ml_localize, range_posterior, relax_cycle, coded_ml_grid, coded_ml_refine

CFG = load_preset('tiny')


@pytest.fixture(scope='module')
def sc():
    "Five simulated tiny scenes with their codes."
    cb = make_codebook(CFG)
    return complete_batch(CFG, simulate(CFG, 5, torch.Generator().manual_seed(71), cb), cb)


def run(*args):
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True)


def one_line(p, *parts):
    "A command's failure: exit status 1 and one line on stderr (no traceback) holding every part."
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in p.stderr, p.stderr
    assert all(s in lines[0] for s in parts), lines[0]


# --- #9: matching is polynomial in K_max, and pairs the same sources as the enumeration

def random_sets(B, Km, seed):
    g = torch.Generator().manual_seed(seed)
    pos = lambda: dict(phi=torch.rand(B, Km, generator=g) - 0.5, theta=torch.rand(B, Km, generator=g) - 0.5,
                       r=torch.rand(B, Km, generator=g) * 3 + 0.5)
    K = lambda lo: torch.randint(lo, Km + 1, (B,), generator=g)
    return dict(K=K(1), **pos()), dict(K=K(0), **pos())


@pytest.mark.parametrize('Km', [12, 20])
def test_metrics_large_kmax_is_fast(Km):
    "K_max = 12 used to need 12! permutations (MemoryError), 20 was killed at 24 GB: now well under a second."
    truth, est = random_sets(256, Km, Km)
    t0 = time.perf_counter()
    m = metrics(CFG, est, truth)
    assert time.perf_counter() - t0 < 5.0     # 12! permutations took minutes (MemoryError): a loose bound, not a timing
    assert m['n'] == 256 and 0 <= m['K_acc'] < 0.5 and math.isfinite(m['rmse_r'])
    same = metrics(CFG, dict(truth, K=truth['K']), truth)
    assert same['success'] == 1.0 and same['rmse_phi_deg'] == 0.0


@pytest.mark.parametrize('Km', [2, 3, 4, 5])
def test_hungarian_pairs_as_the_enumeration(Km):
    "On random sets with K != K_hat and padding slots the Hungarian path gives the exhaustive path's pairs."
    assert Km <= EXHAUSTIVE_MAX
    g = torch.Generator().manual_seed(Km)
    C = torch.rand(2000, Km, Km, generator=g)
    vt, ve = (torch.arange(Km) < torch.randint(0, Km + 1, (2000, 1), generator=g) for _ in range(2))
    je, jh = _match_exhaustive(C, vt, ve), _match_hungarian(C, vt, ve)
    pe, ph = vt & ve.gather(1, je), vt & ve.gather(1, jh)
    assert torch.equal(pe, ph) and torch.equal(torch.where(pe, je, -1), torch.where(ph, jh, -1))
    assert torch.equal(jh.sort(-1).values, torch.arange(Km).expand(2000, Km))      # a permutation per scene


def test_match_checks_its_inputs():
    with pytest.raises(ValueError, match=r'match: cost must be \(B, Kmax, Kmax\), got shape \(2, 3\)'):
        match(torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'match: valid_e must be \(B, Kmax\)'):
        match(torch.zeros(2, 3, 3), torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 2, dtype=torch.bool))
    j, paired = match(np.zeros((1, 2, 2)), np.array([[True, False]]), np.array([[True, True]]))    # numpy
    nan = torch.rand(1, 6, 6)
    nan[0, 1, 2] = math.nan
    with pytest.raises(NonFiniteError, match=r'match: non-finite cost \(NaN or Inf\) in scene 0'):
        match(nan, torch.ones(1, 6, dtype=torch.bool), torch.ones(1, 6, dtype=torch.bool))
    assert j.shape == (1, 2) and paired.tolist() == [[True, False]]


# --- #13: numpy accepted, bad values named; #12: empty batches

def test_metrics_numpy_and_bad_fields():
    truth, est = random_sets(40, 3, 1)
    ref = metrics(CFG, est, truth)
    assert metrics(CFG, {k: v.numpy() for k, v in est.items()}, {k: v.numpy() for k, v in truth.items()}) == ref
    with pytest.raises(ValueError, match="metrics: truth has no field 'r'"):
        metrics(CFG, est, {k: v for k, v in truth.items() if k != 'r'})
    bad = dict(est, phi=est['phi'].clone(), K=torch.full((40,), 3))
    bad['phi'][0, 0] = math.nan
    with pytest.raises(NonFiniteError, match=r"metrics: est\['phi'\] is NaN or infinite at a real source"):
        metrics(CFG, bad, truth)
    with pytest.raises(TypeError, match='metrics: cfg must be a Config'):
        metrics('tiny', est, truth)


def test_coded_ml_numpy_and_bad_inputs(sc):
    y, H, c, nv = sc['y'], sc['H'], sc['codes'], sc['noise_var']
    ref = coded_ml_localize(CFG, y, H, c, nv, K=sc['K'])
    got = coded_ml_localize(CFG, y.numpy(), H.numpy(), c.numpy(), nv.numpy(), K=sc['K'].numpy())
    assert all(torch.equal(ref[k], got[k]) for k in ('K', 'phi', 'theta', 'r', 'power', 'mask'))
    with pytest.raises(ValueError, match=r'noise_var must be a float or a \(5,\) tensor \(one per scene\), got 2'):
        coded_ml_localize(CFG, y, H, c, np.ones(2))
    with pytest.raises(ValueError, match='noise_var must be > 0, got -1.0'):
        coded_ml_localize(CFG, y, H, c, -1.0)
    with pytest.raises(NonFiniteError, match='noise_var is NaN or infinite'):
        coded_ml_localize(CFG, y, H, c, float('nan'))
    y_nan = y.clone()
    y_nan[0, 0, 0] = math.nan
    with pytest.raises(NonFiniteError, match='coded_ml_localize: y has 1 non-finite entries'):
        coded_ml_localize(CFG, y_nan, H, c)
    with pytest.raises(ValueError, match=r'coded_ml_localize: y\[0\] is all zeros'):
        coded_ml_localize(CFG, torch.zeros_like(y), H, c)
    with pytest.raises(ValueError, match=r'coded_ml_localize: chunk must be an integer >= 1'):
        coded_ml_localize(CFG, y, H, c, chunk=0)
    with pytest.raises(ValueError, match=r"coded_ml_refine: K = 4 is outside \[0, K_max\]"):
        coded_ml_refine(CFG, y, H, c, ref, torch.full((5,), 4))


def test_empty_batches(sc):
    "B = 0: an empty result with every field's usual dtype and trailing shape (no IndexError / RuntimeError)."
    y, H, c = sc['y'], sc['H'], sc['codes']
    full, none = coded_ml_localize(CFG, y[:2], H[:2], c[:2]), coded_ml_localize(CFG, y[:0], H[:0], c[:0])
    assert {k: (v.shape[1:], v.dtype) for k, v in none.items()} == {k: (v.shape[1:], v.dtype) for k, v in full.items()}
    assert len(none['K']) == 0
    R = true_cov(CFG, sc)
    full, none = (music_localize(CFG, x, sc['K'][:n], Kmax=CFG.K_max) for x, n in ((R, 5), (R[:0], 0)))
    assert {k: (v.shape[1:], v.dtype) for k, v in none.items()} == {k: (v.shape[1:], v.dtype) for k, v in full.items()}
    assert len(none['phi']) == 0


# --- review items: deprecated names, renamed parameters, relax_cycle's signature

def test_deprecated_names_warn():
    import ris_music, ris_music.coded_ml as cm
    for old, new in (('cml_cov', 'coded_ml_cov'), ('cml_refine', 'coded_ml_refine'), ('CML_OSR', 'CODED_ML_OSR'),
                     ('CML_FIELDS', 'CODED_ML_FIELDS'), ('CML_VERSION', 'CODED_ML_VERSION')):
        with pytest.warns(DeprecationWarning, match=f'coded_ml.{old} is deprecated: use {new}'):
            assert getattr(cm, old) is getattr(cm, new)
        assert old not in cm.__all__
    with pytest.warns(DeprecationWarning, match=r'use coded_ml_grid\(cfg, ...\).points'):
        assert torch.equal(cm.cml_grid(CFG, *cm.CODED_ML_OSR)[0], coded_ml_grid(CFG, *cm.CODED_ML_OSR).points)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert ris_music.cml_cov is cm.coded_ml_cov and ris_music.cml_refine is cm.coded_ml_refine


def test_range_posterior_old_keyword(sc):
    e = coded_ml_localize(CFG, sc['y'][:2], sc['H'][:2], sc['codes'][:2], sc['noise_var'][:2], K=1)
    args = (CFG, sc['y'][:2], sc['H'][:2], sc['codes'][:2], sc['noise_var'][:2], e, e['K'])
    new = range_posterior(*args, n_rho=16)
    with pytest.warns(DeprecationWarning, match=r'range_posterior\(grid=...\) is deprecated: use n_rho=...'):
        old = range_posterior(*args, grid=16)
    assert torch.equal(new['r'], old['r']) and torch.equal(new['r_std'], old['r_std'])
    with pytest.raises(ValueError, match='n_rho must be an integer >= 2'):
        range_posterior(*args, n_rho=1)


def test_relax_cycle_old_call_fails_clearly():
    "The old signature had grid_shape after the grid: a positional call now fails instead of running wrongly."
    grid = coded_ml_grid(CFG, 0.75, 0.5)
    with pytest.raises(TypeError, match='positional argument'):
        relax_cycle(CFG, *[None] * 8, grid, grid.shape, 6)
    with pytest.raises(TypeError, match='relax_cycle: grid must be the SearchGrid'):
        relax_cycle(CFG, *[None] * 8, grid.points)


# --- #14: ris_coded_ml gives one line and exit 1, before anything is created; #4: the cache holds the dataset

def test_coded_ml_cli_errors(tiny_dataset, tmp_path):
    p = run('ris_coded_ml', str(tmp_path / 'nowhere'))
    one_line(p, 'ris_coded_ml: ', 'no manifest')
    assert not (tmp_path / 'nowhere').exists()
    d = tmp_path / 'c'
    shutil.copytree(tiny_dataset, d)
    shutil.rmtree(d / 'derived', ignore_errors=True)
    one_line(run('ris_coded_ml', str(d), '--splits', 'training'), "ris_coded_ml: splits: 'training' is not a split",
             'train, val, test')
    one_line(run('ris_coded_ml', str(d), '--chunk', '0'), 'ris_coded_ml: chunk must be an integer >= 1, got 0')
    one_line(run('ris_coded_ml', str(d), '--workers', '0'), 'ris_coded_ml: workers must be an integer >= 1, got 0')
    assert not (d / 'derived').exists()


def test_coded_ml_cli_read_only(tiny_dataset, tmp_path, monkeypatch, capsys):
    "A read-only dataset is refused in one line before any estimate is computed (os.access: root can write anyway)."
    import os, ris_music.coded_ml as cm
    d = tmp_path / 'ro'
    shutil.copytree(tiny_dataset, d)
    shutil.rmtree(d / 'derived', ignore_errors=True)
    real = os.access
    monkeypatch.setattr(cm.os, 'access', lambda p, mode: False if str(p).startswith(str(d)) else real(p, mode))
    monkeypatch.setattr(cm, '_cache_split', lambda *a: pytest.fail('computed on a read-only dataset'))
    with pytest.raises(SystemExit) as e:
        cm.coded_ml_cli([str(d), '--workers', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and len(err) == 1 and 'ris_coded_ml: ' in err[0] and 'is read-only here' in err[0]


def test_cache_holds_the_dataset(tiny_dataset, tmp_path, monkeypatch):
    "While the cache reads shards, ris_generate --overwrite is refused (FolderLocked) and the data stay as they are."
    import ris_music.coded_ml as cm
    from ris_music import generate_dataset, manifest_hash
    from ris_music.core import FolderLocked
    d = tmp_path / 'h'
    shutil.copytree(tiny_dataset, d)
    shutil.rmtree(d / 'derived', ignore_errors=True)
    before, seen, chunk = manifest_hash(d), [], cm._coded_ml_chunk

    def racing(*a):
        try: generate_dataset(CFG, d, 8, 4, 4, shard_size=4, workers=1, seed=9, progress=False, overwrite=True)
        except FolderLocked as e: seen.append(str(e))
        return chunk(*a)

    monkeypatch.setattr(cm, '_coded_ml_chunk', racing)
    assert set(cm.cache_coded_ml(d, ('val',), workers=1, progress=False)) == {'val'}
    assert seen and 'is in use' in seen[0] and manifest_hash(d) == before
