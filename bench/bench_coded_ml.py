"""Coded-ML benchmark: scenes/s of `coded_ml_localize` (criterion K) on simulated scenes for the tiny and seed presets,
batched, with peak memory, the time per stage (detection grid, detection, refinement, RELAX, order), and the ratio to
MUSIC's scenes/s on the same scenes (R_samp, true K, RAP-MUSIC), and the scenes/s of the posterior-mean range step
(`range_posterior`, the hybrid's last step) on coded-ML's output; and a fixed deployment (one channel for every scene,
`deployment='fixed'`) run both ways on the same scenes: the per-scene channel path (H (B, M, N)) against the fixed
path (H (M, N), one grid dictionary per code), each in its own process (separate peak memory), with scenes/s, the
ratio, success and K_acc of each, and their agreement on the scenes both ran.
Usage: python bench/bench_coded_ml.py [--presets tiny seed] [--n 256] [--batch 128] [--fixed-presets seed large]
       [--fixed-n 64] [--scene-n 64 16]"""

import time
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
import torch
from common import emit, peak_rss_mb, command_line
from ris_music import load_preset, make_codebook, simulate, build_effective_cov, cov_kwargs, metrics, cat_batches
from ris_music.data import complete_batch, make_deployment
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


def fixed_scenes(preset, n):
    "n scenes of a preset in a fixed deployment (one channel, deployment seed 0), seed 321, with the config."
    cfg = load_preset(preset, deployment='fixed')
    cb = make_codebook(cfg)
    dep = make_deployment(cfg, cb, 0)
    return cfg, complete_batch(cfg, simulate(cfg, n, torch.Generator().manual_seed(321), cb, deployment=dep), cb,
                               deployment=dep)


def one_path(preset, n, n_all, fixed, batch):
    "In a fresh process: coded-ML on the first n of n_all fixed-deployment scenes, the fixed or the per-scene path."
    cfg, sc = fixed_scenes(preset, n_all)
    H = sc['H'][0] if fixed else sc['H']                                      # (M, N), or the (B, M, N) view
    Hs = lambda s: H if fixed else H[s]
    coded_ml_localize(cfg, sc['y'][:2], Hs(slice(0, 2)), sc['codes'][:2], sc['noise_var'][:2])   # warm-up
    timers, outs = {}, []
    t = time.perf_counter()
    for i in range(0, n, batch):
        s = slice(i, min(i + batch, n))
        outs.append(coded_ml_localize(cfg, sc['y'][s], Hs(s), sc['codes'][s], sc['noise_var'][s], timers=timers))
    dt = time.perf_counter() - t
    return dict(seconds=dt, share={k: round(v / dt, 3) for k, v in timers.items()}, peak_rss_mb=peak_rss_mb(),
                est={k: v.numpy() for k, v in cat_batches(outs).items() if k in ('phi', 'theta', 'r', 'mask', 'K')})


def run_fixed(preset, n, n_scene, batch):
    "The fixed path against the per-scene path on the same fixed-deployment scenes (n and n_scene of them)."
    with ProcessPoolExecutor(1, mp_context=mp.get_context('spawn'), max_tasks_per_child=1) as ex:  # a process per path
        res = {path: ex.submit(one_path, preset, k, max(n, n_scene), path == 'fixed', batch).result()
               for path, k in (('scene', n_scene), ('fixed', n))}
    cfg, sc = fixed_scenes(preset, max(n, n_scene))
    sub = lambda d, k: {f: v[:k] for f, v in d.items()}
    out = dict(preset=preset, N=cfg.N, M=cfg.M, L=cfg.L, batch=batch)
    for path, k in (('scene', n_scene), ('fixed', n)):
        r = res[path]
        m = metrics(cfg, r['est'], sub(sc, k))
        out[path] = dict(n=k, scenes_per_s=round(k / r['seconds'], 2), seconds=round(r['seconds'], 2),
                         peak_rss_mb=r['peak_rss_mb'], share=r['share'], K_acc=round(m['K_acc'], 4),
                         success=round(m['success'], 4))
    c = min(n, n_scene)                                                       # the scenes both paths ran
    ms, mf = (metrics(cfg, sub(res[p]['est'], c), sub(sc, c)) for p in ('scene', 'fixed'))
    out['speedup'] = round(out['fixed']['scenes_per_s'] / out['scene']['scenes_per_s'], 2)
    same = res['scene']['est']['K'][:c] == res['fixed']['est']['K'][:c]
    out['common'] = dict(n=c, K_same=round(float(same.mean()), 4),
                         success_scene=round(ms['success'], 4), success_fixed=round(mf['success'], 4),
                         K_acc_scene=round(ms['K_acc'], 4), K_acc_fixed=round(mf['K_acc'], 4))
    return out


def main(presets=('tiny', 'seed'),           # presets to run
         n:int=256,                           # scenes per preset
         batch:int=128,                       # scenes per call
         fixed_presets=('seed', 'large'),     # presets of the fixed-deployment comparison ('none': skip it)
         fixed_n:int=64,                      # scenes of the fixed path per preset
         scene_n=(64, 16),                    # scenes of the per-scene path, per fixed preset (the last repeats)
         out:str='bench/out/coded_ml.json'):  # where the JSON goes
    "Coded-ML scenes/s, stage shares and accuracy against MUSIC's on the same scenes; fixed deployment vs per scene."
    runs = [run(p, n, batch) for p in presets]
    scene_n = [int(k) for k in ((scene_n,) if isinstance(scene_n, (int, str)) else scene_n)]
    fixed_presets = [p for p in ((fixed_presets,) if isinstance(fixed_presets, str) else fixed_presets) if p != 'none']
    fixed = [run_fixed(p, fixed_n, scene_n[min(i, len(scene_n) - 1)], batch) for i, p in enumerate(fixed_presets)]
    emit(dict(bench='coded_ml', runs=runs, fixed_deployment=fixed), out)


if __name__ == '__main__':
    command_line(main)
