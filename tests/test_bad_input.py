"Bad input gets a clear error naming the file, field and value, before work starts."

import json, shutil
import numpy as np, pytest, torch
from ris_music import load_preset, generate_dataset, ShardDataset, DataError, build_effective_cov, steering


def test_config_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown config key 'newton_iters'.*newton_iter"):
        load_preset('tiny', newton_iters=3)
    with pytest.raises(TypeError, match="'L'"):
        load_preset('tiny', L='16')
    with pytest.raises(ValueError, match="r_min"):
        load_preset('tiny', r_min=5.0, r_max=1.0)
    with pytest.raises(ValueError, match="VAL_PRIMARY"):
        load_preset('tiny', VAL_PRIMARY='acc')
    bad = tmp_path / 'c.json'
    bad.write_text('{"Nh": 4,')
    with pytest.raises(ValueError, match=f"{bad}: config file is not valid JSON"):
        load_preset(str(bad))


def test_generate_rejects_bad_counts(tmp_path):
    with pytest.raises(ValueError, match='n_val must be a non-negative int, got -1'):
        generate_dataset(load_preset('tiny'), tmp_path, 10, -1, 0)
    assert not list(tmp_path.glob('*/*'))  # nothing written


def test_dataset_faults(tiny_dataset, tmp_path):
    d = tmp_path / 'c'
    shutil.copytree(tiny_dataset, d)
    with pytest.raises(ValueError, match='split must be one of'):
        ShardDataset(d, 'training')
    man = json.loads((d / 'manifest.json').read_text())
    man['fields']['y']['dtype'] = 'complex128'
    (d / 'manifest.json').write_text(json.dumps(man))
    with pytest.raises(DataError, match="field 'y'"):
        ShardDataset(d, 'train')
    (d / 'manifest.json').write_text('{"format": ')
    with pytest.raises(DataError, match='manifest is not valid JSON'):
        ShardDataset(d, 'train')


def test_partial_shard_is_not_taken_as_whole(tiny_dataset, tmp_path):
    "A crash mid-shard leaves a dot-folder; a rerun ignores it, regenerates the missing shard and removes the debris."
    d = tmp_path / 'c'
    shutil.copytree(tiny_dataset, d)
    shutil.rmtree(d / 'train' / '00001')
    (d / 'train' / '.00001.tmp999').mkdir()
    with pytest.raises(DataError, match='train/00001/y.npy: missing file'):
        ShardDataset(d, 'train')
    man = generate_dataset(load_preset('tiny'), d, 60, 20, 20, shard_size=20, workers=1, seed=3, progress=False)
    assert man['generated']['shards'] == 1 and not (d / 'train' / '.00001.tmp999').exists()
    ref = ShardDataset(tiny_dataset, 'train')[25]
    got = ShardDataset(d, 'train')[25]
    assert all(torch.equal(ref[k], got[k]) for k in ('y', 'H', 'phi'))


def test_numpy_inputs_accepted():
    cfg = load_preset('tiny')
    a = steering(cfg, np.array([0.1, 0.2]), np.array([0.0, 0.1]), np.array([1.0, 2.0]))
    assert a.shape == (2, cfg.N)
    R = build_effective_cov(None, np.outer(a[0].numpy(), a[0].numpy().conj()))
    assert abs(torch.diagonal(R).real.sum().item() - cfg.N) < 1e-3


def test_bad_counts_and_indices(tiny_dataset):
    "Negative or non-numeric sample counts, a zero shard size and non-integer indices are errors that name the value."
    from ris_music import n_samples
    with pytest.raises(DataError, match="got -5"): n_samples(100, -5, 'train split')
    with pytest.raises(DataError, match="got -0.5"): n_samples(100, -0.5, 'train split')
    with pytest.raises(DataError, match="got True"): n_samples(100, True, 'train split')
    with pytest.raises(ValueError, match='shard_size must be >= 1, got 0'):
        generate_dataset(load_preset('tiny'), tiny_dataset.parent / 'never', 10, 0, 0, shard_size=0)
    ds = ShardDataset(tiny_dataset, 'train')
    with pytest.raises(TypeError, match='indices must be integers'): ds[1.7]


def test_manifest_null_or_bad_config(tiny_dataset, tmp_path):
    "A manifest that is `null` or whose config has a bad or extra key gives a DataError naming the file."
    from ris_music import verify_dataset
    d = tmp_path / 'c'
    shutil.copytree(tiny_dataset, d)
    (d / 'manifest.json').write_text('null')
    with pytest.raises(DataError, match='manifest is not a JSON object'): ShardDataset(d, 'train')
    assert any('not a JSON object' in p for p in verify_dataset(d, raise_on_error=False))
    shutil.rmtree(d)
    shutil.copytree(tiny_dataset, d)
    man = json.loads((d / 'manifest.json').read_text())
    man['config']['colour'] = 1
    (d / 'manifest.json').write_text(json.dumps(man))
    with pytest.raises(DataError, match=r"manifest.json: field 'config' is not a valid config.*colour"):
        ShardDataset(d, 'train')
    man['config'].pop('colour')
    man['config']['L'] = 'x'
    (d / 'manifest.json').write_text(json.dumps(man))
    with pytest.raises(DataError, match="field 'config' is not a valid config.*'L'"): ShardDataset(d, 'train')


def test_rerun_with_another_config_keeps_results(tiny_dataset, tmp_path):
    "A training rerun with another config moves the earlier run's last.pt, best.pt and log.jsonl aside, not over."
    import warnings
    from ris_music import Trainer
    data, out = tmp_path / 'd', tmp_path / 'o'
    shutil.copytree(tiny_dataset, data)                               # the trainer caches coded-ML next to the data
    kw = dict(params=dict(batch_size=32, D_MODEL=32, NUM_HEADS=2, n_layers=1), progress=False, n_train=32, n_val=16)
    Trainer(data, out, **kw).fit(2)
    best = (out / 'best.pt').read_bytes()
    log = (out / 'log.jsonl').read_text()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        Trainer(data, out, **dict(kw, params=dict(kw['params'], lr=1e-5))).fit(1)
    aside = lambda name: [p for p in out.glob(f'{name}.stale-*') if p.suffix != '.sha256']   # (sidecars kept with them)
    assert [p.read_bytes() for p in aside('best.pt')] == [best]
    assert [p.read_text() for p in aside('log.jsonl')] == [log]
    assert len((out / 'log.jsonl').read_text().splitlines()) == 1


@pytest.mark.parametrize('field, value', [('freq', 0.0), ('freq', float('nan')), ('spacing', 0.0), ('theta_deg', 95.0),
                                          ('source_corr', 2.0), ('phase_bits', -1), ('K_max', 36), ('L', True)])
def test_config_ranges(field, value):
    "Out-of-range config values are errors that name the field."
    with pytest.raises((ValueError, TypeError), match=field if field != 'K_max' else 'K_max=36'):
        load_preset('tiny', **{field: value})


def test_config_snr_order():
    with pytest.raises(ValueError, match='snr_min_db <= snr_max_db'):
        load_preset('tiny', snr_min_db=10.0, snr_max_db=0.0)


def test_hpo_without_result_exits_nonzero(tiny_dataset, tmp_path):
    "An HPO run that finishes no trial says so and exits with status 1 (no best.json)."
    import subprocess
    from conftest import BIN
    p = subprocess.run([str(BIN / 'ris_hpo'), '--data-dir', str(tiny_dataset), '--out-dir', str(tmp_path / 'o'),
                        '--trials', '0'], capture_output=True, text=True)
    assert p.returncode == 1 and 'no completed trial' in p.stderr, (p.returncode, p.stderr[-500:])
    assert not (tmp_path / 'o' / 'best.json').exists()


def test_nonfinite_inputs_and_loss(tiny_dataset, tmp_path):
    "NaN in a sample is an error naming file, field and row; a non-finite loss stops before the optimiser step."
    import numpy as np
    from ris_music import Trainer
    d = tmp_path / 'd'
    shutil.copytree(tiny_dataset, d)
    f = d / 'train' / '00001' / 'y.npy'
    a = np.load(f)
    a[4, 0, 0] = np.nan
    with open(f, 'wb') as fh: np.save(fh, a)
    ds = ShardDataset(d, 'train')
    ds.__getitems__([0, 1, 2])                                         # clean rows (shard 0) read fine
    with pytest.raises(DataError, match=r"train/00001/y.npy: checksum differs from the manifest's"):
        ds.__getitems__([3, 24])                                       # the changed file, before its first read
    ds = ShardDataset(d, 'train', verify=False)                        # without checksums, the values are checked
    with pytest.raises(DataError, match=r"train/00001/y.npy: field 'y' has NaN/Inf in row 4 \(train sample 24\)"):
        ds.__getitems__([3, 24])
    clean = tmp_path / 'clean'
    shutil.copytree(tiny_dataset, clean)                              # the trainer caches coded-ML next to the data
    tr = Trainer(clean, tmp_path / 'o', params=dict(batch_size=8, D_MODEL=32, NUM_HEADS=2, n_layers=1),
                 progress=False, n_train=8, n_val=8)
    tr.resume(1)
    b = next(tr.batches('train', 0))
    b['y'] = b['y'] * float('nan')
    with pytest.raises(FloatingPointError, match=r'non-finite.*stopped before the optimiser step'): tr.step(b)


def test_truncated_checkpoints(tiny_dataset, tmp_path):
    "A truncated best.pt is set aside on resume and rewritten; a truncated last.pt falls back to last.pt.prev."
    import warnings
    from ris_music import Trainer, load_model
    data = tmp_path / 'd'
    shutil.copytree(tiny_dataset, data)
    kw = dict(params=dict(batch_size=16, D_MODEL=32, NUM_HEADS=2, n_layers=1), progress=False, n_train=16, n_val=8)
    def crash(trainer, rec):
        if rec['epoch'] == 2: raise KeyboardInterrupt('simulated crash')
    with pytest.raises(KeyboardInterrupt): Trainer(data, tmp_path / 'o', **kw).fit(3, callbacks=[crash])
    best = tmp_path / 'o' / 'best.pt'
    best.write_bytes(best.read_bytes()[:500])
    (tmp_path / 'o' / 'best.pt.sha256').unlink()                      # no checksum: torch's reader finds it
    with pytest.raises(ValueError, match=f"{best}: cannot read the checkpoint"): load_model(best)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        Trainer(data, tmp_path / 'o', **kw).fit(3)
    assert any('best.pt: cannot read the checkpoint' in str(x.message) for x in w)
    load_model(best)                                                   # rewritten by the resumed run
    # a truncated last.pt (its checksum no longer matches): set aside with a warning that names it, and the run
    # resumes from last.pt.prev
    last = tmp_path / 'o' / 'last.pt'
    last.write_bytes(last.read_bytes()[:500])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        state = Trainer(data, tmp_path / 'o', **kw).resume(3)
    assert any(f'{last}: checksum mismatch' in str(x.message) and 'previous checkpoint' in str(x.message)
               for x in w)
    assert state['epoch'] == 2 and list((tmp_path / 'o').glob('last.pt.corrupt-*'))
    # both unreadable: an error that names them and says how to start afresh
    prev = tmp_path / 'o' / 'last.pt.prev'
    prev.write_bytes(prev.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"no readable checkpoint to resume from \(last.pt.prev corrupt"):
        Trainer(data, tmp_path / 'o', **kw).fit(3)


def test_shapes_and_values_of_public_functions():
    "Case 10: shape and value errors name the function, the argument and the value, before torch fails inside."
    import torch
    from ris_music import load_preset, steering, build_effective_cov, metrics, music_localize
    cfg = load_preset('tiny')
    N = cfg.N
    est = dict(K=torch.tensor([1, 2]), phi=torch.zeros(2, 3), theta=torch.zeros(2, 3), r=torch.ones(2, 3))
    truth = dict(K=torch.tensor([1, 2, 1]), phi=torch.zeros(3, 3), theta=torch.zeros(3, 3), r=torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"metrics: est\['phi'\] has 2 scenes, truth\['K'\] 3"):
        metrics(cfg, est, truth)
    empty = {k: v[:0] for k, v in truth.items()}
    with pytest.raises(ValueError, match='metrics: empty batch'):
        metrics(cfg, empty, empty)
    eye = torch.eye(N, dtype=torch.complex64)[None]
    with pytest.raises(ValueError, match=r'R_samp must be \(\.\.\., N, N\), got shape \(1, 36, 35\)'):
        build_effective_cov(None, eye[..., :-1])
    nan = eye.clone()
    nan[0, 1, 1] = float('nan')
    with pytest.raises(FloatingPointError, match='R_samp has 1 non-finite entries'):
        build_effective_cov(None, nan)
    with pytest.raises(ValueError, match=r'beta must lie in \[0, 1\], got 2'):
        build_effective_cov(eye, eye, beta=2)
    with pytest.raises(ValueError, match=r'R_pred \(1, 36, 36\) and R_samp \(2, 36, 36\) differ'):
        build_effective_cov(eye, eye.expand(2, N, N))
    for K, msg in ((N, rf'every K must lie in \[1, N - 1 = {N - 1}\], got {N}'), (0, r'got 0\.\.0')):
        with pytest.raises(ValueError, match=msg):
            music_localize(cfg, eye, torch.tensor([K]))
    with pytest.raises(ValueError, match=r'K = 5 exceeds Kmax = 3'):
        music_localize(cfg, eye, torch.tensor([5]), Kmax=3)
    with pytest.raises(ValueError, match='music_localize: R has 1 non-finite entries'):
        music_localize(cfg, nan, torch.tensor([1]))
    with pytest.raises(ValueError, match=r'K has shape \(2,\), expected \(1,\)'):
        music_localize(cfg, eye, torch.tensor([1, 1]))
    for r in (0.0, -1.0):
        with pytest.raises(ValueError, match='steering: every range r must be > 0 m'):
            steering(cfg, torch.zeros(2), torch.zeros(2), torch.tensor([1.0, r]))


def test_flipped_byte_in_a_shard(tiny_dataset, tmp_path):
    "Case 5: flipped bytes in a shard (same size) are an error naming the file before a sample of it is used."
    d = tmp_path / 'd'
    shutil.copytree(tiny_dataset, d)
    f = d / 'train' / '00002' / 'phi.npy'
    raw = bytearray(f.read_bytes())
    raw[-3] ^= 0x7F                                                    # phi of the last sample becomes garbage
    f.write_bytes(bytes(raw))
    ds = ShardDataset(d, 'train')
    assert ds[0]['phi'].shape == (3,)                                  # other shards are unaffected
    with pytest.raises(DataError, match=r"train/00002/phi.npy: checksum differs"):
        ds[45]


def test_training_run_records_its_data(tiny_dataset, tmp_path):
    "A resume on another version of the data is an error; resume=False keeps the earlier run aside and says so."
    import warnings
    from ris_music import Trainer
    data = tmp_path / 'd'
    shutil.copytree(tiny_dataset, data)
    kw = dict(params=dict(batch_size=16, D_MODEL=32, NUM_HEADS=2, n_layers=1), progress=False, n_train=16, n_val=8)
    Trainer(data, tmp_path / 'o', **kw).fit(1)
    generate_dataset(load_preset('tiny'), data, 60, 20, 20, shard_size=20, workers=1, seed=4, progress=False,
                     overwrite=True)                                   # the same folder, regenerated with another seed
    before = {p.name: p.read_bytes() for p in (tmp_path / 'o').iterdir() if p.is_file() and p.name != '.lock'}
    with pytest.raises(ValueError, match=r"last.pt was trained on another version of the data in .*resume=False"):
        Trainer(data, tmp_path / 'o', **kw).fit(1)
    from ris_music.data import manifest_hash
    meta = json.loads((data / 'derived' / 'coded_ml' / 'train' / 'meta.json').read_text())
    assert meta['manifest'] != manifest_hash(data)                     # refused before caching coded-ML again
    after = {p.name: p.read_bytes() for p in (tmp_path / 'o').iterdir() if p.is_file() and p.name != '.lock'}
    assert after == before                                             # nothing on disk changed
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        Trainer(data, tmp_path / 'o', resume=False, **kw).fit(1)
    assert any('resume=False; moved last.pt' in str(x.message) for x in w)
    stale = sorted(p.name for p in (tmp_path / 'o').glob('*.stale-*') if not p.name.endswith('.sha256'))
    assert [n.split('.stale-')[0] for n in stale] == ['best.pt', 'last.pt', 'log.jsonl']


def test_hpo_and_fit_refuse_zero_epochs(tiny_dataset, tmp_path):
    "Case 6: epochs = 0 (which used to write Infinity into best.json) is refused before any work."
    from ris_music import Trainer, run_hpo
    with pytest.raises(ValueError, match='run_hpo: epochs must be an int >= 1, got 0'):
        run_hpo(tiny_dataset, tmp_path / 'h', trials=1, epochs=0)
    with pytest.raises(ValueError, match='run_hpo: trials must be an int >= 0, got -1'):
        run_hpo(tiny_dataset, tmp_path / 'h', trials=-1, epochs=1)
    assert not (tmp_path / 'h').exists()
    data = tmp_path / 'd'
    shutil.copytree(tiny_dataset, data)
    with pytest.raises(ValueError, match='fit: epochs must be an int >= 1, got 0'):
        Trainer(data, tmp_path / 'o', progress=False).fit(0)


def test_corrupt_best_of_a_finished_run_is_rewritten(tiny_dataset, tmp_path):
    "A corrupt best.pt of a finished run is set aside and rewritten from the copy of the best weights in last.pt."
    import warnings
    from ris_music import Trainer, load_model
    data = tmp_path / 'd'
    shutil.copytree(tiny_dataset, data)
    kw = dict(params=dict(batch_size=16, D_MODEL=32, NUM_HEADS=2, n_layers=1), progress=False, n_train=16, n_val=8)
    best_obj = Trainer(data, tmp_path / 'o', **kw).fit(2)
    best = tmp_path / 'o' / 'best.pt'
    good = torch.load(best, weights_only=False)
    raw = bytearray(best.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    best.write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        again = Trainer(data, tmp_path / 'o', **kw).fit(2)             # nothing left to train
    assert any('best.pt rewritten from the copy in last.pt' in str(x.message) for x in w)
    assert again == best_obj and list((tmp_path / 'o').glob('best.pt.corrupt-*'))
    new = torch.load(best, weights_only=False)
    assert new['epoch'] == good['epoch'] and new['objective'] == good['objective']
    assert all(torch.equal(new['model'][k], good['model'][k]) for k in good['model'])
    load_model(best)
