"""Saved outputs for the docs site. Quarto renders the notebooks' saved outputs (nbdev 2 does not execute them), so the
published chapters show the figures and the audit numbers only if the committed notebooks carry them.

  python tools/docs_outputs.py run [NB ...]   execute notebooks in place (tiny defaults, plotly from its CDN)
  python tools/docs_outputs.py check DIR      every chapter in DIR (e.g. _proc after nbdev_proc_nbs) has a figure,
                                              no error output, and stays under 3 MB"""
import json, os, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 3 * 2**20


def run(paths):
    "Execute each notebook in place from nbs/ with the light plotly renderer and no progress bars."
    os.environ.update(PLOTLY_RENDERER='notebook_connected', TQDM_DISABLE='1', IN_TEST='1')
    from execnb.shell import CaptureShell
    paths = [Path(p).resolve() for p in paths]
    os.chdir(ROOT / 'nbs')
    for p in paths:
        print('executing', p.name, flush=True)
        CaptureShell(path=ROOT / 'nbs').execute(p, p, exc_stop=True)


def figures(nb):
    "Number of plotly figures or images among a notebook's outputs."
    n = 0
    for c in nb['cells']:
        for o in c.get('outputs', []):
            d = o.get('data', {})
            html = ''.join(d.get('text/html', ''))
            n += 'image/png' in d or 'application/vnd.plotly.v1+json' in d or 'plotly' in html
    return n


def check(folder):
    "Problems of the processed notebooks in `folder`."
    probs = []
    for p in sorted(Path(folder).glob('[0-9]*.ipynb')):
        nb = json.loads(p.read_text())
        if not figures(nb): probs.append(f'{p.name}: no figure among the saved outputs (run tools/docs_outputs.py run)')
        errs = [o for c in nb['cells'] for o in c.get('outputs', []) if o.get('output_type') == 'error']
        if errs: probs.append(f'{p.name}: {len(errs)} error outputs')
        if p.stat().st_size > MAX_BYTES: probs.append(f'{p.name}: {p.stat().st_size / 2**20:.1f} MB of outputs')
    return probs


if __name__ == '__main__':
    if sys.argv[1:2] == ['run']: run(sys.argv[2:] or sorted(str(p) for p in (ROOT / 'nbs').glob('[0-9]*.ipynb')))
    elif sys.argv[1:2] == ['check']:
        probs = check(sys.argv[2] if len(sys.argv) > 2 else ROOT / '_proc')
        for p in probs: print('docs:', p)
        print(f'docs outputs: {len(probs)} problems' if probs else 'docs outputs ok')
        sys.exit(1 if probs else 0)
    else: sys.exit(__doc__)
