"""EDAA (simhsi.unmixing.edaa): recovery, descent, model selection, seeds, parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from simhsi.errors import ParameterError
from simhsi.metrics.unmixing import sad_matrix
from simhsi.unmixing import available_methods, get_method
from simhsi.unmixing.edaa import EDAA, _reduce, edaa_runs, select_run

FAST = {"n_runs": 8, "T": 60, "num_threads": 1, "device": "cpu"}


def sad_deg(E: np.ndarray, E_true: np.ndarray) -> float:
    """Mean spectral angle (degrees) after the best one-to-one matching of the columns."""
    ang = sad_matrix(E_true, E)
    r, c = linear_sum_assignment(ang)
    return float(ang[r, c].mean())


def test_registered():
    assert "edaa" in available_methods()
    assert get_method("edaa") is EDAA


def test_recovers_endmembers_with_pure_pixels(mixture):
    cube, E, _ = mixture(20, 20, 40, 3, snr_db=40, seed=3)
    ds = EDAA(3, seed=0, **FAST).fit(cube)
    assert sad_deg(ds.endmembers.values.T, E) < 2.5
    Ah = ds.abundances.values.reshape(3, -1)
    assert np.all(Ah >= 0) and np.allclose(Ah.sum(axis=0), 1.0, atol=1e-9)
    assert ds.attrs["method"] == "edaa" and ds.attrs["family"] == "least-squares"
    assert 0 <= ds.attrs["selected_run"] < FAST["n_runs"]
    assert ds.attrs["step_factor"] in [2.0**k for k in range(-3, 4)]
    # archetypes are convex combinations of pixels: inside the data's range band by band
    Y = cube.values.reshape(-1, cube.sizes["band"])
    En = ds.endmembers.values
    assert np.all(En <= Y.max(axis=0) + 1e-9) and np.all(En >= Y.min(axis=0) - 1e-9)


def test_more_iterations_fit_better(mixture):
    """The entropic descent decreases the archetypal objective ½‖X − X B A‖² (each run)."""
    import torch

    cube, _, _ = mixture(12, 12, 30, 3, snr_db=30, seed=1)
    X = torch.as_tensor(cube.values.reshape(-1, 30).T, dtype=torch.float32)
    losses = []
    for T in (1, 10, 80):
        Bw, A = edaa_runs(X, 3, n_runs=3, T=T, K1=5, K2=5, step_factors=np.array([1.0, 2.0, 4.0]),
                          generator=torch.Generator().manual_seed(0))
        assert torch.allclose(Bw.sum(dim=2), torch.ones(3, 3), atol=1e-4)  # B columns on the simplex
        assert torch.allclose(A.sum(dim=1), torch.ones(3, 144), atol=1e-4)  # A columns on the simplex
        R = X[None] - torch.bmm(torch.bmm(X[None].expand(3, -1, -1), Bw.transpose(1, 2)), A)
        losses.append((R**2).sum(dim=(1, 2)).numpy())
    assert np.all(losses[1] < losses[0]) and np.all(losses[2] < losses[1])


def test_select_run_prefers_low_correlation_among_good_fits():
    rng = np.random.default_rng(0)
    Y = rng.random((10, 50))
    E_good = np.stack([np.eye(10)[:, :3]] * 3)  # 3 runs: identical fit, different correlations
    E_good[1, :, 2] = E_good[1, :, 0] * 0.9 + 0.1  # run 1: two highly correlated endmembers
    A = np.stack([rng.dirichlet(np.ones(3), 50).T] * 3)
    E_good[2] = E_good[2] * 5.0  # run 2: much worse fit (excluded by the 5 % cutoff)
    k, fit, corr = select_run(Y, E_good, A)
    assert fit.shape == (3,) and corr.shape == (3,)
    assert corr[1] > corr[0]
    assert k == 0
    # without the cutoff's exclusion the least correlated run wins
    k2, _, _ = select_run(Y, E_good, A, tol=10.0)
    assert k2 == int(np.argmin(corr))


def test_reduce_keeps_the_gram_matrix():
    rng = np.random.default_rng(1)
    Y = rng.random((3, 6)).T @ rng.random((3, 40))  # rank 3, 6 bands
    X = _reduce(Y, 3)
    assert X.shape == (3, 40)
    np.testing.assert_allclose(X.T @ X, Y.T @ Y, atol=1e-10)
    assert _reduce(Y, None) is Y and _reduce(Y, 10) is Y


def test_deterministic_for_a_seed_and_seed_matters(mixture):
    cube, _, _ = mixture(10, 10, 20, 3, snr_db=30, seed=2)
    kw = {"n_runs": 3, "T": 5, "num_threads": 1, "device": "cpu"}
    a = EDAA(3, seed=4, **kw).fit(cube)
    b = EDAA(3, seed=4, **kw).fit(cube)
    c = EDAA(3, seed=5, **kw).fit(cube)
    np.testing.assert_array_equal(a.endmembers.values, b.endmembers.values)
    np.testing.assert_array_equal(a.abundances.values, b.abundances.values)
    assert not np.array_equal(a.endmembers.values, c.endmembers.values)


def test_sampled_fit_on_large_scene(mixture):
    cube, E, _ = mixture(20, 20, 30, 3, snr_db=40, seed=5)
    ds = EDAA(3, seed=0, max_pixels=150, **FAST).fit(cube)
    assert ds.attrs["n_fit_pixels"] == 150
    A = ds.abundances.values.reshape(3, -1)
    assert np.all(np.isfinite(A)) and np.allclose(A.sum(axis=0), 1.0, atol=1e-9)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"n_runs": 0}, "n_runs"), ({"T": 1.5}, "'T'"), ({"K1": 0}, "K1"), ({"K2": -1}, "K2"),
     ({"n_components": 0}, "n_components"), ({"max_pixels": 1}, "max_pixels")],
)
def test_bad_parameters(kw, match):
    with pytest.raises(ParameterError, match=match):
        EDAA(3, **kw)


def test_bad_device(mixture):
    cube, _, _ = mixture(6, 6, 10, 3, seed=0)
    with pytest.raises(ParameterError, match="device"):
        EDAA(3, device="tpu", n_runs=1, T=1).fit(cube)
