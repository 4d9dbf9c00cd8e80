"Issue 21, data and generation: a job deletes only what is its own, bad input is one clear error before any work."

import json, math, re, shutil, hashlib
import numpy as np, pytest, torch
from ris_music.core import load_preset, make_codebook, source_mask, dir_lock, FolderLocked
from ris_music import data
from ris_music.data import (generate_dataset, generate_cli, verify_cli, require_dataset, hold_dataset, write_derived,
                            read_derived, has_derived, ShardDataset, DataError, simulate, draw_scenes, read_manifest,
                            manifest_hash, complete_batch, DEMO_DATASET)


def snapshot(d):
    "Every file under d with its bytes (the lock file aside)."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file() and p.name != '.lock'}


def gen(d, seed=1, **kw):
    return generate_dataset(load_preset('tiny'), d, 8, 4, 4, shard_size=4, workers=1, seed=seed, progress=False, **kw)


def cli(capsys, main, *argv):
    "The exit status and the stderr lines of a command line run in this process."
    with pytest.raises(SystemExit) as e: main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err.strip().splitlines()


def copy(tiny_dataset, tmp_path):
    shutil.copytree(tiny_dataset, tmp_path / 'c')
    return tmp_path / 'c'


def edit_manifest(d, edit):
    man = json.loads((d / 'manifest.json').read_text())
    edit(man)
    (d / 'manifest.json').write_text(json.dumps(man))


# 3: ris_generate deletes only its own shard folders; anything else is an error before any work
def test_generate_refuses_folders_it_did_not_write(tmp_path, capsys):
    u = tmp_path / 'u'
    for p in ('train/1', 'train/7', 'val/3'):
        (u / p).mkdir(parents=True)
        (u / p / 'mine.txt').write_text('keep')
    (u / 'train/notes').mkdir()
    before = snapshot(u)
    code, err = cli(capsys, generate_cli, '--out', u, '--n-train', 8, '--n-val', 4, '--n-test', 4, '--shard-size', 4,
                    '--workers', 1)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f'ris_generate: {u}/train/1 (and 3 more): not a shard folder of ris_generate'), err
    assert snapshot(u) == before and not (u / 'manifest.json').exists() and not (u / '.lock').exists()
    (u / 'val/00002').mkdir()                                  # a shard-like name holding a file of someone else
    (u / 'val/00002/notes.txt').write_text('mine')
    for p in ('train/1', 'train/7', 'val/3', 'train/notes'): shutil.rmtree(u / p)
    with pytest.raises(FileExistsError, match='val/00002: not a shard folder'): gen(u)
    assert (u / 'val/00002/notes.txt').read_text() == 'mine'


def test_smaller_rerun_prunes_only_its_own_shards(tmp_path):
    d = tmp_path / 'd'
    gen(d)
    (d / 'train/readme.txt').write_text('keep')
    (d / 'train/.ipynb_checkpoints').mkdir()
    (d / 'train/.00009.tmp123').mkdir()                        # debris of an interrupted run: its own
    generate_dataset(load_preset('tiny'), d, 4, 4, 4, shard_size=4, workers=1, seed=1, progress=False, overwrite=True)
    names = sorted(p.name for p in (d / 'train').iterdir())
    assert names == ['.ipynb_checkpoints', '00000', 'readme.txt'], names


def test_stopped_run_keeps_its_shards(tiny_dataset, tmp_path):
    "The shards of a stopped run (no manifest) are kept by the same command and replaced by no other run unasked."
    d = copy(tiny_dataset, tmp_path)
    (d / 'manifest.json').unlink()
    (d / 'train/00001/shard.json').write_text('[1, 2]')                 # a damaged record: rewritten
    before = snapshot(d)
    with pytest.raises(FileExistsError, match=r'holds another dataset \(shards train/00000, train/00002, val/00000 and '
                                              r'1 more of a stopped run with other settings'):
        gen(d, seed=3)
    assert snapshot(d) == before
    man = generate_dataset(load_preset('tiny'), d, 60, 20, 20, shard_size=20, workers=1, seed=3, progress=False)
    assert man['generated']['shards'] == 1                             # the same command: only the bad one redone
    gen(d, seed=3, overwrite=True)
    assert read_manifest(d)['counts'] == dict(train=8, val=4, test=4)


# 2: a notebook never generates into, or deletes from, a folder it was not made for
def test_require_dataset(tmp_path, tiny_dataset):
    with pytest.raises(DataError, match=r"data_dir '.*typo' is not a dataset .*ris_generate --out .*data_dir empty"):
        require_dataset(tmp_path / 'typo')
    assert not (tmp_path / 'typo').exists()
    killed = tmp_path / 'killed'                               # a killed ris_generate: finished shards, no manifest
    shutil.copytree(tiny_dataset, killed)
    (killed / 'manifest.json').unlink()
    before = snapshot(killed)
    with pytest.raises(DataError, match='no manifest'): require_dataset(str(killed))
    assert snapshot(killed) == before
    assert require_dataset(tiny_dataset) == tiny_dataset
    with pytest.raises(TypeError, match='data_dir must be a folder path'): require_dataset(3)
    demo = require_dataset('', demo_dir=tmp_path / 'demo', progress=False)
    man = read_manifest(demo)
    assert man['counts'] == dict(train=240, val=80, test=80) and man['seed'] == DEMO_DATASET['seed'] == 0
    stamp = (demo / 'manifest.json').stat().st_mtime_ns
    assert require_dataset(None, demo_dir=demo) == demo and (demo / 'manifest.json').stat().st_mtime_ns == stamp


# 4: derived data are read and written holding the dataset; --overwrite is refused meanwhile
def test_overwrite_refused_while_derived_data_are_computed(tiny_dataset, tmp_path, capsys):
    d = copy(tiny_dataset, tmp_path)
    before = snapshot(d)
    with hold_dataset(d, 'coded-ML cache') as mh:
        assert mh == manifest_hash(d)
        with pytest.raises(FolderLocked, match='is in use'):
            generate_dataset(load_preset('tiny'), d, 60, 20, 20, shard_size=20, workers=1, seed=4, overwrite=True)
        code, err = cli(capsys, generate_cli, '--out', d, '--n-train', 60, '--n-val', 20, '--n-test', 20,
                        '--shard-size', 20, '--workers', 1, '--seed', 4, '--overwrite')
        assert code == 1 and len(err) == 1 and f'ris_generate: {d} is in use (being read' in err[0], err
    assert snapshot(d) == before
    with dir_lock(d, 'ris_generate'):                          # while ris_generate writes: no derived reader or writer
        for f in (lambda: write_derived(d, 'x', 'val', dict(a=np.zeros(20))), lambda: has_derived(d, 'x', 'val'),
                  lambda: read_derived(d, 'x', 'val')):
            with pytest.raises(FolderLocked, match='ris_generate: pid'): f()
    gen_hash = manifest_hash(d)
    edit_manifest(d, lambda m: m.update(seed=9))              # the dataset changed while the arrays were computed
    with pytest.raises(DataError, match='the dataset changed while derived data'):
        write_derived(d, 'x', 'val', dict(a=np.zeros(20)), manifest=gen_hash)
    with pytest.raises(ValueError, match="split must be one of"): write_derived(d, 'x', 'training', {})
    with pytest.raises(ValueError, match="plain folder name"): read_derived(d, '../x', 'val')


# 10: coherent sources (source_corr = 1); a failing write leaves no temporary file
def test_coherent_sources(tmp_path):
    cfg = load_preset('tiny', source_corr=1.0)
    out = simulate(cfg, 40, torch.Generator().manual_seed(0), make_codebook(cfg), latent=True)
    assert torch.isfinite(out['y']).all()
    multi = [i for i in range(40) if out['K'][i] > 1]
    assert multi and all(torch.linalg.matrix_rank(out['s'][i, :, :int(out['K'][i])]) == 1 for i in multi)
    man = generate_dataset(cfg, tmp_path / 'd', 8, 0, 0, shard_size=4, workers=1, progress=False)
    assert man['counts']['train'] == 8 and not [p for p in (tmp_path / 'd').rglob('*tmp*')]


def test_symbol_factor_is_cholesky_below_coherence():
    "For source_corr < 1 the factor is the Cholesky factor, bit for bit (the data of valid configs do not change)."
    for rho in (0.0, 0.5, 0.99):
        cfg = load_preset('tiny', source_corr=rho)
        sc = draw_scenes(cfg, 200, torch.Generator().manual_seed(1))
        S = data.source_cov(cfg, sc['snr_db'].double(), sc['K'])
        act = source_mask(sc['K'].long(), cfg.K_max).double()
        assert torch.equal(data._symbol_factor(S, act), torch.linalg.cholesky(S + torch.diag_embed(1 - act)))


def test_failing_shard_write_leaves_no_temporary_folder(tmp_path, monkeypatch):
    def boom(*a, **kw): raise np.linalg.LinAlgError('boom')
    monkeypatch.setattr(data, 'simulate', boom)
    with pytest.raises(np.linalg.LinAlgError): data.write_shard(load_preset('tiny'), tmp_path, 'train', 0, 4, seed=0)
    assert list((tmp_path / 'train').iterdir()) == []


# 13: simulate's arguments
def test_simulate_arguments():
    cfg, g = load_preset('tiny'), torch.Generator()
    cb = make_codebook(cfg)
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match=f"simulate: n .* got {n}"): simulate(cfg, n, g, cb)
    with pytest.raises(ValueError, match=r"codebook must be complex \(n_codes >= 1, N=36\).*shape \(36, 16\)"):
        simulate(cfg, 2, g, cb[:, :16])
    with pytest.raises(TypeError, match='g must be a torch.Generator'): simulate(cfg, 2, 1, cb)
    a = simulate(cfg, 3, torch.Generator().manual_seed(2), cb.numpy())        # a numpy codebook is accepted
    assert torch.equal(a['y'], simulate(cfg, 3, torch.Generator().manual_seed(2), cb)['y'])


# 8: min_sep_deg is met, or an error
def test_min_separation(tmp_path):
    for preset, want in (('tiny', '117bba8c74efeffd'), ('seed', 'e1860c4a4d64db08')):   # the scenes before issue 21
        sc = draw_scenes(load_preset(preset), 3000, torch.Generator().manual_seed(5))
        got = b''.join(np.ascontiguousarray(sc[k].numpy()).tobytes() for k in ('K', 'phi', 'theta', 'r', 'snr_db'))
        assert hashlib.sha256(got).hexdigest()[:16] == want, preset
    cfg = load_preset('tiny', min_sep_deg=60.0)
    sc = draw_scenes(cfg, 500, torch.Generator().manual_seed(0))
    gap = torch.hypot(sc['phi'][:, :, None] - sc['phi'][:, None], sc['theta'][:, :, None] - sc['theta'][:, None])
    act = source_mask(sc['K'].long(), cfg.K_max)
    pairs = act[:, :, None] & act[:, None] & ~torch.eye(cfg.K_max, dtype=torch.bool)
    assert (gap[pairs] >= math.radians(60.0) - 1e-6).all()
    for sep in (100.0, 200.0):
        with pytest.raises(ValueError, match=f'min_sep_deg={sep:g} cannot be met'):
            generate_dataset(load_preset('tiny', min_sep_deg=sep), tmp_path / 'never', 4, 0, 0, workers=1)
    assert not (tmp_path / 'never').exists()


# 12, 15: empty batches and empty splits
def test_empty_batch_and_empty_split(tiny_dataset, tmp_path):
    ds = ShardDataset(tiny_dataset, 'train')
    e, one = ds.__getitems__([]), ds.__getitems__([0])
    assert {k: (v.shape[1:], v.dtype) for k, v in e.items()} == {k: (v.shape[1:], v.dtype) for k, v in one.items()}
    assert len(e['K']) == 0 and len(e['R_samp']) == 0
    d = tmp_path / 'd'
    generate_dataset(load_preset('tiny'), d, 8, 0, 0, shard_size=4, workers=1, progress=False)
    val = ShardDataset(d, 'val')
    assert len(val) == 0 and len(val.__getitems__([])['y']) == 0
    write_derived(d, 'coded_ml', 'train', dict(K=np.zeros(8)))
    with pytest.raises(DataError, match=r"the val split is empty \(0 samples\), so it has no derived data 'coded_ml'"):
        ShardDataset(d, 'val', derived=('coded_ml',))


# 16: hand-edited manifests; every file is checked against the manifest when it is opened
@pytest.mark.parametrize('edit, where', [
    (lambda m: m.pop('counts'), "field 'counts' is missing"),
    (lambda m: m.update(counts=None), "field 'counts' is null"),
    (lambda m: m['counts'].update(val='20'), "field 'counts.val' is str"),
    (lambda m: m.update(shards={}), "field 'shards' is dict"),
    (lambda m: m['shards'][0].pop('split'), "field 'shards[0].split' is missing"),
    (lambda m: m['shards'][1].update(n=None), "field 'shards[1].n' is null"),
    (lambda m: m['shards'][2].pop('files'), "field 'shards[2].files' is missing"),
    (lambda m: m['shards'][0]['files'].pop('y'), "field 'shards[0].files.y' is missing"),
    (lambda m: m['fields'].update(y=None), "field 'fields.y' is null"),
    (lambda m: m.update(codebook={'path': 'codebook.npy'}), "field 'codebook.sha256' is missing"),
    (lambda m: m.update(config_hash=3), "field 'config_hash' is int"),
])
def test_hand_edited_manifest(tiny_dataset, tmp_path, capsys, edit, where):
    d = copy(tiny_dataset, tmp_path)
    edit_manifest(d, edit)
    with pytest.raises(DataError, match=re.escape(f"{d}/manifest.json: manifest {where}")): ShardDataset(d, 'train')
    code, err = cli(capsys, verify_cli, d)
    assert code == 1 and len(err) == 1 and err[0].startswith(f'ERROR {d}/manifest.json: manifest {where}'), err


def test_codebook_is_checked_when_opened(tiny_dataset, tmp_path, capsys):
    d = copy(tiny_dataset, tmp_path)
    cb = np.load(d / 'codebook.npy')
    np.save(d / 'codebook.npy', cb[::-1].copy())
    with pytest.raises(DataError, match=r"codebook.npy: codebook checksum differs from the manifest's"):
        ShardDataset(d, 'train')
    code, err = cli(capsys, verify_cli, d)
    assert code == 1 and len(err) == 1 and 'codebook checksum differs' in err[0], err    # once, not once per split


# 14: ris_generate: one line, exit status 1, nothing created
@pytest.mark.parametrize('args, msg', [
    (['--n-train', '-1'], 'n_train must be a non-negative int, got -1'),
    (['--shard-size', '0'], 'shard_size must be >= 1, got 0'),
    (['--preset', 'huge'], "unknown preset 'huge'"),
    (['--preset', '{bad}'], 'config file is not valid JSON'),
    (['--preset', '{missing}'], 'does not exist'),
    (['--preset', '{unknown_key}'], "unknown config key 'colour'"),
    (['--preset', '{a_list}'], 'must hold a JSON object of config fields'),
    (['--workers', '0'], 'workers must be an int in [1, 4096], got 0'),
    (['--seed', '-1'], 'seed must be an int in [0, '),
])
def test_generate_cli_errors(tmp_path, capsys, args, msg):
    (tmp_path / 'bad.json').write_text('{"Nh": 4,')
    (tmp_path / 'unknown_key.json').write_text('{"colour": 4}')
    (tmp_path / 'a_list.json').write_text('[1, 2]')
    files = {k: tmp_path / f'{k}.json' for k in ('bad', 'unknown_key', 'a_list')}
    args = [a.format(missing=tmp_path / 'no.json', **files) for a in args]
    code, err = cli(capsys, generate_cli, '--out', tmp_path / 'never', *args)
    assert code == 1 and len(err) == 1 and err[0].startswith('ris_generate: ') and msg in err[0], err
    assert not (tmp_path / 'never').exists()


def test_generate_cli_out_is_a_file(tmp_path, capsys):
    (tmp_path / 'f').write_text('x')
    code, err = cli(capsys, generate_cli, '--out', tmp_path / 'f', '--n-train', 4)
    assert code == 1 and err == [f'ris_generate: generate_dataset: out_dir {tmp_path}/f is a file, not a folder; use '
                                 'another out_dir'], err


def test_command_lines_keep_their_flags():
    helptext = data._generate_parser().format_help()
    for flag in ('--preset', '--out', '--n-train', '--n-val', '--n-test', '--shard-size', '--workers', '--seed',
                 '--overwrite'):
        assert flag in helptext, flag
    a = data._generate_parser().parse_args(['--out', 'x'])
    assert (a.preset, a.workers, a.seed, a.overwrite, a.n_train) == ('tiny', 2, 0, False, None)


# the deprecated names of the last refactor
def test_deprecated_names(tiny_dataset):
    with pytest.warns(DeprecationWarning, match='use SHARD_FIELDS'):
        assert data.FIELDS is data.SHARD_FIELDS
    assert 'FIELDS' not in data.__all__
    ds = ShardDataset(tiny_dataset, 'train')
    raw = {k: torch.from_numpy(np.array(m[:2])) for k, m in ds.maps[0].items()}
    want = complete_batch(ds.cfg, dict(raw), ds.codebook, ds.with_rsamp)
    with pytest.warns(DeprecationWarning, match='derive is deprecated'):
        got = ds.derive(dict(raw))
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_arguments_of_readers(tiny_dataset):
    "Every public reader checks its arguments, with a message naming the argument."
    ds = ShardDataset(tiny_dataset, 'train')
    with pytest.raises(ValueError, match='loader: batch_size must be an int >= 1, got 0'): data.loader(ds, [0, 1], 0)
    with pytest.raises(ValueError, match=r'loader: rank must be < world \(2\), got 3'):
        data.loader(ds, [0, 1], 2, rank=3, world=2)
    with pytest.raises(TypeError, match='derived must be a tuple of names'):
        ShardDataset(tiny_dataset, 'train', derived='coded_ml')
    with pytest.raises(TypeError, match="arrays must be a dict of numpy arrays"):
        write_derived(tiny_dataset, 'x', 'val', dict(a=3.0))


def test_split_folder_may_be_a_link(tmp_path):
    "A split folder that links to another disk is the dataset's own: a rerun completes it instead of refusing it."
    from ris_music import load_preset, generate_dataset
    from ris_music.data import verify_dataset, _SHARD_NAME
    disk = tmp_path / 'disk' / 'train'
    disk.mkdir(parents=True)
    root = tmp_path / 'd'
    root.mkdir()
    (root / 'train').symlink_to(disk)
    cfg = load_preset('tiny')
    for _ in range(2):                                                   # a first run, then a rerun of it
        generate_dataset(cfg, root, 8, 4, 0, shard_size=4, workers=1, seed=1, progress=False)
    assert sorted(p.name for p in disk.iterdir()) == ['00000', '00001']
    assert not verify_dataset(root, raise_on_error=False)                 # and it reads back clean
    assert _SHARD_NAME.fullmatch('100000') and not _SHARD_NAME.fullmatch('notes')   # index 100000 on: 6 digits
