"""Issue 19: the calibrated hybrid's inputs are derived data that do not depend on how they were computed, its
command line fails in one line, and with the gate closed the hybrid is the rule it falls back to."""

import subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from ris_music.core import load_preset
from ris_music.data import generate_dataset, ShardDataset
from ris_music.calibration import (cache_calibration, cache_count_floor, cache_component_fit, read_calibration,
                                   add_calibration, robust_localize, read_count_floor, COMPONENT_FIT)

from conftest import calibrated_real

BIN = Path(sys.executable).parent


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    "A small tiny_real dataset, calibrated on its 40 train scenes, with a counting floor chosen on its val split."
    return calibrated_real(tmp_path_factory, 'hyb', 24, 0, seed=5, deployment_seed=2, rounds=1, iters=4,
                           floors=(0.0, 1e-3))


def test_candidates_do_not_depend_on_the_workers(real):
    "Two worker processes give the same stored arrays as one (the chunks are the same)."
    read = lambda: {k: np.array(v) for k, v in ShardDataset(real, 'val', derived=(COMPONENT_FIT,)).__getitems__(
        np.arange(24)).items() if k.startswith('cal_fit_')}
    cache_component_fit(real, ('val',), chunk=8, workers=2, progress=False)
    two = read()
    cache_component_fit(real, ('val',), chunk=8, workers=1, overwrite=True, progress=False)
    one = read()
    assert set(one) == set(two) and len(one) == 17
    for k in one: np.testing.assert_array_equal(one[k], two[k], err_msg=k)


def test_stored_rule_is_coded_ml_calibrated(real):
    "The stored rule_* fields are robust_localize at the stored floor, on the calibrated inputs."
    cache_component_fit(real, ('val',), chunk=8, progress=False)                  # (stored by the test above)
    b = ShardDataset(real, 'val', derived=(COMPONENT_FIT,)).__getitems__(np.arange(8))
    floor = read_count_floor(real)['floor']
    b = add_calibration(load_preset('tiny_real'), b, read_calibration(real))
    r = robust_localize(load_preset('tiny_real'), b['y'], b['cal_H'][0], b['cal_response'], b['noise_var'], floor=floor)
    assert torch.equal(b['cal_fit_rule_K'], r['K'])
    torch.testing.assert_close(b['cal_fit_rule_phi'], r['phi'])


def test_ris_calibrate_fails_in_one_line(tmp_path, real):
    for args, part in (([str(tmp_path / 'nowhere')], 'ris_calibrate: '), ([str(real), '--n', '0'], 'n must be')):
        p = subprocess.run([str(BIN / 'ris_calibrate'), *args], capture_output=True, text=True)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and 'Traceback' not in p.stderr, p.stderr
        assert part in p.stderr, p.stderr
