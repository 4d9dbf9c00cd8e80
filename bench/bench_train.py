"""Training benchmark: samples/s of a training step (forward + backward + AdamW) on CPU for the tiny and seed sizes,
in the first epoch (MUSIC candidates computed) and later ones (cached by the trainer),
and the share of step time spent in data loading, the network, the MUSIC candidates, the covariance builder,
eigendecompositions, the loss, backward and the optimiser.
Usage: python bench/bench_train.py [--presets tiny seed] [--steps 8] [--batch 64]"""
import argparse, json, os, platform, tempfile, time
from collections import defaultdict
from pathlib import Path
import numpy as np, torch
import ris_music.model as mm, ris_music.loss as ml, ris_music.covariance as mc
from ris_music.core import load_preset
from ris_music.data import generate_dataset, ShardDataset
from ris_music.train import Trainer, to_device
from ris_music.loss import loss_terms

T = defaultdict(float)
def timed(name, f):
    def g(*a, **k):
        t = time.perf_counter(); r = f(*a, **k); T[name] += time.perf_counter() - t; return r
    return g

def run(preset, steps, batch, tmp, cached):
    cfg = load_preset(preset)
    d = Path(tmp) / preset
    generate_dataset(cfg, d, batch * (steps + 2), batch, 0, shard_size=batch * 4, workers=2, seed=0, progress=False)
    tr = Trainer(d, Path(tmp) / f'out_{preset}', params=dict(batch_size=batch), progress=False)
    tr.sched = tr._schedule(1)
    ds, model, opt = tr.train_ds, tr.model, tr.opt
    idx = np.random.default_rng(0).permutation(len(ds))
    if cached:                                        # later epochs: the MUSIC candidates of every sample are cached
        for s in range(steps + 2): tr.with_candidates(ds.__getitems__(idx[s * batch:(s + 1) * batch]), 'train')
    T.clear(); n = 0
    for s in range(steps + 2):
        if s == 2: T.clear(); t_all = time.perf_counter()
        t = time.perf_counter(); b = to_device(ds.__getitems__(idx[s * batch:(s + 1) * batch]), tr.device); T['data'] += time.perf_counter() - t
        if cached: b = tr.with_candidates(b, 'train')
        t = time.perf_counter(); out = model(b); T['forward'] += time.perf_counter() - t
        t = time.perf_counter(); terms = loss_terms(cfg, out, b); T['loss'] += time.perf_counter() - t
        t = time.perf_counter(); opt.zero_grad(); terms['total'].backward(); T['backward'] += time.perf_counter() - t
        t = time.perf_counter(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); T['optimizer'] += time.perf_counter() - t
        if s >= 2: n += batch
    total = time.perf_counter() - t_all
    inner = {k: T[k] for k in ('candidates', 'cov_builder', 'eig')}
    share = {k: round(T[k] / total, 3) for k in ('data', 'forward', 'loss', 'backward', 'optimizer')}
    share['network (forward minus candidates, builder, eig)'] = round((T['forward'] - sum(inner.values())) / total, 3)
    share.update({f'{k} (inside forward/loss)': round(v / total, 3) for k, v in inner.items()})
    return dict(preset=preset, epoch='later (candidates cached)' if cached else 'first (candidates computed)', batch=batch, steps=steps, D_MODEL=cfg.D_MODEL, n_layers=cfg.n_layers, N=cfg.N,
                params_M=round(sum(p.numel() for p in model.parameters()) / 1e6, 2), samples_per_s=round(n / total, 1),
                step_s=round(total / steps, 3), share=share)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--presets', nargs='+', default=['tiny', 'seed']); ap.add_argument('--steps', type=int, default=8)
    ap.add_argument('--batch', type=int, default=64); ap.add_argument('--out', default='bench/out/train.json')
    a = ap.parse_args()
    mm.candidates = timed('candidates', mm.candidates)
    mm.build_effective_cov = timed('cov_builder', mm.build_effective_cov)
    ml.signal_projector = timed('eig', ml.signal_projector)
    torch.linalg.eigvalsh = timed('eig', torch.linalg.eigvalsh)
    with tempfile.TemporaryDirectory() as tmp:
        res = dict(bench='train', device='cpu', cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                   threads=torch.get_num_threads(), torch=torch.__version__, runs=[run(p, a.steps, a.batch, tmp, c) for p in a.presets for c in (False, True)])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res))

if __name__ == '__main__': main()
