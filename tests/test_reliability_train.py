"Issue 21, training and HPO (#2 notebooks, #5, #6, #7, #14): runs that mix, parameters that vanish, one-line errors."

import json, re, warnings
from pathlib import Path
import pytest, torch

KW = dict(params=dict(batch_size=16, D_MODEL=32, NUM_HEADS=2, n_layers=1), progress=False)


def cli(capsys, main, *argv):
    "Run a command line in-process: (exit status, stdout, stderr)."
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err, prog, msg):
    "stderr is one line `prog: ...` holding msg (warnings apart), no traceback."
    lines = [l for l in err.strip().splitlines() if not l.startswith(f'{prog}: warning:')]
    assert len(lines) == 1 and lines[0].startswith(f'{prog}: ') and msg in lines[0] and 'Traceback' not in err, err
    return lines[0]


def notebook_cell(nb, test):
    "The source of the first code cell of notebook `nb` (in nbs/) for which test(source) holds."
    cells = json.loads((Path(__file__).parents[1] / 'nbs' / nb).read_text())['cells']
    return next(''.join(c['source']) for c in cells if c['cell_type'] == 'code' and test(''.join(c['source'])))


def parameters(nb):
    "The notebook's parameters cell, run: its defaults."
    cells = json.loads((Path(__file__).parents[1] / 'nbs' / nb).read_text())['cells']
    src = next(''.join(c['source']) for c in cells if 'parameters' in c['metadata'].get('tags', []))
    ns = {}
    exec(src, ns)
    return {k: v for k, v in ns.items() if not k.startswith('__')}


# 5: a resume with other counts or another seed sets the earlier run aside, before any work, naming what differs

def crash_after(n):
    def cb(trainer, rec):
        if rec['epoch'] == n: raise KeyboardInterrupt('simulated crash')
    return cb


@pytest.mark.parametrize('change, says', [(dict(n_val=12), 'n_val 8, now 12'), (dict(seed=1), 'seed 0, now 1')])
def test_resume_with_other_counts_or_seed_starts_afresh(tiny_dataset, tmp_path, change, says):
    from ris_music.train import Trainer
    out = tmp_path / 'o'
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_dataset, out, n_val=8, **KW).fit(2, callbacks=[crash_after(1)])
    assert torch.load(out / 'last.pt', weights_only=False)['run'] == dict(n_train=60, n_val=8, seed=0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        tr = Trainer(tiny_dataset, out, **dict(dict(n_val=8, seed=0), **change), **KW)
        assert tr.resume(2)['epoch'] == 0                                   # said before any work: a fresh run
    msg = [str(x.message) for x in w if 'another run' in str(x.message)]
    assert msg and says in msg[0] and 'training from scratch' in msg[0], [str(x.message) for x in w]
    assert list(out.glob('log.jsonl.stale-*')) and list(out.glob('best.pt.stale-*')) and not (out / 'last.pt').exists()


def test_resume_of_the_same_run_and_of_an_older_checkpoint(tiny_dataset, tmp_path):
    "The same counts and seed resume; a last.pt from before issue 21 (no 'run' record) resumes as before."
    from ris_music.train import Trainer
    from ris_music.model import save_checkpoint
    out = tmp_path / 'o'
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_dataset, out, n_val=8, **KW).fit(2, callbacks=[crash_after(1)])
    assert Trainer(tiny_dataset, out, n_val=8, **KW).resume(2)['epoch'] == 1
    ck = torch.load(out / 'last.pt', weights_only=False)
    del ck['run']
    save_checkpoint(out / 'last.pt', ck)
    assert Trainer(tiny_dataset, out, n_val=8, **KW).resume(2)['epoch'] == 1


# 6: the notebook's parameters override best.json only where set; a key the dataset fixes is an error

def test_notebook_parameters_keep_the_hpo_batch_size(tmp_path):
    from ris_music.train import _job_params
    best = tmp_path / 'best.json'
    best.write_text(json.dumps(dict(params=dict(batch_size=80, lr=1e-3, dropout=0.3), value=-0.1)))
    p = parameters('05_train.ipynb')
    got = _job_params(best, **{k: p[k] for k in ('batch_size', 'lr', 'VAL_PRIMARY')})
    assert got == dict(batch_size=80, lr=1e-3, dropout=0.3)                 # the notebook's defaults keep them all
    assert _job_params(best, batch_size=32, lr=0.0, VAL_PRIMARY='loss') == dict(batch_size=32, lr=1e-3, dropout=0.3,
                                                                                VAL_PRIMARY='loss')
    job = notebook_cell('05_train.ipynb', lambda s: 'require_dataset(data_dir)' in s)
    assert '_job_params(params_json, batch_size=batch_size, lr=lr, VAL_PRIMARY=VAL_PRIMARY)' in job


def test_params_a_dataset_fixes_are_refused(tiny_dataset, tmp_path, capsys):
    from ris_music.train import train_cli
    code, out, err = cli(capsys, train_cli, '--data-dir', tiny_dataset, '--out-dir', tmp_path / 'o', '--quiet',
                         '--params', '{"n_train": 16}')
    assert code == 1 and not (tmp_path / 'o').exists()
    one_line(err, "ris_train", "params: n_train=16 is not a training parameter (the dataset in")
    assert "ris_train --n-train" in err


# 7: counts and fractions, patience, strict JSON

def test_counts_that_are_not_counts_are_refused(tiny_dataset, tmp_path, capsys):
    from ris_music.train import train_cli
    from ris_music.hpo import hpo_cli
    code, out, err = cli(capsys, train_cli, '--data-dir', tiny_dataset, '--out-dir', tmp_path / 't', '--quiet',
                         '--n-train', '1.5', '--n-val', '2.5')
    assert code == 1 and not (tmp_path / 't').exists()
    one_line(err, 'ris_train', 'got 1.5')
    code, out, err = cli(capsys, hpo_cli, '--data-dir', tiny_dataset, '--out-dir', tmp_path / 'h',
                         '--train-frac', '2.0', '--val-frac', '2.0', '--trials', '1')
    assert code == 1 and not (tmp_path / 'h').exists()
    one_line(err, 'ris_hpo', 'got 2.0')


def test_hpo_fractions_and_counts_parse(tmp_path):
    from ris_music.hpo import _hpo_parser
    parse = lambda *a: vars(_hpo_parser().parse_args(['--data-dir', 'd', '--out-dir', 'o', *a]))
    a = parse('--train-frac', '500', '--val-frac', '1.0')
    assert (a['train_frac'], type(a['train_frac']), a['val_frac'], type(a['val_frac'])) == (500, int, 1.0, float)


def test_patience_below_one_is_refused(tiny_dataset, tmp_path, capsys):
    from ris_music.train import Trainer, train_cli
    code, out, err = cli(capsys, train_cli, '--data-dir', tiny_dataset, '--out-dir', tmp_path / 'o', '--quiet',
                         '--patience', '-1')
    assert code == 1 and out == '' and not (tmp_path / 'o').exists()
    one_line(err, 'ris_train', '--patience must be >= 1, got -1')
    tr = Trainer(tiny_dataset, tmp_path / 'p', **KW)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"fit: patience must be an int >= 1 .*got {bad}"):
            tr.fit(1, patience=bad)
    assert not (tmp_path / 'p' / 'log.jsonl').exists()


def test_no_finite_result_is_an_error_not_json_infinity(tmp_path, capsys, monkeypatch):
    import ris_music.train as train

    class NoResult:
        rank, world = 0, 1
        def __init__(self, **kw): pass
        def fit(self, **kw): return float('inf')

    ap = train._train_parser()                                               # the real options, then no result
    monkeypatch.setattr(train, '_train_parser', lambda: ap)
    monkeypatch.setattr(train, 'Trainer', NoResult)
    code, out, err = cli(capsys, train.train_cli, '--data-dir', 'd', '--out-dir', tmp_path / 'o', '--quiet')
    assert code == 1 and 'Infinity' not in out
    one_line(err, 'ris_train', 'no epoch ended with a finite objective')


# 14: every failure of ris_hpo / ris_train is one line and exit 1, and nothing is created first

def test_hpo_cli_errors_are_one_line_before_any_work(tiny_dataset, tmp_path, capsys):
    from ris_music.hpo import hpo_cli
    afile = tmp_path / 'afile'
    afile.write_text('')
    cases = [(['--data-dir', tmp_path / 'nowhere'], str(tmp_path / 'nowhere')),
             (['--space', 'Wide'], "unknown search space 'Wide'; available: ['wide', 'narrow']"),
             (['--early-stop-patience', '0'], 'run_hpo: early_stop_patience must be an int >= 1, got 0'),
             (['--stale-after', '0'], 'run_hpo: stale_after must be a number of seconds > 0, got 0.0')]
    for k, (extra, msg) in enumerate(cases):
        out = tmp_path / f'h{k}'
        args = ['--data-dir', tiny_dataset, '--out-dir', out, '--trials', '1', '--epochs', '1', *extra]
        code, _, err = cli(capsys, hpo_cli, *args)
        assert code == 1 and not out.exists(), (extra, err)
        one_line(err, 'ris_hpo', msg)
    code, _, err = cli(capsys, hpo_cli, '--data-dir', tiny_dataset, '--out-dir', afile, '--trials', '0')
    assert code == 1 and afile.read_text() == ''
    one_line(err, 'ris_hpo', f'out_dir {afile} is a file')


def test_train_cli_errors_are_one_line_before_any_work(tiny_dataset, tmp_path, capsys):
    from ris_music.train import train_cli
    lst, null = tmp_path / 'list.json', tmp_path / 'null.json'
    lst.write_text('[{"lr": 0.001}]')
    null.write_text('{"params": null}')
    cases = [(['--device', 'gpu'], "device 'gpu' is not a device: use cpu, cuda, cuda:N or auto"),
             (['--params-json', lst], f'params file {lst}: it must be a JSON object of config fields'),
             (['--params-json', null], f"params file {null}: its 'params' must be a JSON object"),
             (['--seed', '-1'], 'Trainer: seed must be an int >= 0, got -1')]
    if not torch.cuda.is_available():
        cases.append((['--device', 'cuda'], "device 'cuda': "))
    for k, (extra, msg) in enumerate(cases):
        out = tmp_path / f'o{k}'
        code, _, err = cli(capsys, train_cli, '--data-dir', tiny_dataset, '--out-dir', out, '--quiet', *extra)
        assert code == 1 and not out.exists(), (extra, err)
        one_line(err, 'ris_train', msg)


# 2 (notebook part): a data_dir without a dataset is an error before work; nothing is generated or deleted

@pytest.mark.parametrize('nb, module', [('05_train.ipynb', 'ris_music.train'), ('06_hpo.ipynb', 'ris_music.hpo')])
def test_notebook_job_never_generates_data(tmp_path, nb, module):
    import importlib
    from ris_music.data import DataError, require_dataset
    job = notebook_cell(nb, lambda s: 'require_dataset(data_dir)' in s)
    assert 'generate_dataset(' not in job
    assert parameters(nb)['data_dir'] == ''                                   # '': the notebooks' demo dataset
    killed = tmp_path / 'killed'                                             # shards of a ris_generate that died
    (killed / 'train' / '0').mkdir(parents=True)
    (killed / 'train' / '0' / 'y.npy').write_bytes(b'finished shard')
    for data_dir in (tmp_path / 'typo', killed):
        ns = dict(vars(importlib.import_module(module)), require_dataset=require_dataset,
                  **dict(parameters(nb), data_dir=str(data_dir), out_dir=str(tmp_path / 'out')))
        with pytest.raises(DataError, match=re.escape(f"data_dir '{data_dir}' is not a dataset")):
            exec(job, ns)
        assert not (tmp_path / 'out').exists()
    assert not (tmp_path / 'typo').exists() and (killed / 'train' / '0' / 'y.npy').read_bytes() == b'finished shard'
    assert sorted(p.relative_to(killed).as_posix() for p in killed.rglob('*')) == ['train', 'train/0', 'train/0/y.npy']


def test_resumed_study_with_other_trial_settings_is_refused(tiny_dataset, tmp_path):
    "#5's class for the HPO: a study resumed with other subsets, epochs or seed would compare unlike scores."
    from ris_music.hpo import run_hpo
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        run_hpo(tiny_dataset, tmp_path / 'h', trials=0, epochs=1, train_frac=0.5, progress=False)
        run_hpo(tiny_dataset, tmp_path / 'h', trials=0, epochs=1, train_frac=0.5, progress=False)   # the same: fine
        for change, says in ((dict(train_frac=1.0), 'n_train 30, now 60'), (dict(epochs=2), 'epochs 1, now 2'),
                             (dict(seed=1), 'seed 0, now 1')):
            args = dict(dict(trials=0, epochs=1, train_frac=0.5, progress=False), **change)
            with pytest.raises(ValueError, match=f"was run with other trial settings \\({says}\\)"):
                run_hpo(tiny_dataset, tmp_path / 'h', **args)
