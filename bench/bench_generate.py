"""Generation benchmark: samples/s with `workers` processes and bytes per sample on disk, for one preset or several
measured in the same run (e.g. a real deployment against its ideal preset), with the ratios to the first.
Usage: python bench/bench_generate.py [--preset seed] [--n 20000] [--workers 2]
       python bench/bench_generate.py --presets seed seed_real [--n 4000] [--repeat 2]"""

import shutil, tempfile, time
from pathlib import Path
from common import emit, command_line
from ris_music import load_preset, generate_dataset


def files_bytes(folder):
    "{field: bytes} of the .npy files under `folder` (all shards of a split), by field name."
    out = {}
    for f in Path(folder).rglob('*.npy'):
        out[f.stem] = out.get(f.stem, 0) + f.stat().st_size
    return out


def measure(preset, n, workers, shard_size):
    "Generate n training samples of `preset` into a temporary folder: the seconds and the bytes the files take."
    cfg = load_preset(preset)
    tmp = Path(tempfile.mkdtemp(prefix='ris_gen_'))
    try:
        t0 = time.perf_counter()
        generate_dataset(cfg, tmp, n, 0, 0, shard_size=shard_size, workers=workers, seed=0, progress=False)
        dt = time.perf_counter() - t0
        fields = files_bytes(tmp / 'train')
        dep = sum(files_bytes(tmp / 'deployment').values()) if (tmp / 'deployment').is_dir() else 0
    finally:
        shutil.rmtree(tmp)
    return dt, fields, dep


def record(preset, n, seconds, fields, dep):
    "The JSON record of one preset: rate, bytes per sample (in all and by field) and the earlier pipeline's ratios."
    size, dt = sum(fields.values()), min(seconds)
    return dict(
        preset=preset,
        seconds=round(dt, 2),
        seconds_all=[round(s, 2) for s in seconds],
        samples_per_s=round(n / dt, 1),
        bytes_per_sample=round(size / n),
        kb_per_sample=round(size / n / 1024, 1),
        bytes_per_sample_by_field={k: round(v / n) for k, v in sorted(fields.items(), key=lambda kv: -kv[1])},
        deployment_bytes=dep,
        reference=dict(
            samples_per_s=33, kb_per_sample=350, note='earlier script pipeline: 120K samples in ~60 min, 8.7 GB per 25K'
        ),
        speedup_vs_reference=round(n / dt / 33, 1),
        size_ratio_vs_reference=round(size / n / 1024 / 350, 3),
    )


def main(preset:str=None,                    # one preset (or .json config) to generate (instead of `presets`)
         presets:list=('seed', 'seed_real'),  # presets measured in the same run; ratios are to the first
         n:int=20000,                         # training samples per preset
         workers:int=2,                       # generator processes
         shard_size:int=2500,                 # samples per shard
         repeat:int=1,                        # runs per preset, interleaved (the fastest counts)
         out:str='bench/out/generate.json'):  # where the JSON goes
    "Generation samples/s and bytes per sample on disk against the earlier pipeline's, and between presets."
    names = [preset] if preset else list(presets)
    for k, v in (('n', n), ('workers', workers), ('shard_size', shard_size), ('repeat', repeat)):
        if v < 1: raise SystemExit(f"bench_generate: --{k.replace('_', '-')} must be >= 1, got {v}")
    for p in names: load_preset(p)                                     # a bad name: an error before any work
    seconds, files = {p: [] for p in names}, {}
    for _ in range(repeat):
        for p in names:
            dt, fields, dep = measure(p, n, workers, shard_size)
            seconds[p].append(dt)
            files[p] = fields, dep
    runs = [record(p, n, seconds[p], *files[p]) for p in names]
    res = dict(bench='generate', n=n, workers=workers, shard_size=shard_size, repeat=repeat, **runs[0])
    if len(runs) > 1:
        first = runs[0]
        res.update(runs=runs, ratios={
            r['preset']: dict(samples_per_s=round(r['samples_per_s'] / first['samples_per_s'], 3),
                              bytes_per_sample=round(r['bytes_per_sample'] / first['bytes_per_sample'], 3))
            for r in runs[1:]}, ratios_to=first['preset'])
    emit(res, out)


if __name__ == '__main__':
    command_line(main)
