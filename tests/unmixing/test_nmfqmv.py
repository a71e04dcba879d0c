"""NMF-QMV (simhsi.unmixing.nmfqmv): recovery, min-volume without pure pixels, β selection, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from simhsi.errors import ParameterError
from simhsi.metrics.unmixing import sad_matrix
from simhsi.unmixing import get_method
from simhsi.unmixing.nmfqmv import NMFQMV, facet_distance, fast_bpi, refit_endmembers, simplex_ls_admm

FAST = {"betas": [1e-2, 1.0, 1e2], "ao_iters": 40, "vca_runs": 5}


def sad_deg(E: np.ndarray, E_true: np.ndarray) -> float:
    """Mean spectral angle (degrees) after the best one-to-one matching of the columns."""
    ang = sad_matrix(E_true, E)
    r, c = linear_sum_assignment(ang)
    return float(ang[r, c].mean())


def no_pure_scene(h=24, w=24, n_bands=40, p=3, seed=0, max_abundance=0.75):
    """Mixtures with no pixel purer than ``max_abundance``; a third of the pixels lie on the facets."""
    from conftest import make_mixture

    from simhsi.conventions import make_cube

    _, E, _ = make_mixture(2, 2, n_bands, p, seed=seed)
    rng = np.random.default_rng(seed + 100)
    A = []
    while sum(a.shape[1] for a in A) < h * w:
        a = rng.dirichlet(np.full(p, 0.6), size=4 * h * w).T
        face = rng.random(a.shape[1]) < 0.35  # put some pixels exactly on a facet
        zero = rng.integers(0, p, a.shape[1])
        a[zero[face], np.flatnonzero(face)] = 0.0
        a /= a.sum(axis=0)
        A.append(a[:, a.max(axis=0) <= max_abundance])
    A = np.concatenate(A, axis=1)[:, : h * w]
    Y = E @ A
    Y = Y + np.random.default_rng(seed + 1).normal(0, 1e-4, Y.shape)
    wl = np.linspace(400, 2500, n_bands)
    return make_cube(Y.T.reshape(h, w, n_bands), wl, np.full(n_bands, 10.0)), E, A


def test_recovers_endmembers_with_pure_pixels(mixture):
    cube, E, A = mixture(20, 20, 40, 3, snr_db=40, seed=3)
    ds = NMFQMV(3, seed=0, **FAST).fit(cube)
    assert sad_deg(ds.endmembers.values.T, E) < 1.5
    Ah = ds.abundances.values.reshape(3, -1)
    assert np.all(Ah >= 0) and np.allclose(Ah.sum(axis=0), 1.0, atol=1e-9)
    assert ds.attrs["method"] == "nmfqmv" and ds.attrs["family"] == "least-squares"


@pytest.mark.parametrize("term", ["center", "totalVar"])
def test_min_volume_beats_vca_without_pure_pixels(term):
    from simhsi.unmixing import prepare
    from simhsi.unmixing.geometric import vca

    cube, E, _ = no_pure_scene(seed=1)
    est = NMFQMV(3, seed=0, term=term, betas=[1e-3, 1e-1, 10.0, 1e3], ao_iters=60, vca_runs=5)
    ds = est.fit(cube)
    Y = prepare(cube, 3).Y
    E_vca, _ = vca(Y, 3, rng=np.random.default_rng(0))
    s_qmv, s_vca = sad_deg(ds.endmembers.values.T, E), sad_deg(E_vca, E)
    assert s_qmv < 0.6 * s_vca, (s_qmv, s_vca)


def test_beta_selection_recorded_and_seed_determinism(mixture):
    cube, _, _ = mixture(16, 16, 30, 3, snr_db=35, seed=5)
    a = get_method("nmfqmv")(3, seed=7, **FAST).fit(cube)
    b = get_method("nmfqmv")(3, seed=7, **FAST).fit(cube)
    assert a.attrs["selected_beta"] in FAST["betas"]
    crit = np.asarray(a.attrs["beta_criterion"])
    assert crit.shape == (3,) and np.all(np.isfinite(crit))
    assert a.attrs["selected_beta"] == FAST["betas"][int(np.nanargmin(np.where(
        np.asarray(a.attrs["beta_admissible"], bool), crit, np.nan)))]
    np.testing.assert_array_equal(a.endmembers.values, b.endmembers.values)
    np.testing.assert_array_equal(a.abundances.values, b.abundances.values)


def test_fits_on_pixel_sample_then_fcls_everywhere(mixture):
    cube, E, _ = mixture(20, 20, 30, 3, snr_db=40, seed=2)
    cube = cube.copy()
    cube.values[0, 5, :] = np.nan  # a nodata pixel
    ds = NMFQMV(3, seed=0, max_pixels=150, **FAST).fit(cube)
    assert ds.attrs["n_fit_pixels"] == 150
    A = ds.abundances.values
    assert np.all(np.isnan(A[:, 0, 5]))
    valid = A[:, ds.mask.values]
    assert valid.shape[1] == 399 and np.all(valid >= 0)
    np.testing.assert_allclose(valid.sum(axis=0), 1.0, atol=1e-9)
    assert sad_deg(ds.endmembers.values.T, E) < 3.0


def test_fast_bpi_and_facet_distance():
    rng = np.random.default_rng(0)
    X = rng.random((2, 200))
    X[:, :4] = [[0, 1, 0, 1], [0, 0, 1, 1]]  # the unit-square corners are the hull
    idx = fast_bpi(X, rng)
    assert set(range(4)) <= set(idx.tolist()) and len(idx) == 4
    # 5-d data -> projections: hull vertices of random 3-d projections are still boundary points
    Z = rng.standard_normal((5, 300))
    idx5 = fast_bpi(Z, rng, n_projections=5, max_dim=3)
    far = np.argmax(np.linalg.norm(Z, axis=0))
    assert far in idx5 and len(idx5) < 300
    # triangle (0,0), (2,0), (0,2): the point (0.5, 0.5) is 0.5 from two facets; (1,1) is on the hypotenuse
    M = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    assert facet_distance(M, np.array([[0.5], [0.5]])) == pytest.approx(0.5)
    assert facet_distance(M, np.array([[1.0], [1.0]])) == pytest.approx(0.0, abs=1e-12)
    assert facet_distance(M, np.array([[3.0], [3.0]])) == pytest.approx(4 / np.sqrt(2))


def test_admm_matches_exact_fcls(mixture):
    from simhsi.unmixing.fcls import fcls

    _, E, A = mixture(10, 10, 20, 4, snr_db=30, seed=4)
    Y = E @ A.reshape(4, -1) + np.random.default_rng(0).normal(0, 0.01, (20, 100))
    S, _ = simplex_ls_admm(E, Y, iters=3000, tol=1e-10)
    np.testing.assert_allclose(S, fcls(Y, E), atol=2e-4)


def test_refit_endmembers_is_exact_nnls(mixture):
    from scipy.optimize import nnls

    _, E, A = mixture(10, 10, 20, 3, snr_db=30, seed=6)
    A = A.reshape(3, -1)
    rng = np.random.default_rng(1)
    Y = E @ A + rng.normal(0, 0.01, (20, 100))
    # no active bound: the unconstrained least-squares solution
    np.testing.assert_allclose(refit_endmembers(Y, A), np.linalg.lstsq(A.T, Y.T, rcond=None)[0].T, atol=1e-10)
    # bands pushed below 0: each row equals scipy's NNLS on the full (N × p) problem, >= 0
    Y[:5] -= 0.5
    Er = refit_endmembers(Y, A)
    ref = np.array([nnls(A.T, Y[b])[0] for b in range(20)])
    assert np.all(Er >= 0) and np.any(Er[:5] == 0)
    np.testing.assert_allclose(Er, ref, atol=1e-8)
    # an endmember with no abundance anywhere: singular, no refit
    A0 = A.copy()
    A0[2] = 0.0
    assert refit_endmembers(Y, A0) is None


def test_debiasing_refits_endmembers_on_the_abundances(mixture):
    from simhsi.unmixing import prepare
    from simhsi.unmixing.fcls import fcls

    cube, E, _ = no_pure_scene(seed=2)
    kw = {"betas": [10.0, 1e3], "ao_iters": 40, "vca_runs": 5}  # strong β: vertices pulled inward
    plain = NMFQMV(3, seed=0, debias=False, **kw).fit(cube)
    deb = NMFQMV(3, seed=0, **kw).fit(cube)
    assert deb.attrs["debiased"] == 1 and plain.attrs["debiased"] == 0
    assert deb.attrs["selected_beta"] == plain.attrs["selected_beta"]
    prep = prepare(cube, 3)
    E0 = plain.endmembers.values.T / prep.scale
    # the debiased endmembers are the NNLS refit on the FCLS abundances of the plain ones
    np.testing.assert_allclose(deb.endmembers.values.T / prep.scale, refit_endmembers(prep.Y, fcls(prep.Y, E0)),
                               atol=1e-9)
    A = deb.abundances.values.reshape(3, -1)
    assert np.all(A >= 0) and np.allclose(A.sum(axis=0), 1.0, atol=1e-9)
    assert deb.attrs["rmse"] < plain.attrs["rmse"]


def test_negative_candidates_are_not_admissible():
    import simhsi.data

    crop = simhsi.data.load("samson").cube.isel(y=slice(0, 30), x=slice(0, 30))
    kw = {"betas": [1e-2, 1.0, 1e2, 1e4], "ao_iters": 40, "vca_runs": 5, "debias": False}
    res = NMFQMV(3, seed=0, **kw).fit(crop)  # default neg_tol = 0: non-negative spectra only
    low = np.asarray(res.attrs["beta_lowest"])
    ok = np.asarray(res.attrs["beta_admissible"], bool)
    np.testing.assert_array_equal(ok, low >= 0)
    assert ok.any() and not ok.all()  # weak β gives a negative vertex on this crop
    crit = np.where(ok, res.attrs["beta_criterion"], np.inf)
    assert res.attrs["selected_beta"] == kw["betas"][int(np.argmin(crit))]
    # the reference rule (neg_tol=None) may pick any candidate: the criterion's argmin over all
    ref = NMFQMV(3, seed=0, neg_tol=None, **kw).fit(crop)
    assert ref.attrs["selected_beta"] == kw["betas"][int(np.argmin(ref.attrs["beta_criterion"]))]


@pytest.mark.parametrize("kw", [{"term": "volume"}, {"betas": []}, {"betas": [-1.0]}, {"ao_iters": 0},
                                {"max_pixels": 1}, {"debias": "yes"}, {"neg_tol": -0.1}])
def test_bad_parameters(kw):
    with pytest.raises(ParameterError):
        NMFQMV(3, **kw)


def test_runs_on_real_crop():
    import simhsi.data

    ds = simhsi.data.load("samson")
    crop = ds.cube.isel(y=slice(0, 30), x=slice(0, 30))
    res = NMFQMV(3, seed=0, **FAST).fit(crop)
    A = res.abundances.values
    assert np.all(A >= 0) and np.allclose(A.sum(axis=0), 1.0, atol=1e-9)
    Y = crop.values.reshape(-1, crop.sizes["band"]).astype(float)
    trivial = float(np.sqrt(np.mean((Y - Y.mean(axis=0)) ** 2)))  # RMSE of the mean-spectrum model
    assert np.all(res.endmembers.values >= 0) and res.attrs["rmse"] < 0.6 * trivial
