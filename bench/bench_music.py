"""MUSIC benchmark: scenes/s for a batch (RAP-MUSIC: grid + peaks + Newton per source, K known; and the single-pass
search), peak memory, achieved GFLOP/s of the grid stage, and the ratio against a naive reference (per-scene loop,
noise-subspace form, steering recomputed).
Usage: python bench/bench_music.py [--preset seed] [--batch 64] [--naive 4]"""

import argparse, time
import torch
from common import emit, peak_rss_mb
from ris_music import load_preset, make_codebook, simulate, build_effective_cov, cov_kwargs
from ris_music.data import complete_batch
from ris_music.core import SearchGrid, steering
from ris_music.music import music_localize, music_grid, music_spectrum
from ris_music.covariance import signal_subspace


def naive_spectrum(cfg, R, K):
    "The reference: a per-scene loop over the noise-subspace form 1/||E_n^H a||^2, steering recomputed per scene."
    grid = SearchGrid.music(cfg)
    out = []
    for b in range(R.shape[0]):
        En = torch.linalg.eigh(R[b])[1][:, : R.shape[-1] - int(K[b])]
        A = steering(cfg, grid.points[:, 0], grid.points[:, 1], 1 / grid.points[:, 2])  # recomputed for every scene
        out.append(1 / (A.conj() @ En).abs().pow(2).sum(-1).clamp_min(1e-12))
    return torch.stack(out).view(-1, *grid.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--preset', default='seed')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--naive', type=int, default=4, help='scenes timed with the naive reference')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--out', default='bench/out/music.json')
    a = ap.parse_args()
    cfg = load_preset(a.preset)
    cb = make_codebook(cfg)
    sm = complete_batch(cfg, simulate(cfg, a.batch, torch.Generator().manual_seed(0), cb), cb, rsamp=True)
    R = build_effective_cov(None, sm['R_samp'], **cov_kwargs(cfg, 'music'))
    K = sm['K'].long()
    t = time.perf_counter()
    music_grid(cfg)
    t_dict = time.perf_counter() - t  # one-off, cached
    music_localize(cfg, R[:2], K[:2])  # warm-up
    times = []
    for _ in range(a.reps):
        t = time.perf_counter()
        music_localize(cfg, R, K)
        times.append(time.perf_counter() - t)
    t_full = min(times)
    t = time.perf_counter()
    music_localize(cfg, R, K, rap=False)
    t_single = time.perf_counter() - t
    peak_mb = peak_rss_mb()  # before the naive reference runs
    Es, _ = signal_subspace(R, K, cfg.K_max)
    t = time.perf_counter()
    music_spectrum(cfg, Es)
    t_grid = time.perf_counter() - t
    G = cfg.phi_grid * cfg.theta_grid * cfg.range_grid
    flops = 8.0 * G * cfg.N * a.batch * cfg.K_max  # complex MAC = 8 real flops
    t = time.perf_counter()
    naive_spectrum(cfg, R[: a.naive], K[: a.naive])
    t_naive = (time.perf_counter() - t) / a.naive
    t = time.perf_counter()
    music_localize(cfg, R[: a.naive], K[: a.naive], newton_iter=0, rap=False)
    t_ours_grid_small = (time.perf_counter() - t) / a.naive
    res = dict(
        bench='music',
        preset=a.preset,
        batch=a.batch,
        N=cfg.N,
        grid=[cfg.phi_grid, cfg.theta_grid, cfg.range_grid],
        grid_points=G,
        newton_iter=cfg.newton_iter,
        K_max=cfg.K_max,
        scenes_per_s=round(a.batch / t_full, 1),
        single_pass_scenes_per_s=round(a.batch / t_single, 1),
        seconds_per_batch=round(t_full, 3),
        grid_stage_s=round(t_grid, 3),
        grid_gflops=round(flops / t_grid / 1e9, 1),
        dictionary_build_s=round(t_dict, 2),
        dictionary_mb=round(G * cfg.N * 8 / 2**20, 1),
        peak_rss_mb=round(peak_mb),
        naive_s_per_scene=round(t_naive, 3),
        naive_scenes_per_s=round(1 / t_naive, 2),
        speedup_vs_naive=round(t_naive / (t_full / a.batch), 1),
        speedup_vs_naive_small_batch_no_newton=round(t_naive / t_ours_grid_small, 1),
    )
    emit(res, a.out)


if __name__ == '__main__':
    main()
