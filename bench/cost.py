"""What the full workflow costs at `seed` and `large` (100K/10K/10K scenes): data, coded-ML cache, calibration, HPO
(40 trials x 12 epochs on 10%), training (50 epochs), the validation sweep and the test pass, on this 2-core CPU, on a
16-core machine, and cut into a job array of n machines; computed from rates measured on this 2-core CPU (the
defaults below: the README's benchmark tables and bench/out/*.json), with every assumption named in the output.
Usage: python bench/cost.py [--gen-seed 2189] [--cml-large 3.0] ... [--out bench/out/cost.json]"""

import json, math
from common import emit, command_line

N_TRAIN, N_VAL, N_TEST = 100_000, 10_000, 10_000
HPO_TRIALS, HPO_EPOCHS, HPO_FRAC, EPOCHS = 40, 12, 0.1, 50


def stages(gen, cml, train, test, cal_s):
    "Seconds of each stage on one 2-core machine from its rates (samples or scenes per second)."
    val_pass = N_VAL / (3 * train)              # assumed: a validation forward pass ~3x a training step's rate
    hpo_epoch = HPO_FRAC * N_TRAIN / train + HPO_FRAC * val_pass
    return dict(
        data=(N_TRAIN + N_VAL + N_TEST) / gen,
        coded_ml_cache=(N_TRAIN + N_VAL) / cml,   # once per dataset; the test split's fits are timed by the test pass
        calibration=cal_s,
        hpo=HPO_TRIALS * HPO_EPOCHS * hpo_epoch,
        training=EPOCHS * (N_TRAIN / train + val_pass),
        sweep=N_VAL / (3 * train),               # one forward pass over val (the fits are cached), then arithmetic
        test=N_TEST * sum(1 / r for r in test),  # every method's own fits (hybrid, coded_ml, MUSIC rows)
    )


def scaled(st, cores_x, train_x):
    "The stages on a bigger machine: the per-scene jobs `cores_x` faster (processes), training `train_x` faster."
    per_scene = ('data', 'coded_ml_cache', 'test')
    return {k: v / (cores_x if k in per_scene else train_x if k in ('hpo', 'training', 'sweep') else 1)
            for k, v in st.items()}


def array(st, n):
    """The stages cut into n machines of a job array: data, the cache and the test by `--part i/n`, the HPO's trials
    as n workers of one shared study (at most 40), training by DDP over n machines at an assumed efficiency 0.8."""
    ddp = max(1.0, 0.8 * n)
    return dict(st, data=st['data'] / n, coded_ml_cache=st['coded_ml_cache'] / n, test=st['test'] / n,
                hpo=st['hpo'] / HPO_TRIALS * math.ceil(HPO_TRIALS / n), training=st['training'] / ddp,
                sweep=st['sweep'] / ddp)


def machines_under(st, hours=2.0, most=4096):
    "The smallest job array (machines like the one of `st`) that brings the workflow under `hours`, or None."
    for n in range(1, most + 1):
        if sum(array(st, n).values()) <= hours * 3600: return n
    return None


def hms(s):
    "Seconds as a short text (s, min or h)."
    return f'{s:.0f} s' if s < 120 else f'{s / 60:.0f} min' if s < 7200 else f'{s / 3600:.1f} h'


def main(gen_seed:float=2189.0,      # generation samples/s at seed, 2 workers (README benchmarks)
         gen_large:float=130.0,      # generation samples/s at large, 2 workers (bench_generate --presets large)
         cache_seed:float=21.0,      # coded-ML cache scenes/s at seed, every order fitted (bench_train)
         cache_large:float=0.6,      # the same at large (bench_train --presets large)
         fit_seed:float=26.0,        # coded-ML scenes/s at seed, criterion K (bench_coded_ml): the test pass's rate
         fit_large:float=1.36,       # the same at large, a channel per scene (bench_coded_ml --fixed-presets large)
         train_seed:float=44.0,      # training samples/s at seed, later epochs (bench_train)
         train_large:float=10.0,     # training samples/s at large, later epochs (bench_train --presets large)
         music_seed:float=37.0,      # MUSIC (RAP) scenes/s at seed (bench_music)
         music_large:float=0.0,      # MUSIC scenes/s at large (0: not measured, left out of the test pass)
         cores16_x:float=8.0,        # a 16-core machine against this 2-core one for per-scene jobs (8 processes)
         train16_x:float=4.0,        # ... and for training (threads and DDP inside one machine: assumed)
         out:str='bench/out/cost.json'):  # where the JSON goes
    "The cost table of the full workflow at seed and large, and the job array that brings it under 2 hours."
    rates = dict(seed=(gen_seed, cache_seed, train_seed, [fit_seed, fit_seed] + ([music_seed] if music_seed else [])),
                 large=(gen_large, cache_large, train_large,
                        [fit_large, fit_large] + ([music_large] if music_large else [])))
    table = {}
    for p, (g, c, t, test) in rates.items():
        if not (g and c and t): continue
        two = stages(g, c, t, test, 0.0)
        sixteen = scaled(two, cores16_x, train16_x)
        table[p] = dict(cpu2={k: round(v) for k, v in two.items()}, cpu16={k: round(v) for k, v in sixteen.items()},
                        total_cpu2=round(sum(two.values())), total_cpu16=round(sum(sixteen.values())),
                        array_under_2h_cpu2=machines_under(two), array_under_2h_cpu16=machines_under(sixteen))
    rows = ['| stage | ' + ' | '.join(f'{p}, 2 cores | {p}, 16 cores' for p in table) + ' |',
            '|---|' + '---|---|' * len(table)]
    for k in ('data', 'coded_ml_cache', 'hpo', 'training', 'sweep', 'test'):
        rows.append(f'| {k} | ' + ' | '.join(f"{hms(t['cpu2'][k])} | {hms(t['cpu16'][k])}" for t in table.values())
                    + ' |')
    rows.append('| **total** | ' + ' | '.join(f"**{hms(t['total_cpu2'])}** | **{hms(t['total_cpu16'])}**"
                                            for t in table.values()) + ' |')
    rows.append('| machines of a job array for < 2 h | ' + ' | '.join(
        f"{t['array_under_2h_cpu2']} | {t['array_under_2h_cpu16']}" for t in table.values()) + ' |')
    assumptions = ['validation forward pass at 3x the training rate', f'16 cores: per-scene jobs x{cores16_x:g}, '
                   f'training x{train16_x:g}', 'job array: DDP efficiency 0.8 per machine, HPO trials as workers of '
                   'one study', 'no GPU: none was lent to this task, so there is no GPU column']
    emit(dict(bench='cost', rates={p: dict(zip(('gen', 'coded_ml', 'train', 'test'), r)) for p, r in rates.items()},
              table=table, markdown='\n'.join(rows), assumptions=assumptions), out)
    print('\n'.join(rows))


if __name__ == '__main__':
    command_line(main)
