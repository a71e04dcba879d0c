"""Helper of benchmarks/psd_profile.py: the signed per-frequency terms of the PSD distance."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from simhsi.metrics.realism import realism_metrics

_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _module():
    sys.path.insert(0, str(_DIR))
    try:
        spec = importlib.util.spec_from_file_location("psd_profile", _DIR / "psd_profile.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(_DIR))


def test_psd_log_ratio_sign_scale_and_agreement_with_the_metric():
    pp = _module()
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
