"Issue 21, group 11 and part of 13: non-finite and degenerate config values, steering's dtype."
import math
import pytest
import torch
from ris_music import load_preset, steering
from ris_music.metrics import metrics, score


@pytest.mark.parametrize('field', ['freq', 'r_max', 'r_min', 'snr_min_db', 'snr_max_db', 'rician_k_db', 'lr',
                                   'bs_distance', 'spacing', 'succ_r'])
@pytest.mark.parametrize('value', [math.inf, -math.inf, math.nan])
def test_nonfinite_config_values_are_refused(field, value):
    "Every float field must be finite: inf/NaN are errors naming the field, before any physics runs."
    with pytest.raises(ValueError, match=f"Config field '{field}' must be finite, got {value}"):
        load_preset('tiny', **{field: value})


@pytest.mark.parametrize('field', ['succ_phi_deg', 'succ_theta_deg', 'succ_r'])
@pytest.mark.parametrize('value', [0.0, -1.0])
def test_success_tolerances_must_be_positive(field, value):
    "A zero tolerance divided the composite score by zero; a negative one made success 0: both refused."
    with pytest.raises(ValueError, match=f"Config field '{field}' must be > 0"):
        load_preset('tiny', **{field: value})


def test_score_of_a_valid_config_is_finite():
    cfg = load_preset('tiny')
    K = torch.tensor([1, 2])
    est = dict(K=K, phi=torch.zeros(2, 3), theta=torch.zeros(2, 3), r=torch.ones(2, 3))
    m = metrics(cfg, est, dict(est, snr_db=torch.zeros(2, 3)))
    assert math.isfinite(score(cfg, m))


def test_steering_dtype_must_be_complex():
    cfg = load_preset('tiny')
    with pytest.raises(TypeError, match='dtype must be torch.complex64 or torch.complex128, got torch.float32'):
        steering(cfg, 0.0, 0.0, 1.0, dtype=torch.float32)
    assert steering(cfg, 0.0, 0.0, 1.0, dtype=torch.complex128).dtype == torch.complex128
