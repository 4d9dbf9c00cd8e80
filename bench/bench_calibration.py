"""Calibration benchmark: the model error coded-ML sees (`manifold_error`) and the calibrated success against the number
of labelled calibration scenes, on a fixed deployment's dataset (its train split calibrates, the first `n_eval`
validation scenes score; never the test split), next to the oracle (the true model, the same counting) and the genie
(perfect counting) on the same scenes, and the seconds each calibration took.
Usage: python bench/bench_calibration.py --data data/tiny_real [--ns 100 250 500 1000 2000] [--n-eval 300]
Writes bench/out/calibration.json and, with --results, that file (e.g. results/calibration_tiny_real.json)."""

import time
import torch
from common import emit, peak_rss_mb, command_line
from ris_music.data import ShardDataset
from ris_music.metrics import metrics
from ris_music.calibration import (calibrate, manifold_error, element_responses, add_calibration, robust_localize,
                                   genie_localize)


def success(cfg, batch, H, codes, floor=0.0):
    "Success and K_acc of the multipath-aware coded-ML with the model (H, codes) on a batch."
    m = metrics(cfg, robust_localize(cfg, batch['y'], H, codes, batch['noise_var'], floor=floor), batch)
    return round(m['success'], 4), round(m['K_acc'], 4)


def main(data:str='data/tiny_real',           # a fixed deployment's dataset
         ns:list=(100, 250, 500, 1000, 2000),  # calibration scene counts (the first n of the train split)
         n_eval:int=300,                       # validation scenes that score each calibration
         rounds:int=4,                         # `calibrate`'s rounds
         results:str='',                       # also write the JSON here (e.g. results/calibration_tiny_real.json)
         out:str='bench/out/calibration.json'):
    "Model error and success against the number of calibration scenes."
    tr, va = ShardDataset(data, 'train', with_rsamp=False), ShardDataset(data, 'val', with_rsamp=False)
    cfg, dep = tr.cfg, tr.deployment
    bv = va.__getitems__(list(range(n_eval)))
    oracle = success(cfg, bv, bv['H_true'], bv['ris_response'])
    genie = round(metrics(cfg, genie_localize(cfg, bv['y'], bv['H_true'], bv['ris_response'], bv['noise_var'], bv),
                          bv)['success'], 4)
    nominal = success(cfg, bv, bv['H'], bv['codes'])
    rows = []
    for n in [n for n in ns if n <= len(tr)]:
        b = tr.__getitems__(list(range(n)))
        t = time.perf_counter()
        cal = calibrate(cfg, b, dep['H'], tr.codebook, rounds=rounds)
        dt = time.perf_counter() - t
        err = manifold_error(cfg, cal['H'], element_responses(cfg, cal['table'], tr.codebook), dep['H_true'],
                             dep['ris_codebook'])
        bc = add_calibration(cfg, dict(bv), cal)
        s, k = success(cfg, bc, bc['cal_H'], bc['cal_response'])
        sf, _ = success(cfg, bc, bc['cal_H'], bc['cal_response'], cal['floor'])
        rows.append(dict(n=n, manifold_error=round(err, 5), calibrated=s, K_acc=k, floor=cal['floor'],
                         calibrated_with_floor=sf,
                         seconds=round(dt, 1), history=cal['history']))
        print(rows[-1])
    res = dict(bench='calibration', data=data, preset=cfg.preset, n_eval=n_eval, split='val', rounds=rounds,
               nominal_error=round(manifold_error(cfg, dep['H'], tr.codebook, dep['H_true'], dep['ris_codebook']), 5),
               nominal=nominal[0], oracle=oracle[0], oracle_K_acc=oracle[1], genie=genie, rows=rows,
               peak_rss_mb=peak_rss_mb())
    emit(res, out)
    if results: emit(res, results)


if __name__ == '__main__':
    command_line(main)
