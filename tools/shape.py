"""Shape report of the notebooks: export cells (lines, definitions), longest functions, public functions shown.

`python tools/shape.py` prints the report; `--check` exits 1 when an export cell is over 80 lines, a function over
60 lines, or the median export cell over 25 lines.
"""
import ast, json, statistics, sys
from pathlib import Path

NBS = Path(__file__).resolve().parents[1] / 'nbs'
MAX_CELL, MAX_FN, MAX_MEDIAN = 80, 60, 25


def export_cells(nb):
    "Yield (notebook name, cell index, source) of each `#| export` cell of notebook path `nb`."
    for i, c in enumerate(json.loads(nb.read_text())['cells']):
        src = ''.join(c['source'])
        if c['cell_type'] == 'code' and any(l.strip().replace(' ', '') in ('#|export', '#|exports')
                                            for l in src.splitlines()[:3]):
            yield nb.stem, i, src


def functions(tree):
    "Yield (name, lines) of every function and method in an ast `tree`."
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield n.name, n.end_lineno - n.lineno + 1


def report():
    cells, fns = [], []
    for nb in sorted(NBS.glob('*.ipynb')):
        for name, i, src in export_cells(nb):
            lines = [l for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|')]
            tree = ast.parse(src)
            ndefs = sum(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) for n in tree.body)
            cells.append((len(lines), ndefs, f'{name}[{i}]'))
            fns += [(n, f'{name}[{i}]', k) for n, k in functions(tree)]
    return cells, fns


if __name__ == '__main__':
    cells, fns = report()
    med = statistics.median(c[0] for c in cells)
    one = sum(c[1] <= 1 for c in cells) / len(cells)
    print(f'{len(cells)} export cells, {sum(c[1] for c in cells)} top-level definitions; median {med} lines; '
          f'{one:.0%} hold at most one definition')
    big = sorted((c for c in cells if c[0] > MAX_CELL), reverse=True)
    long = sorted((f for f in fns if f[2] > MAX_FN), key=lambda f: -f[2])
    for c in sorted(cells, reverse=True)[:8]: print(f'  cell {c[2]}: {c[0]} lines, {c[1]} definitions')
    for f in sorted(fns, key=lambda f: -f[2])[:8]: print(f'  function {f[0]} ({f[1]}): {f[2]} lines')
    bad = [f'cell {c[2]} has {c[0]} lines (> {MAX_CELL})' for c in big]
    bad += [f'function {f[0]} in {f[1]} has {f[2]} lines (> {MAX_FN})' for f in long]
    if med > MAX_MEDIAN: bad.append(f'median export cell {med} lines (> {MAX_MEDIAN})')
    if '--check' in sys.argv and bad:
        print("\n".join(bad))
        sys.exit(1)
