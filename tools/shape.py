"""Shape report of the notebooks: export cells (lines, definitions), longest functions, public functions shown.

`python tools/shape.py` prints the report; `--check` exits 1 when an export cell is over 80 lines, a function over
60 lines, or the median export cell over 25 lines.
"""
import ast, json, re, statistics, sys
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


def api_names(readme=NBS.parent / 'README.md'):
    "(name, notebook) of every name in the README's Public API table."
    text = readme.read_text().split('## Public API', 1)[1].split('\n## ', 1)[0]
    out = []
    for row in text.splitlines():
        cols = [c.strip() for c in row.split('|')]
        if len(cols) < 4 or not cols[2][:2].isdigit(): continue
        for m in re.finditer(r'`([A-Za-z_][A-Za-z0-9_.]*)', cols[1]):
            out.append((m.group(1).split('.')[0], cols[2]))
    return out


def shown(name, nb):
    "Whether notebook `nb` has a visible code cell that uses `name` and ends with an expression (its shown value)."
    for c in json.loads((NBS / f'{nb}.ipynb').read_text())['cells']:
        s = ''.join(c['source'])
        if c['cell_type'] != 'code' or s.lstrip().startswith('#|') or not re.search(rf'\b{name}\b', s): continue
        try: body = ast.parse(s).body
        except SyntaxError: continue
        if body and isinstance(body[-1], ast.Expr) and not (isinstance(body[-1].value, ast.Call) and
                getattr(body[-1].value.func, 'id', '') in ('print', 'test_eq', 'test_close', 'test_fail')):
            return True
    return False


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
    missing = [f'{n} ({nb})' for n, nb in api_names() if not shown(n, nb)]
    print(f'public API names not shown with a value in their chapter: {len(missing)}', ', '.join(missing))
    bad = [f'cell {c[2]} has {c[0]} lines (> {MAX_CELL})' for c in big]
    bad += [f'function {f[0]} in {f[1]} has {f[2]} lines (> {MAX_FN})' for f in long]
    if med > MAX_MEDIAN: bad.append(f'median export cell {med} lines (> {MAX_MEDIAN})')
    bad += [f'{m} is not shown with a value' for m in missing]
    if '--check' in sys.argv and bad:
        print("\n".join(bad))
        sys.exit(1)
