"""Generation benchmark: samples/s with `workers` processes and bytes per sample on disk, for a preset.
Usage: python bench/bench_generate.py [--preset seed] [--n 20000] [--workers 2]"""

import shutil, tempfile, time
from pathlib import Path
from common import emit, command_line
from ris_music import load_preset, generate_dataset


def main(preset:str='seed',                  # preset (or .json config) to generate
         n:int=20000,                         # training samples
         workers:int=2,                       # generator processes
         shard_size:int=2500,                 # samples per shard
         out:str='bench/out/generate.json'):  # where the JSON goes
    "Generation samples/s and bytes per sample on disk against the earlier pipeline's."
    cfg = load_preset(preset)
    tmp = Path(tempfile.mkdtemp(prefix='ris_gen_'))
    try:
        t0 = time.perf_counter()
        generate_dataset(cfg, tmp, n, 0, 0, shard_size=shard_size, workers=workers, seed=0, progress=False)
        dt = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (tmp / 'train').rglob('*.npy'))
    finally:
        shutil.rmtree(tmp)
    res = dict(
        bench='generate',
        preset=preset,
        n=n,
        workers=workers,
        shard_size=shard_size,
        seconds=round(dt, 2),
        samples_per_s=round(n / dt, 1),
        bytes_per_sample=round(size / n),
        kb_per_sample=round(size / n / 1024, 1),
        reference=dict(
            samples_per_s=33, kb_per_sample=350, note='earlier script pipeline: 120K samples in ~60 min, 8.7 GB per 25K'
        ),
        speedup_vs_reference=round(n / dt / 33, 1),
        size_ratio_vs_reference=round(size / n / 1024 / 350, 3),
    )
    emit(res, out)


if __name__ == '__main__':
    command_line(main)
