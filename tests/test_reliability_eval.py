"""Issue 21, the evaluation (07_eval): nothing trained or generated that was not asked for (#1, #2), every job parameter
checked first (#17), earlier results of other counts or settings kept aside, and the method registry (METHOD_STYLE a
plain dict, CLASSICAL read at access)."""
import json, warnings
from pathlib import Path
import pytest
import torch

import ris_music.evaluate as ev
from ris_music.data import DataError, ShardDataset
from ris_music.evaluate import (METHODS, METHOD_STYLE, check_eval_params, default_methods, job_checkpoint,
                                keep_earlier_results, provenance, register, run_methods, sweep)

NB = Path(__file__).resolve().parents[1] / 'nbs' / '07_eval.ipynb'
SMALL = dict(batch_size=32, D_MODEL=32, NUM_HEADS=2, n_layers=1)


def snapshot(folder):
    "Every file under folder with its size and modification time (not the lock file, which records its holders)."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob('*')) if p.is_file() and p.name != '.lock'}


@pytest.fixture(scope='module')
def run_dir(tiny_dataset, tmp_path_factory):
    "A real run's folder (the issue's t_ref): a one-epoch small model on the tiny dataset."
    from ris_music.train import Trainer
    out = tmp_path_factory.mktemp('t_ref')
    Trainer(tiny_dataset, out, params=SMALL, progress=False).fit(1)
    return out


def cells():
    "The 07 notebook's code cells: its imports, the parameters cell and the job's cells (up to its figures)."
    nb = json.loads(NB.read_text())['cells']
    src = lambda c: ''.join(c['source'])
    start = next(i for i, c in enumerate(nb) if src(c).startswith('## The evaluation job'))
    stop = next(i for i, c in enumerate(nb) if src(c).startswith("### The job's figures"))
    at = next(i for i, c in enumerate(nb) if 'parameters' in c['metadata'].get('tags', []))
    imports = [src(c) for c in nb[:at] if c['cell_type'] == 'code']
    job = [src(c) for c in nb[start:stop] if c['cell_type'] == 'code']
    return imports, src(nb[at]), job


def run_job(**params):
    "Run the notebook's job cells (not its examples or figures) as papermill would with `-p` params."
    ns = {}
    imports, p, job = cells()
    for c in imports: exec(c, ns)
    exec('from ris_music.evaluate import *', ns)
    exec(p, ns)
    ns.update(params)
    for c in job: exec(c, ns)
    return ns


# --- #1: a typo in ckpt; train_if_missing ---------------------------------------------------------------------------

def test_notebook_defaults_train_and_generate_nothing_unasked():
    _, params, job = cells()
    ns = {}
    exec(params, ns)
    assert (ns['ckpt'], ns['data_dir'], ns['train_if_missing']) == ('demo', '', False)
    assert job[0].lstrip().startswith('prm = check_eval_params(')               # the parameters come first
    assert 'generate_dataset' not in ''.join(job) and 'Trainer(' not in ''.join(job)
    assert 'data_dir = require_dataset(data_dir)' in job[0]


def test_typo_in_ckpt_is_an_error_before_anything_is_written(run_dir, tiny_dataset, tmp_path):
    before, data_before = snapshot(run_dir), snapshot(tiny_dataset)
    with pytest.raises(FileNotFoundError, match=r"bset\.pt does not exist .*holds best\.pt, last\.pt"):
        check_eval_params(ckpt=str(run_dir / 'bset.pt'), data_dir=str(tiny_dataset))
    with pytest.raises(FileNotFoundError, match='bset.pt'):       # the job itself (papermill -p ckpt t_ref/bset.pt)
        run_job(ckpt=str(run_dir / 'bset.pt'), data_dir=str(tiny_dataset), out_dir=str(tmp_path / 'eval'))
    assert snapshot(run_dir) == before and snapshot(tiny_dataset) == data_before
    assert not (tmp_path / 'eval').exists()


def test_train_if_missing_never_trains_into_another_runs_folder(run_dir, tiny_dataset, tmp_path):
    before = snapshot(run_dir)
    with pytest.raises(FileExistsError, match=r"does not train into .*another run's files \(best\.pt, last\.pt"):
        job_checkpoint(str(run_dir / 'bset.pt'), tiny_dataset, train_if_missing=True)     # the typo
    with pytest.raises(ValueError, match=r'pass .*new/best\.pt'):  # training writes a best.pt, not model.pt
        check_eval_params(ckpt=str(tmp_path / 'new' / 'model.pt'), train_if_missing=True)
    half = tmp_path / 'half'
    half.mkdir()
    (half / 'log.jsonl').write_text('{}\n')                       # a run's log, no checkpoint yet
    with pytest.raises(FileExistsError, match=r"another run's files \(log\.jsonl\)"):
        check_eval_params(ckpt=str(half / 'best.pt'), train_if_missing=True)
    with pytest.raises(FileExistsError):
        job_checkpoint(str(half / 'best.pt'), tiny_dataset, train_if_missing=True)
    assert snapshot(run_dir) == before and sorted(p.name for p in half.iterdir()) == ['log.jsonl']


def test_train_if_missing_trains_into_a_new_folder(tiny_dataset, tmp_path):
    ck = str(tmp_path / 'new' / 'best.pt')
    assert job_checkpoint(ck, tiny_dataset, train_if_missing=True, epochs=1, params=SMALL) == ck
    assert Path(ck).is_file()


def test_demo_model_is_trained_in_its_own_folder_and_reused(tiny_dataset, tmp_path):
    demo = tmp_path / 'demo'
    ck = job_checkpoint('demo', tiny_dataset, demo_dir=demo, epochs=1, params=SMALL)
    assert ck == str(demo / 'best.pt') and Path(ck).is_file()
    before = snapshot(demo)
    assert job_checkpoint('demo', tiny_dataset, demo_dir=demo, epochs=1, params=SMALL) == ck
    assert snapshot(demo) == before                               # the same data: reused, not trained again


# --- #2: a data_dir that holds no dataset ---------------------------------------------------------------------------

def test_data_dir_without_manifest_is_an_error_and_is_not_touched(tmp_path):
    killed = tmp_path / 'killed'                                  # a killed ris_generate: shards, no manifest
    (killed / 'train' / '0').mkdir(parents=True)
    (killed / 'train' / '0' / 'y.npy').write_bytes(b'x' * 10)
    before = snapshot(killed)
    for d in (killed, tmp_path / 'typo'):
        with pytest.raises(DataError, match='is not a dataset'):
            check_eval_params(ckpt='', data_dir=str(d))
        with pytest.raises(DataError, match='ris_generate'):
            run_job(ckpt='', data_dir=str(d), out_dir=str(tmp_path / 'eval'))
    assert snapshot(killed) == before and not (tmp_path / 'typo').exists() and not (tmp_path / 'eval').exists()


# --- #17: every parameter checked up front --------------------------------------------------------------------------

@pytest.mark.parametrize('given, want', [('[0.5, 0.9]', [0.5, 0.9]), (0.5, [0.5]), ('0.5', [0.5]),
                                         ([0.5, 1.01], [0.5, 1.01]), ((0.3, 0.9), [0.3, 0.9])])
def test_thresholds_in_the_forms_papermill_gives(given, want):
    assert check_eval_params(ckpt='', thresholds=given)['thresholds'] == want


def test_betas_and_flags_in_the_forms_papermill_gives():
    p = check_eval_params(ckpt='', betas='[0.25, 1]', train_if_missing='False', n_test=0.5, n_val=8)
    assert (p['betas'], p['train_if_missing'], p['n_test'], p['n_val']) == ([0.25, 1], False, 0.5, 8)


@pytest.mark.parametrize('bad, name', [
    (dict(thresholds=[]), 'thresholds'), (dict(thresholds='[0.5, 0.9'), 'thresholds'),
    (dict(thresholds=[-0.1]), 'thresholds'), (dict(thresholds=[0.5, 0.5]), 'thresholds'),
    (dict(thresholds=[float('nan')]), 'thresholds'), (dict(thresholds='high'), 'thresholds'),
    (dict(betas=[1.5]), 'betas'), (dict(betas=[-0.5]), 'betas'), (dict(betas=None), 'betas'),
    (dict(n_test=1.5), 'n_test'), (dict(n_val=-1), 'n_val'), (dict(n_test=True), 'n_test'),
    (dict(n_val='all'), 'n_val'),
    (dict(batch_size=0), 'batch_size'), (dict(batch_size=2.5), 'batch_size'), (dict(crb_scenes=-1), 'crb_scenes'),
    (dict(device='gpu'), 'device'), (dict(device=0), 'device'), (dict(train_if_missing='maybe'), 'train_if_missing'),
    (dict(out_dir=''), 'out_dir'), (dict(ckpt=None), 'ckpt')])
def test_bad_parameter_is_one_error_naming_it(bad, name):
    with pytest.raises(ValueError) as e:
        check_eval_params(**{'ckpt': '', **bad})
    msg = str(e.value)
    assert msg.startswith(name) and repr(next(iter(bad.values()))) in msg and '\n' not in msg


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / 'f').write_text('x')
    with pytest.raises(ValueError, match='out_dir must be a folder'):
        check_eval_params(ckpt='', out_dir=str(tmp_path / 'f'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a GPU')
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ValueError, match="device 'cuda'.*no such CUDA device"):
        check_eval_params(ckpt='', device='cuda')


def test_sweep_and_run_methods_check_their_inputs(run_dir, tiny_dataset):
    from ris_music.model import load_model
    model = load_model(run_dir / 'best.pt')
    val, test = ShardDataset(tiny_dataset, 'val'), ShardDataset(tiny_dataset, 'test')
    with pytest.raises(ValueError, match='thresholds must be a non-empty list of distinct'):
        sweep(model, val, 4, thresholds=[0.5, 0.5], betas=[0.5])
    with pytest.raises(ValueError, match='betas must be'):
        sweep(model, val, 4, thresholds=0.5, betas=[2.0])
    with pytest.raises(ValueError, match=r'n must be a number of scenes in 1\.\.20'):
        run_methods(test, 21)
    with pytest.raises(ValueError, match="'hybrid' needs a trained model"):
        run_methods(test, 4, methods=['hybrid'])
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        run_methods(test, 4, methods='magic')


# --- the record: counts, thresholds and blends are part of it -------------------------------------------------------

def test_earlier_results_of_other_settings_are_kept_aside_with_what_differs(tiny_dataset, tmp_path, capsys):
    s = dict(n_val=20, n_test=20, crb_scenes=20, thresholds=[0.5, 0.9], betas=[0.5])
    (tmp_path / 'results.json').write_text(json.dumps(provenance('m.pt', tiny_dataset, s)))
    assert keep_earlier_results(tmp_path, provenance('m.pt', tiny_dataset, dict(s))) == []
    for change in (dict(n_test=8), dict(thresholds=[0.5]), dict(betas=[0.5, 1.0]), dict(n_val=4)):
        (tmp_path / 'results.json').write_text(json.dumps(provenance('m.pt', tiny_dataset, s)))
        assert keep_earlier_results(tmp_path, provenance('m.pt', tiny_dataset, {**s, **change})) == ['results.json']
        key, val = next(iter(change.items()))
        assert f'{key} {s[key]!r} -> {val!r}' in capsys.readouterr().out


def test_job_records_its_settings_and_a_rerun_with_fewer_scenes_keeps_the_first_aside(run_dir, tiny_dataset,
                                                                                       tmp_path, capsys):
    out = tmp_path / 'eval'
    kw = dict(ckpt=str(run_dir / 'best.pt'), data_dir=str(tiny_dataset), out_dir=str(out), thresholds='[0.5, 1.01]',
              betas=0.5, n_test=8, batch_size=8)
    run_job(**kw)
    rec = json.loads((out / 'results.json').read_text())
    assert rec['settings'] == dict(n_val=20, n_test=8, crb_scenes=8, thresholds=[0.5, 1.01], betas=[0.5])
    assert {(r['K_CONF_THRESH'], r['beta']) for r in rec['sweep']} == {(0.5, 0.5), (1.01, 0.5)}
    capsys.readouterr()
    run_job(**{**kw, 'n_test': 4, 'n_val': 8})
    said = capsys.readouterr().out
    assert 'n_test 8 -> 4' in said and 'n_val 20 -> 8' in said
    assert len(list(out.glob('results.json.stale-*'))) == 1
    assert json.loads((out / 'results.json').read_text())['n_test'] == 4


# --- the registry ---------------------------------------------------------------------------------------------------

def test_method_style_is_a_plain_dict_kept_in_step():
    assert type(METHOD_STYLE) is dict and json.loads(json.dumps(METHOD_STYLE))['hybrid'][0] == 'learned hybrid'
    try:
        register('toy', 'a toy', '#7f7f7f', 'star')
        assert METHOD_STYLE['toy'] == ('a toy', '#7f7f7f', 'star')
        METHODS.pop('toy')
        assert 'toy' not in METHOD_STYLE
        register('toy', 'a toy', '#7f7f7f', 'star')
        del METHODS['toy']
        assert 'toy' not in METHOD_STYLE and list(METHOD_STYLE) == list(METHODS)
    finally:
        METHODS.pop('toy', None)


def test_classical_is_a_deprecated_alias_read_at_access():
    try:
        register('toy', 'a toy', '#7f7f7f', 'star', run=lambda *a: None)
        with pytest.warns(DeprecationWarning, match=r'default_methods\(False\)'):
            classical = ev.CLASSICAL
        assert classical == default_methods(False) and 'toy' in classical
    finally:
        METHODS.pop('toy', None)
    assert 'CLASSICAL' not in ev.__all__
