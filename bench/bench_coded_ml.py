"""Coded-ML benchmark: scenes/s of `coded_ml_localize` (criterion K) on simulated scenes for the tiny and seed presets,
batched, with peak memory, the time per stage (detection grid, detection, refinement, RELAX, order), and the ratio to
MUSIC's scenes/s on the same scenes (R_samp, true K, RAP-MUSIC), and the scenes/s of the posterior-mean range step
(`range_posterior`, the hybrid's last step) on coded-ML's output.
Usage: python bench/bench_coded_ml.py [--presets tiny seed] [--n 256] [--batch 128]"""

import time
import torch
from common import emit, peak_rss_mb, command_line
from ris_music import load_preset, make_codebook, simulate, build_effective_cov, cov_kwargs, metrics, cat_batches
from ris_music.data import complete_batch
from ris_music.music import music_localize
from ris_music.coded_ml import coded_ml_localize, range_posterior


def run(preset, n, batch):
    "Throughput, stage times and accuracy of coded-ML and MUSIC on n scenes of a preset."
    cfg = load_preset(preset)
    cb = make_codebook(cfg)
    sc = complete_batch(cfg, simulate(cfg, n, torch.Generator().manual_seed(123), cb), cb)
    codes = sc['codes']
    coded_ml_localize(cfg, sc['y'][:4], sc['H'][:4], codes[:4], sc['noise_var'][:4])  # warm-up (grid cache)
    timers, outs = {}, []
    t = time.perf_counter()
    for i in range(0, n, batch):
        s = slice(i, i + batch)
        outs.append(coded_ml_localize(cfg, sc['y'][s], sc['H'][s], codes[s], sc['noise_var'][s], timers=timers))
    dt = time.perf_counter() - t
    est = cat_batches(outs)
    m = metrics(cfg, est, sc)
    t = time.perf_counter()
    for i, o in zip(range(0, n, batch), outs):
        s = slice(i, i + batch)
        range_posterior(cfg, sc['y'][s], sc['H'][s], codes[s], sc['noise_var'][s], o, o['K'])
    dt_post = time.perf_counter() - t
    R = build_effective_cov(None, complete_batch(cfg, sc, cb, rsamp=True)['R_samp'], **cov_kwargs(cfg, 'music'))
    t = time.perf_counter()
    for i in range(0, n, batch):
        music_localize(cfg, R[i : i + batch], sc['K'][i : i + batch].long(), Kmax=cfg.K_max)
    dt_music = time.perf_counter() - t
    return dict(preset=preset, n=n, batch=batch, K_max=cfg.K_max, N=cfg.N, M=cfg.M, L=cfg.L,
                scenes_per_s=round(n / dt, 1), music_scenes_per_s=round(n / dt_music, 1),
                range_posterior_scenes_per_s=round(n / dt_post, 1),
                ratio_to_music=round(dt_music / dt, 2), seconds=round(dt, 2),
                share={k: round(v / dt, 3) for k, v in timers.items()}, peak_rss_mb=peak_rss_mb(),
                K_acc=round(m['K_acc'], 4), success=round(m['success'], 4))


def main(presets=('tiny', 'seed'),           # presets to run
         n:int=256,                           # scenes per preset
         batch:int=128,                       # scenes per call
         out:str='bench/out/coded_ml.json'):  # where the JSON goes
    "Coded-ML scenes/s, stage shares and accuracy against MUSIC's on the same scenes."
    emit(dict(bench='coded_ml', runs=[run(p, n, batch) for p in presets]), out)


if __name__ == '__main__':
    command_line(main)
