"""Generation benchmark: samples/s with `workers` processes and bytes per sample on disk, for a preset.
Usage: python bench/bench_generate.py [--preset seed] [--n 20000] [--workers 2]"""

import argparse, shutil, tempfile, time
from pathlib import Path
from common import emit
from ris_music import load_preset, generate_dataset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--preset', default='seed')
    ap.add_argument('--n', type=int, default=20000)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--shard-size', type=int, default=2500)
    ap.add_argument('--out', default='bench/out/generate.json')
    a = ap.parse_args()
    cfg = load_preset(a.preset)
    tmp = Path(tempfile.mkdtemp(prefix='ris_gen_'))
    try:
        t0 = time.perf_counter()
        generate_dataset(cfg, tmp, a.n, 0, 0, shard_size=a.shard_size, workers=a.workers, seed=0, progress=False)
        dt = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (tmp / 'train').rglob('*.npy'))
    finally:
        shutil.rmtree(tmp)
    res = dict(
        bench='generate',
        preset=a.preset,
        n=a.n,
        workers=a.workers,
        shard_size=a.shard_size,
        seconds=round(dt, 2),
        samples_per_s=round(a.n / dt, 1),
        bytes_per_sample=round(size / a.n),
        kb_per_sample=round(size / a.n / 1024, 1),
        reference=dict(
            samples_per_s=33, kb_per_sample=350, note='earlier system: 120K samples in ~60 min, 8.7 GB per 25K'
        ),
        speedup_vs_reference=round(a.n / dt / 33, 1),
        size_ratio_vs_reference=round(size / a.n / 1024 / 350, 3),
    )
    emit(res, a.out)


if __name__ == '__main__':
    main()
