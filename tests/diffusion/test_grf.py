import numpy as np
import pytest

from simhsi.diffusion.grf import (
    correlation,
    dominant_renormalise,
    gaussian_random_field,
    gaussian_random_field_abundances,
)
from simhsi.errors import ParameterError


@pytest.mark.parametrize("kernel,theta", [("exponential", 8.0), ("spheric", 30.0), ("gaussian", 6.0)])
def test_field_has_requested_correlation(kernel, theta):
    f = gaussian_random_field((128, 128), kernel=kernel, theta=theta, rng=np.random.default_rng(0), n=24)
    var = np.mean(f**2)
    assert var == pytest.approx(1.0, abs=0.1)
    for lag in (1, 4, 8):
        emp = 0.5 * (np.mean(f[:, :, :-lag] * f[:, :, lag:]) + np.mean(f[:, :-lag] * f[:, lag:])) / var
        assert emp == pytest.approx(float(correlation(kernel, lag, theta)), abs=0.06)


def test_abundances_on_simplex_and_seeded():
    a = gaussian_random_field_abundances(3, (40, 56), 4, theta=12, seed=7)
    assert a.dims == ("sample", "endmember", "y", "x") and a.shape == (3, 4, 40, 56)
    v = a.values.astype(np.float64)
    assert v.min() >= 0 and np.abs(v.sum(axis=1) - 1).max() < 1e-6
    b = gaussian_random_field_abundances(3, (40, 56), 4, theta=12, seed=7)
    np.testing.assert_array_equal(v, b.values)
    c = gaussian_random_field_abundances(3, (40, 56), 4, theta=12, seed=8)
    assert not np.allclose(v, c.values)
    # sample i does not depend on n
    d = gaussian_random_field_abundances(1, (40, 56), 4, theta=12, seed=7)
    np.testing.assert_array_equal(v[0], d.values[0])


def test_dominant_renormalise_keeps_max():
    rng = np.random.default_rng(0)
    maps = rng.uniform(size=(3, 5, 5))
    out = dominant_renormalise(maps)
    dom = maps.argmax(axis=0)
    kept = np.take_along_axis(out, dom[None], axis=0)[0]
    np.testing.assert_allclose(kept, maps.max(axis=0))  # the dominant endmember keeps v_max
    np.testing.assert_allclose(out.sum(axis=0), 1.0)
    assert out.min() >= 0
    # the others keep their proportions
    others = np.where(np.arange(3)[:, None, None] == dom[None], 0, maps)
    ratio = out / np.where(others > 0, others, np.nan)
    r = np.nanmax(ratio, axis=0) - np.nanmin(ratio, axis=0)
    assert np.nanmax(r) < 1e-12


def test_bad_inputs():
    with pytest.raises(ParameterError, match="kernel"):
        gaussian_random_field_abundances(1, (8, 8), 3, kernel="nope")
    with pytest.raises(ParameterError, match="'p'"):
        gaussian_random_field_abundances(1, (8, 8), 1)
    with pytest.raises(ParameterError, match="theta"):
        gaussian_random_field((8, 8), theta=0)
