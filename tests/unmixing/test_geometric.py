"""VCA, N-FINDR, SISAL on synthetic linear mixtures with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from simhsi.errors import DataError, ParameterError
from simhsi.unmixing.fcls import fcls
from simhsi.unmixing.geometric import estimate_snr, nfindr, sisal, vca


def _sad_matched(E: np.ndarray, E_true: np.ndarray) -> tuple[float, np.ndarray]:
    """Worst spectral angle (deg) after the best matching, and the permutation (estimate -> truth)."""
    c = (E / np.linalg.norm(E, axis=0)).T @ (E_true / np.linalg.norm(E_true, axis=0))
    S = np.degrees(np.arccos(np.clip(c, -1, 1)))
    i, j = linear_sum_assignment(S)
    perm = np.empty_like(j)
    perm[j] = i
    return float(S[i, j].max()), perm


def _Y(cube):
    return cube.values.reshape(-1, cube.sizes["band"]).T


@pytest.mark.parametrize("extract", ["vca", "nfindr"])
def test_pure_pixel_methods_find_the_pure_pixels(mixture, extract):
    cube, E, A = mixture(20, 20, 50, 4, seed=1)
    Y = _Y(cube)
    f = vca if extract == "vca" else nfindr
    Ee, idx = f(Y, 4, rng=np.random.default_rng(0))
    assert sorted(idx.tolist()) == [0, 1, 2, 3]  # make_mixture puts the pure pixels first
    worst, perm = _sad_matched(Ee, E)
    assert worst < 1e-4  # degrees (arccos round-off)
    Ae = fcls(Y, Ee)
    np.testing.assert_allclose(Ae[perm], A.reshape(4, -1), atol=1e-3)


@pytest.mark.parametrize("extract", ["vca", "nfindr", "sisal"])
def test_high_snr_recovers_endmembers_and_abundances(mixture, extract):
    cube, E, A = mixture(25, 25, 60, 3, snr_db=50, seed=2)
    Y = _Y(cube)
    rng = np.random.default_rng(0)
    if extract == "sisal":  # the enclosing regime of the paper (hinge weight 10, mu = 1000 p / N)
        Ee = sisal(Y, 3, rng=rng, tau=10.0, mu=None)
    else:
        Ee = (vca if extract == "vca" else nfindr)(Y, 3, rng=rng)[0]
    worst, perm = _sad_matched(Ee, E)
    assert worst < 0.5  # degrees
    Ae = fcls(Y, Ee)[perm]
    assert np.sqrt(np.mean((Ae - A.reshape(3, -1)) ** 2)) < 1e-2


def test_sisal_without_pure_pixels_beats_vca(mixture):
    # minimum-volume: recovers the vertices even when no pixel is pure
    cube, E, _ = mixture(30, 30, 60, 4, seed=3, pure_pixels=False)
    Y = _Y(cube)
    worst_sisal, _ = _sad_matched(sisal(Y, 4, rng=np.random.default_rng(0), tau=10.0, mu=None), E)
    worst_vca, _ = _sad_matched(vca(Y, 4, rng=np.random.default_rng(0))[0], E)
    assert worst_sisal < 0.2
    assert worst_sisal < worst_vca


def test_sisal_default_is_hysupp_soft_regime(mixture):
    # HySUPP's defaults (tau = 1e-6, mu = 1) barely enforce positivity: the simplex shrinks inside the
    # data (smaller volume than the true one), which is what scores best on the real benchmarks
    cube, E, _ = mixture(25, 25, 60, 3, seed=2)
    Y = _Y(cube)
    P = np.linalg.svd(Y - Y.mean(axis=1, keepdims=True), full_matrices=False)[0][:, :2]

    def area(M):
        V = P.T @ (M - M[:, :1])
        return abs(np.linalg.det(V[:, 1:]))

    soft = sisal(Y, 3, rng=np.random.default_rng(0))
    hard = sisal(Y, 3, rng=np.random.default_rng(0), tau=10.0, mu=None)
    assert area(soft) < 0.9 * area(E)
    assert area(hard) == pytest.approx(area(E), rel=1e-3)


def test_sisal_starts_from_the_largest_of_n_init_vca_simplices(mixture, monkeypatch):
    import simhsi.unmixing.geometric as geo

    cube, E, A = mixture(20, 20, 40, 3, seed=6)
    Y = _Y(cube)
    small = E @ np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])  # inside the true simplex
    starts = iter([small, E, small])
    monkeypatch.setattr(geo, "vca", lambda *a, **k: (next(starts), None))
    got = sisal(Y, 3, rng=np.random.default_rng(0), n_init=3, mm_iters=3)
    np.testing.assert_allclose(got, sisal(Y, 3, rng=np.random.default_rng(0), M0=E, mm_iters=3), atol=1e-10)
    assert np.abs(got - sisal(Y, 3, rng=np.random.default_rng(0), M0=small, mm_iters=3)).max() > 1e-3
    with pytest.raises(ParameterError, match="n_init"):
        sisal(Y, 3, n_init=0)


def test_vca_low_snr_branch_and_sampling(mixture):
    cube, E, _ = mixture(20, 20, 40, 3, seed=4)
    Y = _Y(cube)
    # a small declared SNR forces the (p-1)-dim projection branch; pure pixels are still found
    _, idx = vca(Y, 3, rng=np.random.default_rng(0), snr_input=5.0)
    assert sorted(idx.tolist()) == [0, 1, 2]
    # the subspace from a 50-pixel sample still lets every pixel be searched
    _, idx = vca(Y, 3, rng=np.random.default_rng(0), max_subspace_pixels=50)
    assert sorted(idx.tolist()) == [0, 1, 2]


def test_seed_determinism(mixture):
    cube, _, _ = mixture(20, 20, 40, 4, snr_db=25, seed=5, pure_pixels=False)
    Y = _Y(cube)
    for f in (vca, nfindr):
        a = f(Y, 4, rng=np.random.default_rng(7))
        b = f(Y, 4, rng=np.random.default_rng(7))
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(sisal(Y, 4, rng=np.random.default_rng(7), mm_iters=5),
                                  sisal(Y, 4, rng=np.random.default_rng(7), mm_iters=5))


@pytest.mark.parametrize("snr", [10, 30])
def test_estimate_snr(mixture, snr):
    cube, _, _ = mixture(30, 30, 60, 3, snr_db=snr, seed=6)
    assert abs(estimate_snr(_Y(cube), 3) - snr) < 1.5


@pytest.mark.parametrize("f", [vca, nfindr, sisal])
def test_bad_inputs(f):
    Y = np.random.default_rng(0).random((10, 30))
    with pytest.raises(ParameterError, match="'p'"):
        f(Y, 1)
    with pytest.raises(ParameterError, match="'p'"):
        f(Y, 10)
    with pytest.raises(DataError, match="pixels"):
        f(Y[:, :2], 3)
    with pytest.raises(DataError, match="2-D"):
        f(Y[0], 3)
