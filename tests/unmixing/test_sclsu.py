"""Batched exact NNLS and SCLSU abundances (simhsi.unmixing.sclsu)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

from simhsi.errors import DataError
from simhsi.unmixing import sclsu as mod
from simhsi.unmixing.sclsu import nnls, sclsu


@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_nnls_matches_scipy(p):
    rng = np.random.default_rng(p)
    E = rng.random((30, p))
    Y = rng.standard_normal((30, 200)) + E @ rng.random((p, 200))  # many active bounds
    X = nnls(Y, E, chunk=64)
    ref = np.stack([scipy_nnls(E, Y[:, j])[0] for j in range(200)], axis=1)
    assert X.shape == (p, 200) and X.min() >= 0
    np.testing.assert_allclose(X, ref, atol=1e-10)


def test_nnls_fallback_for_large_p(monkeypatch):
    rng = np.random.default_rng(0)
    E, Y = rng.random((20, 4)), rng.standard_normal((20, 30))
    exact = nnls(Y, E)
    monkeypatch.setattr(mod, "MAX_ENUM_P", 2)  # force the per-pixel scipy path
    np.testing.assert_allclose(nnls(Y, E), exact, atol=1e-10)


def test_sclsu_recovers_scaled_mixtures(mixture):
    _, E, A = mixture(8, 8, 25, 4, seed=2)
    A = A.reshape(4, -1)
    psi = np.random.default_rng(1).uniform(0.5, 1.5, A.shape[1])  # per-pixel illumination
    Ah, ps = sclsu(E @ A * psi, E)
    np.testing.assert_allclose(Ah, A, atol=1e-8)
    np.testing.assert_allclose(ps, psi, rtol=1e-8)
    # a pixel with no non-negative fit (the negative of a spectrum): ψ = 0, A = 1/p
    Ah, ps = sclsu(-E[:, :1], E)
    assert ps[0] == 0 and np.allclose(Ah[:, 0], 0.25)


def test_bad_inputs():
    with pytest.raises(DataError):
        nnls(np.ones((5, 3)), np.ones((4, 2)))
    with pytest.raises(DataError):
        nnls(np.full((4, 3), np.nan), np.eye(4)[:, :2])
