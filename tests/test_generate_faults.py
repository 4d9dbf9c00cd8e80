"Dataset folders: one writer at a time, no silent replacement of another dataset, and kill -9 during generation."

import json, signal, subprocess, time
from conftest import BIN


def cmd(out, seed=1, n_train=160, *extra):
    return [str(BIN / 'ris_generate'), '--preset', 'tiny', '--out', str(out), '--n-train', str(n_train),
            '--n-val', '20', '--n-test', '20', '--shard-size', '20', '--workers', '1', '--seed', str(seed), *extra]


def snapshot(d):
    "Every file under d with its bytes (the lock file aside)."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file() and p.name != '.lock'}


def wait_for_shard(d, p, n=1):
    t0 = time.time()
    while len(list(d.glob('train/0*/shard.json'))) < n:
        assert p.poll() is None and time.time() - t0 < 120, 'generation ended before its first shard'
        time.sleep(0.02)


def test_concurrent_generate_is_refused(tmp_path):
    d = tmp_path / 'd'
    p = subprocess.Popen(cmd(d, 1, 20000), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)   # ~10 s
    wait_for_shard(d, p)
    q = subprocess.run(cmd(d, 2), capture_output=True, text=True)      # another seed into the same folder, meanwhile
    assert q.returncode != 0 and f'{d} is in use (ris_generate: pid {p.pid}' in q.stderr, q.stderr
    assert p.wait(timeout=300) == 0, p.stderr.read()
    v = subprocess.run([str(BIN / 'ris_verify'), str(d)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert json.loads((d / 'manifest.json').read_text())['seed'] == 1


def test_other_dataset_is_not_replaced(tmp_path):
    d = tmp_path / 'd'
    assert subprocess.run(cmd(d, 1, 40), capture_output=True).returncode == 0
    before = snapshot(d)
    for args, what in ((cmd(d, 2, 40), 'seed 1 -> 2'), (cmd(d, 1, 20), 'n_train 40 -> 20'),
                       (cmd(d, 1, 40)[:1] + ['--preset', 'seed'] + cmd(d, 1, 40)[3:], "preset 'tiny'")):
        q = subprocess.run(args, capture_output=True, text=True)
        assert q.returncode != 0 and f'{d} holds another dataset' in q.stderr and what in q.stderr, q.stderr
        assert '--overwrite' in q.stderr
        assert snapshot(d) == before                                     # nothing on disk changed
    q = subprocess.run(cmd(d, 1, 20, '--overwrite'), capture_output=True, text=True)
    assert q.returncode == 0, q.stderr
    assert json.loads((d / 'manifest.json').read_text())['counts']['train'] == 20


def test_sigkill_during_generation_then_rerun(tmp_path):
    ref, d = tmp_path / 'ref', tmp_path / 'd'
    assert subprocess.run(cmd(ref, 3, 200), capture_output=True).returncode == 0
    p = subprocess.Popen(cmd(d, 3, 200), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_shard(d, p, 2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (d / 'manifest.json').exists()                           # killed before the end
    q = subprocess.run(cmd(d, 3, 200), capture_output=True, text=True)  # the rerun takes the lock the dead run held
    assert q.returncode == 0, q.stderr
    assert 0 < json.loads(q.stdout.strip().splitlines()[-1])['generated']['shards'] < 12   # kept the finished shards
    strip = lambda m: {k: v for k, v in m.items() if k != 'generated'}
    load = lambda x: json.loads((x / 'manifest.json').read_text())
    assert strip(load(d)) == strip(load(ref))                            # same shards and checksums as if never killed
    assert not [x for x in d.rglob('*') if x.name.startswith('.') and x.name != '.lock']   # no temporary folder left


def test_no_overwrite_while_the_data_are_read(tmp_path):
    "A training run holds its data folder as read: ris_generate --overwrite into it waits its turn (refused)."
    from ris_music.core import dir_lock
    d = tmp_path / 'd'
    assert subprocess.run(cmd(d, 1, 40), capture_output=True).returncode == 0
    before = snapshot(d)
    with dir_lock(d, 'training', shared=True):
        q = subprocess.run(cmd(d, 2, 40, '--overwrite'), capture_output=True, text=True)
    assert q.returncode != 0 and f'{d} is in use (being read' in q.stderr, q.stderr
    assert snapshot(d) == before
