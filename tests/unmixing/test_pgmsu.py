"""PGMSU (variational autoencoder unmixing with endmember variability)."""

from __future__ import annotations

import numpy as np
import pytest

from simhsi.errors import ParameterError
from simhsi.unmixing import available_methods, get_method

torch = pytest.importorskip("torch")

FAST = {"epochs": 4, "device": "cpu"}


def _fit(cube, seed=0, p=3, **kw):
    model = get_method("pgmsu")(p, seed=seed, **{**FAST, **kw})
    return model, model.fit(cube)


def _angles_deg(E, E_ref):
    """Best-matching spectral angles (degrees) of the columns of E (B, p) to E_ref (B, p)."""
    from itertools import permutations

    c = (E / np.linalg.norm(E, axis=0)).T @ (E_ref / np.linalg.norm(E_ref, axis=0))
    ang = np.degrees(np.arccos(np.clip(c, -1, 1)))
    p = E.shape[1]
    return min(np.mean([ang[perm[j], j] for j in range(p)]) for perm in permutations(range(p)))


def test_registered():
    assert "pgmsu" in available_methods()
    assert get_method("pgmsu").family == "deep"


def test_runs_valid_output(mixture):
    cube, _, _ = mixture(h=10, w=10, n_bands=20, p=3, seed=1)
    model, res = _fit(cube)
    A = res["abundances"].values
    E = res["endmembers"].values
    assert A.shape == (3, 10, 10) and E.shape == (3, 20)
    assert A.min() >= 0 and np.allclose(A.sum(axis=0), 1.0, atol=1e-5)
    # sigmoid decoder: per-pixel endmembers in [0, 1] of the max-scaled data -> [0, scale] in cube units
    assert E.min() >= 0 and E.max() <= res.attrs["scale"] * (1 + 1e-9)
    assert res.attrs["method"] == "pgmsu" and res.attrs["param_lambda_vol"] == 7.0
    assert model.n_train_ == 100 and model.endmembers_vca_.shape == (20, 3)


def test_seed_determinism(mixture):
    cube, _, _ = mixture(h=8, w=8, n_bands=16, p=3, seed=2)
    _, r1 = _fit(cube, seed=3)
    _, r2 = _fit(cube, seed=3)
    _, r3 = _fit(cube, seed=4)
    np.testing.assert_array_equal(r1["abundances"].values, r2["abundances"].values)
    np.testing.assert_array_equal(r1["endmembers"].values, r2["endmembers"].values)
    assert not np.allclose(r1["abundances"].values, r3["abundances"].values)


def test_recovers_a_clean_mixture(mixture):
    """Noise-free scene with pure pixels: endmembers within a few degrees, reconstruction close."""
    cube, E_true, A_true = mixture(h=16, w=16, n_bands=30, p=3, seed=7)
    _, res = _fit(cube, epochs=30, lambda_kl=0.1, lambda_sad=0.0, lambda_vol=0.5)
    E = res["endmembers"].values.T
    assert _angles_deg(E, E_true) < 6.0
    assert res.attrs["rmse"] < 0.05 * float(np.mean(cube.values))


def test_sampled_training_and_batched_inference(mixture):
    cube, _, _ = mixture(h=12, w=12, n_bands=16, p=3, seed=8)
    m1, r1 = _fit(cube, max_train_pixels=50, infer_batch=7)
    assert m1.n_train_ == 50
    m2, r2 = _fit(cube, max_train_pixels=50, infer_batch=10_000)
    np.testing.assert_allclose(r1["abundances"].values, r2["abundances"].values, atol=1e-6)
    np.testing.assert_allclose(r1["endmembers"].values, r2["endmembers"].values, rtol=1e-5)


def test_num_threads_is_local(mixture):
    cube, _, _ = mixture(h=6, w=6, n_bands=10, p=3, seed=0)
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    model = get_method("pgmsu")(3, seed=0, epochs=2, device="cpu", num_threads=other)
    model.fit(cube)
    assert torch.get_num_threads() == before
    assert model.get_params()["num_threads"] == other


def test_masked_pixels(mixture):
    cube, _, _ = mixture(h=8, w=8, n_bands=16, p=3, seed=9)
    cube = cube.copy()
    cube[1, 2, 3] = np.nan
    _, res = _fit(cube)
    A = res["abundances"].values
    assert np.isnan(A[:, 1, 2]).all() and np.isfinite(A).sum() == 3 * 63


@pytest.mark.parametrize("bad", [{"epochs": 1}, {"lr": 0}, {"z_dim": 0}, {"batch_fraction": 0.0},
                                 {"batch_fraction": 1.5}, {"lambda_vol": -1.0}, {"max_train_pixels": 3},
                                 {"infer_batch": 0}, {"num_threads": 0}])
def test_bad_parameters(mixture, bad):
    cube, _, _ = mixture(h=6, w=6, n_bands=10, p=3, seed=0)
    with pytest.raises(ParameterError):
        _fit(cube, **bad)
