"""Write README.md from nbs/index.ipynb (Quarto, and so nbdev_readme, is not available on the CI machines).
Markdown cells are copied; code cells without nbdev directives become python blocks.
`--check` exits 1 if README.md is stale."""

import sys, json
from pathlib import Path


def render(nb_path='nbs/index.ipynb'):
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            out.append(src.replace('\n> ', '\n').replace('\n>', '\n') if src.startswith('# ') else src)
        elif not src.lstrip().startswith('#|'):
            out.append('```python\n' + src + '\n```')
    return '\n\n'.join(out).strip() + '\n'


if __name__ == '__main__':
    root = Path(__file__).resolve().parent.parent
    text = render(root / 'nbs/index.ipynb')
    if '--check' in sys.argv:
        ok = (root / 'README.md').read_text() == text
        print(
            'README.md is in step with nbs/index.ipynb' if ok else 'README.md is stale: run python tools/make_readme.py'
        )
        sys.exit(0 if ok else 1)
    (root / 'README.md').write_text(text)
