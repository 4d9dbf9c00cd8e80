"README.md says what nbs/index.ipynb says, and its quickstart starts with the two commands."

import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_in_step():
    assert subprocess.run([sys.executable, str(ROOT / 'tools/make_readme.py'), '--check']).returncode == 0


def test_quickstart_commands():
    text = (ROOT / 'README.md').read_text()
    qs = text[text.index('## Quickstart') :]
    block = qs[qs.index('```sh') :].split('```')[1]
    assert [l.split()[:2] for l in block.strip().splitlines()[1:3]] == [['make', 'test'], ['make', 'demo']]
    assert 'make test' in (ROOT / '.ci/run').read_text()
