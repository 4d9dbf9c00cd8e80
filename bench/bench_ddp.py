"""DDP benchmark: training samples/s of `ris_train` on 1 process and on N processes under torchrun (gloo on CPU, NCCL
on CUDA), same data and global batch. Threads per process are set with OMP_NUM_THREADS; on a 2-core CPU compare one
process with 2 threads against 2 processes with 1 thread each. The rate is the trainer's own (training pass only,
validation excluded), from the second epoch on (the first includes warm-up).
Usage: python bench/bench_ddp.py [--preset tiny] [--n 1024] [--batch 32] [--epochs 3] [--procs 1 2] [--device cpu]"""

import json, os, subprocess, sys, tempfile
from pathlib import Path
from common import emit, command_line
from ris_music import load_preset, generate_dataset

BIN = Path(sys.executable).parent


def run(data, nproc, threads, epochs, batch, device, out):
    args = [str(BIN / 'ris_train'), '--data-dir', str(data), '--out-dir', str(out), '--epochs', str(epochs),
            '--params', json.dumps(dict(batch_size=batch)), '--n-val', '32', '--quiet', '--device', device]
    if nproc > 1:
        args = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', *args]
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if p.returncode: sys.exit(p.stderr[-3000:])
    log = [json.loads(l) for l in open(Path(out) / 'log.jsonl')]
    later = [r['samples_per_s'] for r in log[1:]] or [log[0]['samples_per_s']]
    return dict(procs=nproc, threads_per_proc=threads, first_epoch=log[0]['samples_per_s'],
                later_epochs=round(sum(later) / len(later), 1), epochs=epochs)


def main(preset:str='tiny',              # dataset preset
         n:int=1024,                      # training samples
         batch:int=32,                    # global batch size
         epochs:int=3,                    # epochs per run
         procs=(1, 2),                    # process counts to compare
         device:str='cpu',                # 'cpu' (gloo) or 'cuda' (NCCL)
         out:str='bench/out/ddp.json'):   # where the JSON goes
    "Training samples/s on one process and on several under torchrun, same data and global batch."
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as t:
        d = Path(t) / 'data'
        generate_dataset(load_preset(preset), d, n, 32, 0, shard_size=256, workers=2, seed=0, progress=False)
        runs = []
        for n_proc in procs:
            for threads in sorted({max(1, cores // n_proc), 1}, reverse=True):
                runs.append(run(d, n_proc, threads, epochs, batch, device, Path(t) / f'out{n_proc}_{threads}'))
                print(runs[-1], file=sys.stderr)
    emit(dict(bench='ddp', preset=preset, n_train=n, global_batch=batch, runs=runs), out, device)


if __name__ == '__main__':
    command_line(main)
