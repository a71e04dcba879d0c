"""Bayesian Gibbs sampler (simhsi.unmixing.bayesian): sampler pieces, recovery, constraints, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment

from simhsi.errors import ParameterError
from simhsi.unmixing import get_method
from simhsi.unmixing.bayesian import BayesianUnmixer, truncated_normal

FAST = {"n_samples": 40, "burn_in": 15}


def match(E: np.ndarray, A: np.ndarray, E_true: np.ndarray, A_true: np.ndarray) -> tuple[float, float]:
    """(mean SAD in degrees, aRMSE × 100) after the HySUPP matching on abundance distance."""
    D = np.linalg.norm(A[:, None, :] - A_true[None, :, :], axis=2)
    r, c = linear_sum_assignment(D)
    perm = r[np.argsort(c)]
    E, A = E[:, perm], A[perm]
    cos = np.sum(E * E_true, 0) / np.linalg.norm(E, axis=0) / np.linalg.norm(E_true, axis=0)
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()), float(100 * np.sqrt(np.mean((A - A_true) ** 2)))


@pytest.mark.parametrize(("mu", "sd", "lo", "hi"), [(0.0, 1.0, -0.5, 2.0), (0.0, 1.0, 4.0, 6.0),
                                                    (0.0, 1.0, -30.0, -29.0), (2.0, 0.1, -1.0, 0.0),
                                                    (0.3, 0.2, -np.inf, 0.1)])
def test_truncated_normal_matches_scipy(mu, sd, lo, hi):
    rng = np.random.default_rng(0)
    x = truncated_normal(np.full(20000, mu), sd, lo, hi, rng)
    assert np.all((x >= lo) & (x <= hi))
    ref = stats.truncnorm((lo - mu) / sd, (hi - mu) / sd, loc=mu, scale=sd)
    assert abs(x.mean() - ref.mean()) < 5 * ref.std() / np.sqrt(x.size) + 1e-12
    assert x.std() == pytest.approx(ref.std(), rel=0.05)


def test_truncated_normal_empty_interval_returns_lower_bound():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(truncated_normal(np.zeros(3), 1.0, 0.5, 0.5, rng), 0.5)


def test_recovers_synthetic_scene(mixture):
    cube, E, A = mixture(20, 20, 40, 3, snr_db=35, seed=2)
    ds = BayesianUnmixer(3, seed=0, **FAST).fit(cube)
    Eh, Ah = ds.endmembers.values.T, ds.abundances.values.reshape(3, -1)
    sad, armse = match(Eh, Ah, E, A.reshape(3, -1))
    assert sad < 1.5 and armse < 3.0
    assert np.all(Ah >= 0) and np.allclose(Ah.sum(axis=0), 1.0, atol=1e-9)
    assert np.all(Eh >= -1e-12)  # the truncated prior keeps every sampled spectrum non-negative
    assert ds.attrs["abundance_estimator"] == "mmse" and ds.attrs["family"] == "statistical"
    # the noise variance is estimated (cube units²): the scene's noise is at 35 dB SNR
    sigma2_true = np.mean((E @ A.reshape(3, -1)).T ** 2) / 10 ** 3.5
    assert ds.attrs["noise_variance"] == pytest.approx(sigma2_true, rel=0.2)


def test_vca_init_and_seed_determinism(mixture):
    cube, E, _ = mixture(16, 16, 30, 4, snr_db=40, seed=6)
    a = get_method("bayes")(4, seed=3, init="vca", **FAST).fit(cube)
    b = get_method("bayes")(4, seed=3, init="vca", **FAST).fit(cube)
    c = get_method("bayes")(4, seed=4, init="vca", **FAST).fit(cube)
    np.testing.assert_array_equal(a.endmembers.values, b.endmembers.values)
    np.testing.assert_array_equal(a.abundances.values, b.abundances.values)
    assert not np.array_equal(a.abundances.values, c.abundances.values)
    assert a.attrs["seed"] == 3 and a.attrs["param_init"] == "vca"


def test_sample_fit_then_fcls(mixture):
    cube, E, A = mixture(20, 20, 30, 3, snr_db=40, seed=1)
    ds = BayesianUnmixer(3, seed=0, max_pixels=120, **FAST).fit(cube)
    assert ds.attrs["n_fit_pixels"] == 120 and ds.attrs["abundance_estimator"] == "fcls"
    Ah = ds.abundances.values.reshape(3, -1)
    assert np.all(Ah >= 0) and np.allclose(Ah.sum(axis=0), 1.0, atol=1e-9)
    sad, armse = match(ds.endmembers.values.T, Ah, E, A.reshape(3, -1))
    assert sad < 2.0 and armse < 3.0


@pytest.mark.parametrize("kw", [{"n_samples": 0}, {"burn_in": 100}, {"burn_in": -1}, {"prior_var": 0.0},
                                {"init": "sisal"}, {"max_pixels": 1}])
def test_bad_parameters(kw):
    with pytest.raises(ParameterError):
        BayesianUnmixer(3, **kw)


def test_runs_on_real_crop():
    import simhsi.data

    ds = simhsi.data.load("samson")
    crop = ds.cube.isel(y=slice(0, 30), x=slice(0, 30))
    res = BayesianUnmixer(3, seed=0, **FAST).fit(crop)
    A = res.abundances.values
    assert np.all(A >= 0) and np.allclose(A.sum(axis=0), 1.0, atol=1e-9)
    Y = crop.values.reshape(-1, crop.sizes["band"]).astype(float)
    trivial = float(np.sqrt(np.mean((Y - Y.mean(axis=0)) ** 2)))  # RMSE of the mean-spectrum model
    assert np.all(res.endmembers.values >= 0) and res.attrs["rmse"] < 0.6 * trivial


def _toy_model(B=12, N=50, p=3, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((B, p - 1)))
    ybar = np.full(B, 5.0)  # far from zero: the positivity constraints are inactive
    T = rng.standard_normal((p - 1, p))
    A = rng.dirichlet(np.ones(p), size=N).T
    Y = ybar[:, None] + U @ T @ A + rng.normal(0, 0.3, (B, N))
    return Y, U, ybar, T, A


def test_endmember_step_draws_from_the_exact_conditional():
    """The first projected endmember drawn by one sweep follows N(LS mean, v I) computed in full space."""
    from simhsi.unmixing.bayesian import _sample_endmembers, _Stats

    Y, U, ybar, T, A = _toy_model()
    sigma2, s2 = 0.09, 10.0
    prior = T + 0.5
    st = _Stats(Y, U, ybar)
    rng = np.random.default_rng(1)
    draws = np.array([_sample_endmembers(st, T, A, prior, s2, sigma2, rng)[:, 0] for _ in range(1500)])
    # brute force: minimise Σ_n ‖y_n − Σ_{j≠0} a_jn m_j − a_0n (ȳ + U t)‖²/σ² + ‖t − e_0‖²/s² over t
    M = ybar[:, None] + U @ T
    R = Y - M[:, 1:] @ A[1:] - np.outer(ybar, A[0])
    X = np.vstack([np.kron(A[0][:, None], U) / np.sqrt(sigma2), np.eye(2) / np.sqrt(s2)])
    z = np.concatenate([R.T.ravel() / np.sqrt(sigma2), prior[:, 0] / np.sqrt(s2)])
    mean = np.linalg.lstsq(X, z, rcond=None)[0]
    cov = np.linalg.inv(X.T @ X)
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=4 * np.sqrt(cov.max() / 1500))
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.15 * cov.max())


def test_abundance_step_draws_from_the_exact_conditional():
    """p = 2: the abundance of a pixel given M follows N(LS solution, σ²/‖m1 − m2‖²) truncated to [0, 1]."""
    from simhsi.unmixing.bayesian import _sample_abundances, _Stats

    Y, U, ybar, T, A = _toy_model(B=8, N=4, p=2, seed=3)
    sigma2 = 2.0  # broad conditional so the truncation at 0 and 1 matters
    st = _Stats(Y, U, ybar)
    rng = np.random.default_rng(2)
    draws = np.array([_sample_abundances(st, T, A, sigma2, rng)[0] for _ in range(2000)])  # (draws, N)
    M = ybar[:, None] + U @ T
    d = M[:, 0] - M[:, 1]
    mu = d @ (Y - M[:, [1]]) / (d @ d)
    sd = np.sqrt(sigma2 / (d @ d))
    ref = stats.truncnorm((0 - mu) / sd, (1 - mu) / sd, loc=mu, scale=sd)
    assert np.all((draws >= 0) & (draws <= 1))
    np.testing.assert_allclose(draws.mean(axis=0), ref.mean(), atol=4 * ref.std().max() / np.sqrt(2000))
