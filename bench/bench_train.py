"""Training benchmark: samples/s of `Trainer.step` (forward + loss + backward + AdamW) for the tiny and seed sizes,
in the first and later epochs, the one-off coded-ML cache of the dataset (samples/s, paid once per dataset), and
where the step time goes, from a torch.profiler record of the stages the library labels (data, forward, candidates,
cov_builder, loss, backward, optimizer) and of the eigendecompositions.
Usage: python bench/bench_train.py [--presets tiny seed] [--steps 8] [--batch 64]"""

import itertools, tempfile, time
from pathlib import Path
import torch
from torch.profiler import profile, ProfilerActivity
from common import emit, command_line, peak_rss_mb
from ris_music import load_preset, generate_dataset, Trainer

STAGES = ('data', 'forward', 'candidates', 'cov_builder', 'loss', 'backward', 'optimizer')
EIG = ('aten::linalg_eigh', 'aten::linalg_eigvalsh', 'aten::_linalg_eigh')


def steps(tr, n, epoch):
    "Run n training steps of an epoch's batches; returns the number of samples."
    done = 0
    for b in itertools.islice(tr.batches('train', epoch), n):
        tr.step(b)
        done += len(b['K'])
    return done


def shares(prof, total_us):
    "Share of the profiled time spent in each labelled stage and in eigendecompositions."
    ev = {e.key: e for e in prof.key_averages()}
    out = {k: round(ev[k].cpu_time_total / total_us, 3) for k in STAGES if k in ev}
    out['eigendecompositions (inside forward/loss/backward)'] = round(
        sum(ev[k].cpu_time_total for k in EIG if k in ev) / total_us, 3
    )
    return out


def passes(tr, n_steps):
    "Seconds and samples of a first pass over n_steps batches (cold caches, allocator warm-up) and of a second one."
    out = []
    for _ in range(2):
        t = time.perf_counter()
        n = steps(tr, n_steps, 0)
        out.append((time.perf_counter() - t, n))
    return out


def run(preset, n_steps, batch, tmp, device='cpu'):
    "First-epoch and later-epoch throughput and time shares of one preset."
    cfg = load_preset(preset)
    d = Path(tmp) / preset
    generate_dataset(cfg, d, batch * n_steps, batch, 0, shard_size=batch * 4, workers=2, seed=0, progress=False)

    def trainer():
        tr = Trainer(d, Path(tmp) / f'out_{preset}', params=dict(batch_size=batch), progress=False, resume=False,
                     device=device)
        tr.resume(3)
        return tr

    t = time.perf_counter()
    first = trainer()                                     # computes the dataset's coded-ML cache (once per dataset)
    cache_s = time.perf_counter() - t
    timed = passes(first, n_steps)
    tr = trainer()
    with profile(activities=[ProfilerActivity.CPU]) as prof_first:
        t_first = time.perf_counter()
        steps(tr, n_steps, 0)
        t_first = time.perf_counter() - t_first
    with profile(activities=[ProfilerActivity.CPU]) as prof_later:
        t_later = time.perf_counter()
        steps(tr, n_steps, 0)
        t_later = time.perf_counter() - t_later
    labels = ('first', 'later')
    profs = ((prof_first, t_first), (prof_later, t_later))
    params_M = round(sum(p.numel() for p in tr.model.parameters()) / 1e6, 2)
    return [
        dict(
            preset=preset,
            epoch=lab,
            batch=batch,
            steps=n_steps,
            coded_ml_cache_samples_per_s=round(batch * (n_steps + 1) / cache_s, 1),
            D_MODEL=cfg.D_MODEL,
            n_layers=cfg.n_layers,
            N=cfg.N,
            params_M=params_M,
            samples_per_s=round(n / dt, 1),
            step_s=round(dt / n_steps, 3),
            share=shares(prof, t * 1e6),
            peak_rss_mb=peak_rss_mb(),     # of the whole process so far (run one preset for its own peak)
            peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20) if str(device).startswith('cuda') else None,
        )
        for lab, (dt, n), (prof, t) in zip(labels, timed, profs)
    ]


def main(presets=('tiny', 'seed'),        # presets to run
         steps:int=8,                      # training steps timed per epoch
         batch:int=64,                     # batch size
         device:str='cpu',                 # cpu or cuda
         out:str='bench/out/train.json'):  # where the JSON goes
    "Training samples/s (first and later epochs), the coded-ML cache rate and the step's profile per preset."
    with tempfile.TemporaryDirectory() as tmp:
        runs = [r for p in presets for r in run(p, steps, batch, tmp, device)]
    emit(dict(bench='train', runs=runs), out, device)


if __name__ == '__main__':
    command_line(main)
