import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simhsi.diffusion.grf import gaussian_random_field_abundances
from simhsi.errors import DataError
from simhsi.metrics.realism import DISTANCES, extract_patches, radial_psd, realism_metrics
from simhsi.simplex import project_simplex


def _set(seed, n=4, p=3, size=16):
    rng = np.random.default_rng(seed)
    return project_simplex(rng.gamma(0.5, size=(n, p, size, size)), axis=1)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_identical_sets_have_zero_distance(seed):
    a = _set(seed)
    m = realism_metrics(a, a)
    for k in DISTANCES:
        assert m[k] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.permutations([0, 1, 2]))
def test_channel_permutation_invariant_and_symmetric(seed, perm):
    a, b = _set(seed), _set(seed + 1)
    m1 = realism_metrics(a, b)
    m2 = realism_metrics(a, b[:, list(perm)])
    m3 = realism_metrics(b, a)
    for k in DISTANCES:
        assert m1[k] == pytest.approx(m2[k], rel=1e-9, abs=1e-12)
        assert m1[k] == pytest.approx(m3[k], rel=1e-9, abs=1e-12)


def test_psd_distance_sees_texture():
    smooth = gaussian_random_field_abundances(6, (32, 32), 3, theta=12, seed=0)
    smooth2 = gaussian_random_field_abundances(6, (32, 32), 3, theta=12, seed=1)
    rough = gaussian_random_field_abundances(6, (32, 32), 3, kernel="exponential", theta=1, seed=2)
    assert realism_metrics(smooth, smooth2)["psd_log_distance"] < realism_metrics(smooth, rough)["psd_log_distance"]


def test_radial_psd_white_noise_is_flat():
    x = np.random.default_rng(0).standard_normal((200, 1, 32, 32))
    psd = radial_psd(x)[0]
    assert np.allclose(psd, 1.0, atol=0.15)


def test_memorisation_detects_copies():
    train = _set(0, n=20)
    held_out = _set(1, n=10)
    copies = train[:10] + 1e-4
    m = realism_metrics(held_out, copies, train=train)
    assert m["memorisation_ratio"] < 0.05
    fresh = realism_metrics(held_out, _set(2, n=10), train=train)
    assert fresh["memorisation_ratio"] == pytest.approx(1.0, abs=0.3)


def test_extract_patches_and_errors():
    a = _set(0, n=1, size=20)[0]
    a[:, 0, 0] = np.nan
    patches = extract_patches(a, 10, 10)
    assert patches.shape == (3, 3, 10, 10)  # the NaN patch is dropped
    with pytest.raises(DataError, match="endmembers"):
        realism_metrics(_set(0, p=3), _set(0, p=4))
    with pytest.raises(DataError, match="smaller"):
        extract_patches(a, 30)
