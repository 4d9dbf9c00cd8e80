"""Style check (what nbdev generates excepted) for the library, the notebooks' code cells, tests, benchmarks and tools:
no statements chained with ';' and no line longer than 120 characters. Exit status 1 lists the offenders."""

import io, json, sys, tokenize
from pathlib import Path

MAX = 120


def _generated(lines):
    "Line numbers nbdev writes itself: the module docstring and the `__all__` list."
    out, in_all = set(), False
    for i, line in enumerate(lines, 1):
        in_all = in_all or line.startswith('__all__ = [')
        if in_all or (i <= 2 and line.startswith('"""')):
            out.add(i)
        if in_all and line.rstrip().endswith(']'):
            in_all = False
    return out


def problems(name, src):
    "(where, what) for each long line and each ';' between statements in Python source `src`."
    lines = src.splitlines()
    skip = _generated(lines) if name.startswith('ris_music') else set()
    long = [(i, line) for i, line in enumerate(lines, 1) if len(line) > MAX and i not in skip]
    out = [(f'{name}:{i}', f'{len(line)} characters') for i, line in long]
    try:
        for t in tokenize.generate_tokens(io.StringIO(src).readline):
            if t.type == tokenize.OP and t.string == ';':
                out.append((f'{name}:{t.start[0]}', "statements chained with ';'"))
    except (tokenize.TokenError, IndentationError, SyntaxError) as e:
        out.append((name, f'cannot tokenize: {e}'))
    return out


def sources(root):
    "(name, source) of every Python file and notebook code cell under the checked folders."
    for d in ('ris_music', 'tests', 'bench', 'tools'):
        for p in sorted((root / d).glob('*.py')):
            if p.name != '_modidx.py':
                yield str(p.relative_to(root)), p.read_text()
    for p in sorted((root / 'nbs').glob('*.ipynb')):
        for i, c in enumerate(json.loads(p.read_text())['cells']):
            if c['cell_type'] == 'code':
                yield f'{p.relative_to(root)} cell {i}', ''.join(c['source'])


if __name__ == '__main__':
    root = Path(__file__).resolve().parent.parent
    found = [p for name, src in sources(root) for p in problems(name, src)]
    for where, what in found:
        print(f'{where}: {what}')
    print(f'style: {len(found)} problems' if found else 'style ok')
    sys.exit(1 if found else 0)
