"HPO with shared storage: two concurrent workers, a worker killed mid-trial and resumed, PostgreSQL in CI."

import json, os, signal, subprocess, sys, time
from pathlib import Path
import optuna, pytest
from optuna.trial import TrialState
from conftest import BIN
from ris_music import load_preset, generate_dataset


@pytest.fixture(scope='module')
def hpo_data(tmp_path_factory):
    d = tmp_path_factory.mktemp('hpo') / 'data'
    generate_dataset(load_preset('tiny'), d, 96, 48, 0, shard_size=48, workers=1, seed=0, progress=False)
    return d


def worker(data, out, storage, trials, epochs=1, w=0, frac='1.0'):
    return subprocess.Popen(
        [
            str(BIN / 'ris_hpo'),
            '--data-dir',
            str(data),
            '--out-dir',
            str(out),
            '--storage',
            storage,
            '--trials',
            str(trials),
            '--epochs',
            str(epochs),
            '--space',
            'narrow',
            '--train-frac',
            frac,
            '--val-frac',
            '1.0',
            '--worker',
            str(w),
            '--study-name',
            'ci',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )


def summary(storage):
    st = optuna.load_study(study_name='ci', storage=storage)
    return st, {
        s.name: sum(t.state == s for t in st.trials) for s in TrialState if any(t.state == s for t in st.trials)
    }


def check_concurrent(hpo_data, out, storage, capsys):
    ps = [worker(hpo_data, out, storage, 6, w=i) for i in range(2)]
    for p in ps:
        o, e = p.communicate(timeout=900)
        assert p.returncode == 0, e[-2000:]
    st, states = summary(
        storage
        if not storage.endswith('.log')
        else optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    )
    pids = {t.user_attrs.get('pid') for t in st.trials}
    with capsys.disabled():
        print(
            f'\n[HPO] 2 concurrent workers on {storage.split(":")[0]}: {len(st.trials)} trials, states {states}, '
            f'worker pids {sorted(pids)}'
        )
    assert len(pids) == 2  # both workers ran trials
    assert sorted(t.number for t in st.trials) == list(range(len(st.trials)))
    done = [t for t in st.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 6 <= len(done) <= 7 and states.get('RUNNING', 0) == 0  # at most one extra, started by the other worker
    assert len({json.dumps(t.params, sort_keys=True) for t in done}) == len(done)
    assert json.loads((out / 'best.json').read_text())['n_trials'] == len(st.trials)


def test_two_workers_journal(hpo_data, tmp_path, capsys):
    check_concurrent(hpo_data, tmp_path, str(tmp_path / 'study.log'), capsys)


@pytest.mark.skipif(not os.environ.get('RIS_PG_URL'), reason='no PostgreSQL (set RIS_PG_URL; .ci/run starts one)')
def test_two_workers_postgres(hpo_data, tmp_path, capsys):
    url = os.environ['RIS_PG_URL']
    try:
        optuna.delete_study(study_name='ci', storage=url)
    except KeyError:
        pass
    check_concurrent(hpo_data, tmp_path, url, capsys)


def test_killed_mid_trial_resumes(hpo_data, tmp_path, capsys):
    storage = str(tmp_path / 'study.log')
    js = lambda: optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    p = worker(hpo_data, tmp_path, storage, 3, epochs=4)
    t0 = time.time()
    while True:  # wait for a trial that has finished an epoch, then kill its worker
        assert p.poll() is None and time.time() - t0 < 600, 'the study ended before it could be killed'
        try:
            run = [
                t
                for t in optuna.load_study(study_name='ci', storage=js()).trials
                if t.state == TrialState.RUNNING and t.intermediate_values
            ]
        except KeyError:
            run = []
        if run:
            break
        time.sleep(0.2)
    killed = run[0].number
    p.send_signal(signal.SIGKILL)
    p.wait()
    st, before = summary(js())
    q = worker(hpo_data, tmp_path, storage, 3, epochs=4)
    o, e = q.communicate(timeout=900)
    assert q.returncode == 0, e[-2000:]
    st, after = summary(js())
    with capsys.disabled():
        print(f'\n[HPO] killed worker during trial {killed} (states then {before}); resumed: states {after}')
    t_k = st.trials[killed]
    assert t_k.state == TrialState.FAIL and t_k.user_attrs['failed_reason'] == 'worker gone'
    retry = [t for t in st.trials if t.user_attrs.get('retry_of') == killed]
    assert (
        len(retry) == 1 and retry[0].params == t_k.params and retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    )
    assert after.get('COMPLETE', 0) + after.get('PRUNED', 0) == 3 and 'RUNNING' not in after
    assert [t.state for t in st.trials if t.number < killed] == [TrialState.COMPLETE] * killed  # finished trials kept
