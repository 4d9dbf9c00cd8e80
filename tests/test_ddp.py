"DDP on CPU: 2 gloo processes under torchrun train like one process with the same global batch; a killed rank resumes."

import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from ris_music import load_preset, generate_dataset
from conftest import BIN

PARAMS = json.dumps(dict(batch_size=16, D_MODEL=32, NUM_HEADS=2, n_layers=1, dropout=0.0))
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def train(data, out, nproc, epochs=2, *extra, popen=False):
    "ris_train on nproc processes (torchrun when nproc > 1)."
    args = [str(BIN / 'ris_train'), '--data-dir', str(data), '--out-dir', str(out), '--epochs', str(epochs),
            '--params', PARAMS, '--quiet', *extra]
    if nproc > 1:
        args = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', *args]
    if popen:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    p = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def weights(out):
    return torch.load(out / 'last.pt', weights_only=False)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('ddp') / 'data'
    generate_dataset(load_preset('tiny'), d, 768, 32, 0, shard_size=128, workers=1, seed=0, progress=False)
    return d


def children(pid):
    "The pids whose parent is pid (the ranks torchrun started)."
    out = []
    for p in Path('/proc').iterdir():
        if p.name.isdigit():
            try: stat = (p / 'stat').read_text()
            except OSError: continue
            if int(stat.rsplit(')', 1)[1].split()[1]) == pid: out.append(int(p.name))
    return out


def test_two_processes_match_one(data, tmp_path):
    one = train(data, tmp_path / 'one', 1)
    two = train(data, tmp_path / 'two', 2)
    assert two['world'] == 2 and one['world'] == 1
    a, b = weights(tmp_path / 'one'), weights(tmp_path / 'two')
    assert b['world'] == 2 and a['epoch'] == b['epoch'] == 2
    # float tolerance: the sums differ in order only. The attention's key bias is left out: softmax ignores it, so its
    # gradient is rounding noise that Adam's normalised steps turn into lr-sized random moves; the outputs show it.
    D = 32
    for k, v in a['model'].items():
        w, u = b['model'][k], v
        if k.endswith('self_attn.in_proj_bias'):
            w, u = torch.cat([w[:D], w[2 * D :]]), torch.cat([u[:D], u[2 * D :]])
        torch.testing.assert_close(w, u, rtol=1e-3, atol=5e-5, msg=lambda m: f'{k}: {m}')
    from ris_music import load_model, ShardDataset
    batch = ShardDataset(data, 'val', derived=('coded_ml',)).__getitems__(list(range(16)))
    with torch.no_grad():
        oa, ob = (load_model(tmp_path / x / 'last.pt')(batch) for x in ('one', 'two'))
    for k in ('k_logits', 'R_pred', 'phi', 'r'):
        torch.testing.assert_close(ob[k], oa[k], rtol=1e-3, atol=1e-4, msg=lambda m: f'output {k}: {m}')
    la, lb = ([json.loads(l) for l in open(tmp_path / x / 'log.jsonl')] for x in ('one', 'two'))
    for ra, rb in zip(la, lb):
        assert abs(ra['train']['total'] - rb['train']['total']) < 1e-4 * abs(ra['train']['total']) + 1e-6
        assert ra['val']['K_acc'] == rb['val']['K_acc'] and abs(ra['objective'] - rb['objective']) < 1e-4
    # resuming with another world size is an error unless asked to re-shard
    p = subprocess.run([str(BIN / 'ris_train'), '--data-dir', str(data), '--out-dir', str(tmp_path / 'two'),
                        '--epochs', '2', '--params', PARAMS, '--quiet'], capture_output=True, text=True, env=ENV)
    assert p.returncode != 0 and 'written by 2 process(es), this run has 1' in p.stderr, p.stderr[-1500:]
    assert weights(tmp_path / 'two')['epoch'] == 2                     # nothing changed


def test_killed_rank_resumes_exactly(data, tmp_path):
    ref = train(data, tmp_path / 'ref', 2)
    p = train(data, tmp_path / 'cut', 2, popen=True)
    log = tmp_path / 'cut' / 'log.jsonl'
    t0 = time.time()
    while not (log.exists() and log.read_text().count('\n') >= 1):
        assert p.poll() is None and time.time() - t0 < 300, 'ended before its first epoch: ' + p.stderr.read()[-2000:]
        time.sleep(0.02)
    time.sleep(0.4)                                                     # into the second epoch (about 2 s)
    ranks = children(p.pid)
    assert len(ranks) == 2, ranks
    os.kill(ranks[1], signal.SIGKILL)                                   # one rank dies; torchrun stops the other
    assert p.wait(timeout=120) != 0
    assert weights(tmp_path / 'cut')['epoch'] == 1                      # killed mid-epoch 2
    again = train(data, tmp_path / 'cut', 2)
    a, b = weights(tmp_path / 'ref'), weights(tmp_path / 'cut')
    for k, v in a['model'].items():
        torch.testing.assert_close(b['model'][k], v, rtol=0, atol=1e-6, msg=lambda m: f'{k}: {m}')
    strip = lambda r: {k: v for k, v in r.items() if k not in ('seconds', 'samples_per_s')}
    la, lb = ([strip(json.loads(l)) for l in open(tmp_path / x / 'log.jsonl')] for x in ('ref', 'cut'))
    assert la == lb and again['best_objective'] == ref['best_objective']
