"""What every benchmark shares: the environment record and the JSON output (stdout and a file under bench/out/)."""

import argparse, json, os, platform, resource
from pathlib import Path
import torch
from ris_music.train import cli_options


def environment(device='cpu'):
    "The machine, the device and the library versions a benchmark ran on."
    dev = torch.cuda.get_device_name() if str(device).startswith('cuda') else platform.processor() or platform.machine()
    return dict(
        device=str(device),
        device_name=dev,
        cores=os.cpu_count(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
    )


def peak_rss_mb():
    "Peak resident memory of this process so far (MB)."
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def emit(res, out, device='cpu'):
    "Add the environment record, write `res` as JSON to `out` and print it on one line."
    res = dict(res, **environment(device))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res))
    return res


def command_line(main):
    "Call `main` with its parameters read from the command line (`--name value`; defaults and help from its docments)."
    ap = cli_options(argparse.ArgumentParser(description=main.__doc__), main)
    return main(**vars(ap.parse_args()))
