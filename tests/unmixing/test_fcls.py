"""FCLS: exactness against reference solvers (SLSQP, weighted NNLS), KKT, constraints, chunking, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize, nnls

from simhsi.errors import DataError, ParameterError
from simhsi.unmixing.fcls import fcls


def _problem(seed: int, B: int = 40, p: int = 5, N: int = 150, outside: bool = True):
    rng = np.random.default_rng(seed)
    E = rng.random((B, p))
    A0 = rng.dirichlet(np.full(p, 0.5), N).T
    Y = E @ A0 + rng.normal(0, 0.05, (B, N))
    if outside:  # pixels far outside the simplex's cone exercise many active sets
        Y[:, : N // 3] = rng.normal(0, 1, (B, N // 3))
    return E, Y


def _slsqp(y: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, float]:
    p = E.shape[1]

    def obj(a):
        r = y - E @ a
        return float(r @ r)

    res = minimize(obj, np.full(p, 1 / p), jac=lambda a: -2 * E.T @ (y - E @ a), method="SLSQP",
                   bounds=[(0, None)] * p, constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1,
                                                         "jac": lambda a: np.ones(p)}],
                   options={"ftol": 1e-15, "maxiter": 1000})
    return res.x, res.fun


def _kkt_violation(Y: np.ndarray, E: np.ndarray, A: np.ndarray) -> float:
    """Largest violation of the KKT conditions, relative to max |EᵀE|."""
    G, C = E.T @ E, E.T @ Y
    grad = G @ A - C  # gradient/2
    worst = 0.0
    for i in range(A.shape[1]):
        a, g = A[:, i], grad[:, i]
        free = a > 1e-12
        mu = -g[free].mean()
        lam = g + mu
        worst = max(worst, float(np.abs(lam[free]).max()))
        if (~free).any():
            worst = max(worst, float(max(0.0, -lam[~free].min())))
    return worst / float(np.abs(G).max())


def test_fcls_matches_slsqp_objective_and_kkt():
    E, Y = _problem(0, N=30)
    A = fcls(Y, E)
    assert A.shape == (5, 30)
    assert A.min() >= 0
    np.testing.assert_allclose(A.sum(axis=0), 1.0, atol=1e-12)
    assert _kkt_violation(Y, E, A) < 1e-10
    for i in range(Y.shape[1]):
        a_ref, f_ref = _slsqp(Y[:, i], E)
        f = float(np.sum((Y[:, i] - E @ A[:, i]) ** 2))
        assert f <= f_ref * (1 + 1e-8) + 1e-14, (i, f, f_ref)


def test_fcls_matches_weighted_nnls():
    E, Y = _problem(1, N=80)
    A = fcls(Y, E)
    delta = 1e4  # heavily weighted sum-to-one row (Heinz & Chang)
    Ea = np.vstack([E, delta * np.ones((1, E.shape[1]))])
    ref = np.array([nnls(Ea, np.r_[Y[:, i], delta], maxiter=2000)[0] for i in range(Y.shape[1])]).T
    np.testing.assert_allclose(A, ref, atol=1e-5)


def test_fcls_recovers_abundances_with_true_endmembers(mixture):
    cube, E, A = mixture(15, 15, 50, 4, seed=2)
    Y = cube.values.reshape(-1, 50).T
    np.testing.assert_allclose(fcls(Y, E), A.reshape(4, -1), atol=1e-9)


def test_fcls_chunking_and_float32_do_not_change_the_result():
    E, Y = _problem(3, N=101)
    A = fcls(Y, E)
    np.testing.assert_allclose(fcls(Y, E, chunk=7), A, atol=1e-12)
    # float32 pixels: EᵀY accumulated in float32, i.e. exact FCLS up to the input's own precision
    Y32 = Y.astype(np.float32)
    A32 = fcls(Y32, E)
    assert A32.dtype == np.float64 and A32.min() >= 0
    np.testing.assert_allclose(A32.sum(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(A32, fcls(Y32.astype(np.float64), E), atol=1e-4)
    assert _kkt_violation(Y32.astype(np.float64), E, A32) < 1e-5


def test_fcls_collinear_endmembers_still_feasible():
    rng = np.random.default_rng(4)
    e = rng.random((30, 1))
    E = np.hstack([e, 2 * e, rng.random((30, 1))])
    Y = rng.random((30, 20))
    A = fcls(Y, E)
    assert np.all(np.isfinite(A)) and A.min() >= 0
    np.testing.assert_allclose(A.sum(axis=0), 1, atol=1e-12)


def test_fcls_errors():
    E, Y = _problem(5, N=10)
    Y[3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fcls(Y, E)
    with pytest.raises(DataError, match="band"):
        fcls(np.ones((7, 3)), E)
    with pytest.raises(ParameterError, match="chunk"):
        fcls(np.ones((40, 3)), E, chunk=0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.integers(2, 7), B=st.integers(8, 30), n=st.integers(1, 40),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_fcls_always_on_simplex_and_kkt(seed, p, B, n, scale):
    rng = np.random.default_rng(seed)
    E = rng.random((B, p)) * scale
    Y = rng.normal(0, 1, (B, n)) * scale
    A = fcls(Y, E)
    assert A.shape == (p, n)
    assert np.all(A >= 0)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, atol=1e-12)
    assert _kkt_violation(Y, E, A) < 1e-8
