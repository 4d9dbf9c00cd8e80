"""Issue 17, the data of real deployments: a fixed deployment is stored once and read back with every batch, it is drawn
from its own seed, it is checksummed like the shards, and a run never mixes or silently replaces two deployments."""

import json, math, shutil, hashlib, subprocess
import numpy as np, pytest, torch
from conftest import BIN
from ris_music.core import Config, load_preset, make_codebook, CONFIG_FIELDS
from ris_music.impairments import REAL_FIELDS
from ris_music import data
from ris_music.data import (generate_dataset, generate_cli, verify_cli, verify_dataset, read_deployment, read_manifest,
                            ShardDataset, DataError, simulate, shard_seed, config_hash, loader, DEPLOYMENT_DIR)

FIXED_ONLY = ('H_true', 'H', 'Hpinv')                   # what a fixed deployment stores once, and no shard holds
HARDWARE = ('ris_gain', 'ris_dead', 'ris_stuck', 'ris_codebook')


def gen(d, preset='tiny_real', seed=3, n=(16, 8, 8), **kw):
    cfg = preset if isinstance(preset, Config) else load_preset(preset)
    return generate_dataset(cfg, d, *n, shard_size=8, workers=1, seed=seed, progress=False, **kw)


def snapshot(d):
    "Every file under d with its bytes (the lock file aside)."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file() and p.name != '.lock'}


def edit_json(p, edit):
    man = json.loads(p.read_text())
    edit(man)
    p.write_text(json.dumps(man))


def cli(capsys, main, *argv):
    "The exit status, the stdout and the stderr lines of a command line run in this process."
    with pytest.raises(SystemExit) as e: main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out.strip().splitlines(), err.strip().splitlines()


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    "A small tiny_real dataset (fixed deployment, seed 3), written once for the module; tests that change it copy it."
    root = tmp_path_factory.mktemp('real') / 'd'
    gen(root)
    return root


def copy(src, tmp_path):
    shutil.copytree(src, tmp_path / 'c')
    return tmp_path / 'c'


# the manifest, the deployment folder and the shards
def test_manifest_and_files(real):
    man, cfg = read_manifest(real), load_preset('tiny_real')
    dep = man['deployment']
    assert dep['seed'] == man['seed'] == 3 and dep['path'] == DEPLOYMENT_DIR
    assert set(dep['files']) == set(HARDWARE + FIXED_ONLY)
    for k, h in dep['files'].items():
        f = real / DEPLOYMENT_DIR / f'{k}.npy'
        assert hashlib.sha256(f.read_bytes()).hexdigest() == h, k
    assert sorted(p.name for p in (real / DEPLOYMENT_DIR).iterdir()) == sorted(f'{k}.npy' for k in dep['files'])
    want = {'y', 'code_idx', 'phi', 'theta', 'r', 'snr_db', 'K', 'noise_var', 'kfactor_db', 'scat_phi', 'scat_theta',
            'scat_r', 'scat_gain'}
    assert set(man['fields']) == want
    for s in man['shards']:
        names = {p.stem for p in (real / s['path']).glob('*.npy')}
        assert names == want and not names & set(FIXED_ONLY), s['path']             # no per-scene channel
        assert s['deployment_seed'] == 3 and s['generator_version'] == data.GEN_VERSION
    assert man['fields']['scat_gain'] == dict(shape=[cfg.K_max, cfg.mp_scatterers], dtype='complex64')
    assert verify_dataset(real) == []


def test_batches_carry_the_one_deployment(real):
    cfg, dep = load_preset('tiny_real'), read_deployment(real)
    ds = ShardDataset(real, 'train')
    b = ds.__getitems__(np.arange(len(ds)))
    B, M, N, L = len(ds), cfg.M, cfg.N, cfg.L
    for k in FIXED_ONLY:
        assert b[k].shape == ((B, N, M) if k == 'Hpinv' else (B, M, N)), k
        assert (b[k] == dep[k]).all(), k                                         # one matrix for every scene
    assert not torch.equal(b['H'], b['H_true'])                                    # the estimate is not the truth
    assert torch.equal(b['ris_response'], dep['ris_codebook'][b['code_idx']]) and b['ris_response'].shape == (B, L, N)
    assert torch.equal(b['codes'], ds.codebook[b['code_idx']])                     # the nominal codes stay nominal
    H = dep['H'].numpy().astype(np.complex128)                                     # R_samp: back-projected with H^
    X = b['codes'].numpy().conj() * (b['y'].numpy() @ np.linalg.pinv(H).T)
    R = np.einsum('bln,blm->bnm', X, X.conj()) / L
    G = np.linalg.pinv(H) @ np.linalg.pinv(H).conj().T
    C = b['codes'].numpy()
    R -= G * np.einsum('bln,blm->bnm', C.conj(), C) / L                            # noise_var = 1
    np.testing.assert_allclose(b['R_samp'].numpy(), R, atol=2e-3 * np.abs(R).max())
    e, one = ds.__getitems__([]), ds.__getitems__([0])                              # an empty batch: the same fields
    assert {k: (v.shape[1:], v.dtype) for k, v in e.items()} == {k: (v.shape[1:], v.dtype) for k, v in one.items()}


def test_deployment_matches_its_physics(real):
    "The RIS's actual reflections recomputed from its stored hardware with numpy, and the channel estimate's NMSE."
    cfg, dep = load_preset('tiny_real'), {k: v.numpy() for k, v in read_deployment(real).items()}
    cb = np.load(real / 'codebook.npy').astype(np.complex128)
    gain, dead, stuck = dep['ris_gain'].astype(np.complex128), dep['ris_dead'], dep['ris_stuck']
    assert dead.dtype == bool and dead.sum() == round(cfg.ris_dead_frac * cfg.N)
    ph = np.where(dead, stuck, np.angle(cb) + np.angle(gain))
    beta = (1 - cfg.ris_beta_min) * ((np.sin(ph - math.radians(cfg.ris_phi0_deg)) + 1) / 2) ** cfg.ris_alpha
    want = np.abs(gain) * (beta + cfg.ris_beta_min) * np.exp(1j * ph)
    np.testing.assert_allclose(dep['ris_codebook'], want, atol=2e-6)
    assert np.abs(dep['ris_codebook']).max() <= np.abs(gain).max() + 1e-6
    nmse = np.mean(np.abs(dep['H'] - dep['H_true']) ** 2) / np.mean(np.abs(dep['H_true']) ** 2)
    assert abs(10 * np.log10(nmse) - cfg.h_nmse_db) < 1.5, 10 * np.log10(nmse)   # 360 entries: +-0.5 dB at 2 sigma
    np.testing.assert_allclose(dep['Hpinv'], np.linalg.pinv(dep['H'].astype(np.complex128)), atol=1e-4)


def test_new_scenes_of_the_same_site(real):
    "simulate with the stored deployment reproduces the shards: more scenes of the same site can be made later."
    cfg, dep = load_preset('tiny_real'), read_deployment(real)
    cb = torch.from_numpy(np.load(real / 'codebook.npy'))
    s = read_manifest(real)['shards'][1]
    out = simulate(cfg, s['n'], torch.Generator().manual_seed(shard_seed(3, s['split'], s['index'])), cb,
                   deployment=dep)
    for k in ('y', 'code_idx', 'scat_gain'):
        assert np.array_equal(np.load(real / s['path'] / f'{k}.npy'), out[k].numpy()), k


def test_deployment_seed_is_its_own(real, tmp_path):
    "Another dataset seed with the same deployment seed: the same deployment byte for byte, other scenes."
    d = tmp_path / 'd'
    man = gen(d, seed=4, deployment_seed=3)
    assert man['deployment']['seed'] == 3 and man['seed'] == 4
    assert man['deployment'] == read_manifest(real)['deployment']
    assert snapshot(d / DEPLOYMENT_DIR) == snapshot(real / DEPLOYMENT_DIR)
    assert not np.array_equal(np.load(d / 'train/00000/y.npy'), np.load(real / 'train/00000/y.npy'))
    e = tmp_path / 'e'
    gen(e, seed=3, deployment_seed=8)                                         # same scenes' seed, another site
    other = read_deployment(e)
    assert read_manifest(e)['deployment']['seed'] == 8
    for k in ('H_true', 'ris_gain', 'ris_codebook'): assert not torch.equal(other[k], read_deployment(real)[k]), k


def test_ideal_datasets_have_no_deployment(tmp_path):
    man = gen(tmp_path / 'i', 'tiny', deployment_seed=9)
    assert 'deployment' not in man and not (tmp_path / 'i' / DEPLOYMENT_DIR).exists()
    assert read_deployment(tmp_path / 'i') is None and ShardDataset(tmp_path / 'i').deployment is None
    assert all('deployment_seed' not in s for s in man['shards'])
    assert gen(tmp_path / 'i', 'tiny', deployment_seed=10)['generated']['shards'] == 0     # it changes nothing


# a deployment file corrupt or missing, a hand-edited deployment record
@pytest.mark.parametrize('what', ['corrupt', 'missing'])
def test_damaged_deployment_file(real, tmp_path, capsys, what):
    d = copy(real, tmp_path)
    f = d / DEPLOYMENT_DIR / 'H.npy'
    if what == 'missing': f.unlink()
    else:
        raw = bytearray(f.read_bytes())
        raw[-5] ^= 0xFF
        f.write_bytes(bytes(raw))
    state = 'missing' if what == 'missing' else 'changed or corrupt'
    with pytest.raises(DataError, match=f"{f}: deployment field 'H' is {state}"): ShardDataset(d, 'val')
    probs = verify_dataset(d, raise_on_error=False)
    assert probs and all(str(f) in p for p in probs), probs
    code, out, err = cli(capsys, verify_cli, d)
    assert code == 1 and err and str(f) in err[0] and not out, (out, err)
    man = gen(d)                                                   # the command that made it repairs it
    assert man['generated']['shards'] == 0 and verify_dataset(d) == []


@pytest.mark.parametrize('edit, field', [
    (lambda r: r.update(seed=-1), 'deployment.seed'),
    (lambda r: r.update(seed='3'), 'deployment.seed'),
    (lambda r: r['files'].update(H='0' * 63), 'deployment.files.H'),
    (lambda r: r['files'].update(ris_gain=None), 'deployment.files.ris_gain'),
    (lambda r: r.update(files=['H']), 'deployment.files'),
    (lambda r: r.pop('path'), 'deployment.path'),
])
def test_hand_edited_deployment_record(real, tmp_path, edit, field):
    d = copy(real, tmp_path)
    edit_json(d / 'manifest.json', lambda m: edit(m['deployment']))
    with pytest.raises(DataError, match=f"manifest.json: manifest field '{field}'"): ShardDataset(d, 'train')
    assert any(f"'{field}'" in p for p in verify_dataset(d, raise_on_error=False))


def test_a_changed_sha_is_the_file_problem(real, tmp_path):
    "A well-formed but wrong SHA-256 in the record: the deployment file no longer matches, named as such."
    d = copy(real, tmp_path)
    edit_json(d / 'manifest.json', lambda m: m['deployment']['files'].update(ris_codebook='0' * 64))
    with pytest.raises(DataError, match="ris_codebook.npy: deployment field 'ris_codebook' is changed or corrupt"):
        ShardDataset(d, 'train')


@pytest.mark.parametrize('edit', [lambda m: m.pop('deployment'), lambda m: m['deployment']['files'].pop('H')])
def test_deployment_record_left_out(real, tmp_path, edit):
    d = copy(real, tmp_path)
    edit_json(d / 'manifest.json', edit)
    with pytest.raises(DataError, match="deployment"): ShardDataset(d, 'train')[0]
    assert verify_dataset(d, raise_on_error=False)


# resume, another deployment seed, overwrite
def test_resume_and_another_deployment_seed(real, tmp_path):
    d = copy(real, tmp_path)
    before = snapshot(d)
    for kw in ({}, dict(deployment_seed=3)):                       # the same command (the default is the seed)
        man = gen(d, **kw)
        assert man['generated']['shards'] == 0 and man['deployment']['seed'] == 3
    assert {k: v for k, v in snapshot(d).items() if k != 'manifest.json'} == \
           {k: v for k, v in before.items() if k != 'manifest.json'}
    before = snapshot(d)
    with pytest.raises(FileExistsError, match=r'holds another dataset \(deployment seed 3 -> 7\).*overwrite'):
        gen(d, deployment_seed=7)
    assert snapshot(d) == before                                   # nothing on disk changed
    assert read_manifest(d)['deployment']['seed'] == 3
    man = gen(d, deployment_seed=7, overwrite=True)
    assert man['generated']['shards'] == 4 and man['deployment']['seed'] == 7
    assert all(s['deployment_seed'] == 7 for s in man['shards'])
    assert not torch.equal(read_deployment(d)['H'], read_deployment(real)['H']) and verify_dataset(d) == []


def test_stopped_run_of_another_deployment_seed_is_not_replaced(real, tmp_path):
    d = copy(real, tmp_path)
    (d / 'manifest.json').unlink()                                 # a run stopped before its manifest
    before = snapshot(d)
    with pytest.raises(FileExistsError, match='holds another dataset'): gen(d, deployment_seed=7)
    assert snapshot(d) == before


# generator versions
def test_version_1_shards(tmp_path):
    "A version-1 shard of an ideal config is still valid (kept), of a real config it is regenerated."
    for preset, kept in (('tiny', True), ('tiny_real', False)):
        d = tmp_path / preset
        gen(d, preset)
        p = d / 'train/00001/shard.json'
        edit_json(p, lambda r: r.update(generator_version=1))
        stamp = p.stat().st_mtime_ns
        man = gen(d, preset)
        assert man['generated']['shards'] == (0 if kept else 1), preset
        assert (p.stat().st_mtime_ns == stamp) == kept and verify_dataset(d) == []
        assert json.loads(p.read_text())["generator_version"] == (1 if kept else data.GEN_VERSION)


# the command line
def test_generate_cli(tmp_path, capsys):
    d = tmp_path / 'd'
    q = subprocess.run([str(BIN / 'ris_generate'), '--preset', 'tiny_real', '--deployment-seed', '7', '--out', str(d),
                        '--n-train', '8', '--n-val', '4', '--n-test', '4', '--shard-size', '4', '--workers', '1',
                        '--seed', '2'], capture_output=True, text=True)
    assert q.returncode == 0, q.stderr
    lines = q.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])['counts'] == dict(train=8, val=4, test=4), lines
    man = read_manifest(d)
    assert man['deployment']['seed'] == 7 and man['seed'] == 2 and man['preset'] == 'tiny_real'
    for bad in ('-1', str(2 ** 63)):
        code, out, err = cli(capsys, generate_cli, '--preset', 'tiny_real', '--deployment-seed', bad, '--out',
                             tmp_path / 'e', '--n-train', 8, '--workers', 1)
        assert code != 0 and len(err) == 1 and not out, (bad, out, err)
        assert err[0].startswith('ris_generate:') and 'deployment' in err[0] and bad in err[0], err
        assert not (tmp_path / 'e').exists()
    code, out, err = cli(capsys, generate_cli, '--deployment-seed', '2.5', '--out', tmp_path / 'e')  # argparse's own
    assert code == 2 and "argument --deployment-seed: invalid int value: '2.5'" in err[-1] and not out, err


# the config hash
def test_config_hash(tmp_path):
    "Ideal presets keep the hash they had before the new fields (the old formula); every impairment field changes it."
    old = lambda c: hashlib.sha256(json.dumps({k: v for k, v in c.to_dict().items() if k in data._PHYS},
                                              sort_keys=True).encode()).hexdigest()[:16]
    for p in ('tiny', 'seed'):
        cfg = load_preset(p)
        assert config_hash(cfg) == old(cfg), p
    other = dict(deployment='fixed', h_est='nmse', h_nmse_db=-10.0, ris_amp_err=0.1, ris_phase_err_deg=5.0,
                 ris_amp_model='practical', ris_beta_min=0.3, ris_phi0_deg=10.0, ris_alpha=2.0, ris_dead_frac=0.1,
                 mp_scatterers=1, mp_kfactor_db=3.0, mp_kfactor_std_db=1.0)
    assert set(other) == set(REAL_FIELDS)                          # a new impairment field: add it here
    base = load_preset('tiny')
    hashes = {k: config_hash(base.replace(**{k: v})) for k, v in other.items()}
    assert config_hash(base) not in hashes.values() and len(set(hashes.values())) == len(other), hashes
    assert config_hash(load_preset('tiny_real')) != config_hash(base)
    assert config_hash(load_preset('tiny_real')) != config_hash(load_preset('seed_real'))


# the loader's worker processes
def test_loader_with_workers(real):
    ds = ShardDataset(real, 'train')
    dep = ds.deployment
    got = list(loader(ds, np.arange(len(ds)), 8, workers=1))
    assert len(got) == 2
    ref = ds.__getitems__(np.arange(len(ds)))
    for k in ('H', 'H_true', 'Hpinv', 'ris_response', 'R_samp', 'y'):
        assert torch.equal(torch.cat([b[k] for b in got]), ref[k]), k
    assert all((b['H'] == dep['H']).all() for b in got)


# a per-scene channel, estimated
def test_per_scene_estimate(tmp_path):
    "deployment='scene', h_est='nmse': every scene stores its own H (the estimate) and H_true; NMSE as configured."
    cfg = load_preset('tiny', h_est='nmse', h_nmse_db=-10.0)
    d = tmp_path / 'd'
    man = generate_dataset(cfg, d, 64, 0, 0, shard_size=32, workers=1, seed=1, progress=False)
    assert {'H', 'Hpinv', 'H_true'} <= set(man['fields']) and set(man['deployment']['files']) == set(HARDWARE)
    ds = ShardDataset(d, 'train')
    b = ds.__getitems__(np.arange(64))
    H, Ht = b['H'].numpy().astype(np.complex128), b['H_true'].numpy().astype(np.complex128)
    assert not np.allclose(H[0], H[1]) and not np.allclose(Ht[0], Ht[1])          # a new channel per scene
    nmse = 10 * np.log10(np.mean(np.abs(H - Ht) ** 2) / np.mean(np.abs(Ht) ** 2))
    assert abs(nmse - cfg.h_nmse_db) < 0.3, nmse                 # 23040 entries: +-0.06 dB at 2 sigma
    np.testing.assert_allclose(b['Hpinv'].numpy(), np.linalg.pinv(H), atol=1e-4)   # the estimate's pseudo-inverse
    torch.testing.assert_close(b['ris_response'], b['codes'])    # an ideal RIS: what was commanded
    ex = load_preset('tiny')                                     # exactly known: no H_true stored, H given as H_true
    assert 'H_true' not in data.shard_fields(ex) and 'H_true' in data.shard_fields(cfg)


# bad config values
@pytest.mark.parametrize('field, value', [
    ('ris_amp_err', 1.5), ('ris_amp_err', -0.1), ('deployment', 'moving'), ('h_est', 'ls'), ('mp_scatterers', -1),
    ('mp_scatterers', 1.5), ('ris_phase_err_deg', -1.0), ('ris_dead_frac', 2.0), ('h_nmse_db', 5.0),
    ('ris_amp_model', 'real'), ('ris_alpha', 0.0), ('mp_kfactor_std_db', -1.0), ('ris_beta_min', 1.2),
    ('h_nmse_db', float('nan')),
])
def test_bad_config_values(field, value):
    with pytest.raises((ValueError, TypeError), match=f"'{field}'"): load_preset('tiny', **{field: value})
    with pytest.raises((ValueError, TypeError), match=f"'{field}'"): load_preset('tiny_real').replace(**{field: value})


# the site's fingerprint: the same deployment seed is the same site, whatever the scenes and the codebook
def test_deployment_id_and_check_data(real, tmp_path):
    same = gen(tmp_path / 'same', seed=9, deployment_seed=3)               # other scenes of the same site
    other = gen(tmp_path / 'other', seed=3, deployment_seed=4)             # the same scene seeds, another site
    rnd = [gen(tmp_path / f'rnd{s}', load_preset('tiny_real', codebook='random'), seed=s, deployment_seed=3)
           for s in (1, 2)]                                                # random codes drawn from the dataset seed
    site = read_manifest(real)['deployment']['id']
    assert same['deployment']['id'] == site != other['deployment']['id']
    assert rnd[0]['deployment']['id'] == rnd[1]['deployment']['id']       # the codes differ, the site does not
    assert rnd[0]['deployment']['files']['ris_codebook'] != rnd[1]['deployment']['files']['ris_codebook']
    data.check_data(load_preset('tiny_real'), ShardDataset(tmp_path / 'same', 'train'), deployment_id=site)
    with pytest.raises(DataError, match=r'another deployment \(site [0-9a-f]{16}, deployment seed 4\)'):
        data.check_data(load_preset('tiny_real'), ShardDataset(tmp_path / 'other', 'train'), deployment_id=site)


# an ideal dataset is written as version 1 wrote it: its manifest hash (what caches and studies key on) stays
def test_ideal_manifest_as_before(tmp_path):
    man = gen(tmp_path / 'i', 'tiny')
    assert man['generator_version'] == 1 and all(s['generator_version'] == 1 for s in man['shards'])
    assert not set(REAL_FIELDS) & set(man['config']) and 'deployment' not in man
    old = {k for k in load_preset('tiny').to_dict() if k not in REAL_FIELDS}
    assert set(man['config']) == old and Config(**man['config']) == load_preset('tiny')
    h = data.manifest_hash(tmp_path / 'i')
    gen(tmp_path / 'i', 'tiny')                                            # a rerun keeps the identity
    assert data.manifest_hash(tmp_path / 'i') == h


def test_overwrite_real_by_ideal_drops_the_deployment(real, tmp_path):
    d = copy(real, tmp_path)
    gen(d, 'tiny', overwrite=True)
    assert not (d / DEPLOYMENT_DIR).exists() and read_deployment(d) is None and verify_dataset(d) == []


@pytest.mark.parametrize('edit', [lambda m: m.pop('deployment'), lambda m: m['deployment']['files'].pop('H')])
def test_rerun_repairs_a_lost_deployment_record(real, tmp_path, edit):
    "The error's advice works: rerunning the command that made the dataset restores the record (no overwrite needed)."
    d = copy(real, tmp_path)
    edit_json(d / 'manifest.json', edit)
    man = gen(d)
    assert man['generated']['shards'] == 0 and man['deployment'] == read_manifest(real)['deployment']
    assert verify_dataset(d) == []


def test_deployment_shapes_are_checked(real, tmp_path):
    d = copy(real, tmp_path)
    f = d / DEPLOYMENT_DIR / 'ris_gain.npy'
    np.save(f, np.ones(5, np.complex64))
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    edit_json(d / 'manifest.json', lambda m: m['deployment']['files'].update(ris_gain=sha))
    with pytest.raises(DataError, match=r"ris_gain.npy: deployment field 'ris_gain' has shape \(5,\), the config "
                                        r"needs \(36,\)"):
        ShardDataset(d, 'train')
