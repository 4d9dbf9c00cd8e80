"""A job cut into parts (`--part i/n`), run as separate processes at once on one folder, then its last step
(`--finalize`): the same files, byte for byte, as one process doing the whole job."""
import json, subprocess
from pathlib import Path
from conftest import BIN

GEN = ['--preset', 'tiny_real', '--n-train', '48', '--n-val', '16', '--n-test', '8', '--shard-size', '8',
       '--workers', '1', '--seed', '4']


def run(*args):
    "Run a command line; its completed process (stdout and stderr captured)."
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=600)


def at_once(*cmds):
    "Start the command lines together and wait for all; their return codes and stderr."
    ps = [subprocess.Popen([str(BIN / c[0]), *c[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for c in cmds]
    return [(p.wait(timeout=600), p.stderr.read()) for p in ps]


def files(root, under=''):
    "{relative path: bytes} of the .npy files under root/under (shards or derived data)."
    base = Path(root)
    return {str(f.relative_to(base)): f.read_bytes() for f in sorted((base / under).rglob('*.npy'))}


def test_generate_and_cache_in_parts(tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    assert run('ris_generate', '--out', str(one), *GEN).returncode == 0
    outs = at_once(*[['ris_generate', '--out', str(two), *GEN, '--part', f'{i}/2'] for i in (1, 2)])
    assert [c for c, _ in outs] == [0, 0], outs
    assert not (two / 'manifest.json').exists()                     # the parts write shards only
    fin = run('ris_generate', '--out', str(two), *GEN, '--finalize')
    assert fin.returncode == 0, fin.stderr
    assert json.loads(fin.stdout)['generated']['shards'] == 0        # the last step writes no shard
    a, b = files(one), files(two)
    assert len(a) > 20 and a == b
    assert json.loads((one / 'manifest.json').read_text())['shards'] == \
        json.loads((two / 'manifest.json').read_text())['shards']
    assert not (two / '.parts').exists()

    # the coded-ML cache: two parts at once, then the join; against one process
    assert run('ris_coded_ml', str(one), '--workers', '1', '--chunk', '8').returncode == 0
    outs = at_once(*[['ris_coded_ml', str(two), '--workers', '1', '--chunk', '8', '--part', f'{i}/2'] for i in (1, 2)])
    assert [c for c, _ in outs] == [0, 0], outs
    assert not (two / 'derived/coded_ml/train').exists()             # joined by the last step only
    fin = run('ris_coded_ml', str(two), '--workers', '1', '--chunk', '8', '--finalize')
    assert fin.returncode == 0, fin.stderr
    a, b = files(one, 'derived'), files(two, 'derived')
    assert len(a) > 30 and a == b


def test_parts_errors(tmp_path):
    "A missing part is named by the last step, in one line; a bad --part is refused before anything is written."
    d = tmp_path / 'd'
    assert run('ris_generate', '--out', str(d), *GEN, '--part', '1/3').returncode == 0
    fin = run('ris_generate', '--out', str(d), *GEN, '--finalize')
    err = fin.stderr.strip().splitlines()
    assert fin.returncode == 1 and len(err) == 1 and 'unfinished parts: 2/3, 3/3' in err[0], fin.stderr
    bad = run('ris_generate', '--out', str(tmp_path / 'never'), *GEN, '--part', '4/3')
    assert bad.returncode == 1 and "part must be 'i/n'" in bad.stderr and not (tmp_path / 'never').exists()
    both = run('ris_coded_ml', str(d), '--part', '1/2', '--finalize')
    assert both.returncode == 1 and 'give one of them' in both.stderr
