"A training process killed with SIGKILL mid-epoch resumes from its last checkpoint to the same weights and log."

import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from ris_music import load_preset, generate_dataset

SCRIPT = """
import sys, json
from ris_music.train import Trainer
t = Trainer(sys.argv[1], sys.argv[2], params=dict(batch_size=16, D_MODEL=32, NUM_HEADS=2, n_layers=1), progress=False)
print(json.dumps(t.fit(3)))
"""


def train(data, out):
    return subprocess.Popen(
        [sys.executable, '-c', SCRIPT, str(data), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )


def test_sigkill_then_resume(tmp_path):
    data = tmp_path / 'd'
    generate_dataset(load_preset('tiny'), data, 320, 32, 0, shard_size=160, workers=1, seed=0, progress=False)
    ref = train(data, tmp_path / 'a')
    best_ref = json.loads(ref.communicate(timeout=600)[0])
    p = train(data, tmp_path / 'b')
    log = tmp_path / 'b' / 'log.jsonl'
    t0 = time.time()
    while not (log.exists() and len(log.read_text().splitlines()) >= 1):
        assert p.poll() is None and time.time() - t0 < 300, 'training ended before its first checkpoint'
        time.sleep(0.05)
    time.sleep(0.5)  # well into the second epoch
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert len(log.read_text().splitlines()) < 3
    q = train(data, tmp_path / 'b')
    best = json.loads(q.communicate(timeout=600)[0])
    assert best == best_ref
    a = torch.load(tmp_path / 'a' / 'last.pt', weights_only=False)
    b = torch.load(tmp_path / 'b' / 'last.pt', weights_only=False)
    assert all(torch.equal(a['model'][k], b['model'][k]) for k in a['model'])
    timing = ('seconds', 'samples_per_s')
    strip = lambda f: [{k: v for k, v in json.loads(l).items() if k not in timing} for l in open(f)]
    assert strip(tmp_path / 'a' / 'log.jsonl') == strip(tmp_path / 'b' / 'log.jsonl')
