"""Helper of benchmarks/psd_profile.py: the signed per-frequency terms of the PSD distance."""

import numpy as np
import pytest
from conftest import load_benchmark

from simhsi.metrics.realism import realism_metrics


def test_psd_log_ratio_sign_scale_and_agreement_with_the_metric():
    pp = load_benchmark("psd_profile")
    rng = np.random.default_rng(0)
    ref = rng.dirichlet([1.0, 2.0, 4.0], size=(20, 16, 16)).transpose(0, 3, 1, 2)  # (n, p, y, x)
    assert np.allclose(pp.psd_log_ratio(ref, ref), 0.0)
    # twice the deviations from each map's mean: 4x the power at every frequency (channel order unchanged)
    mean = ref.mean(axis=(2, 3), keepdims=True)
    d = pp.psd_log_ratio(ref, mean + 2 * (ref - mean))
    assert d.shape == (3, 8) and np.allclose(d, np.log10(4.0))
    other = rng.dirichlet([1.0, 2.0, 4.0], size=(20, 16, 16)).transpose(0, 3, 1, 2)
    got = np.abs(pp.psd_log_ratio(ref, other)).mean()
    assert got == pytest.approx(realism_metrics(ref, other)["psd_log_distance"], rel=1e-9)
