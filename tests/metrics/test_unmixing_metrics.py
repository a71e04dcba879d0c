"""HySUPP unmixing metrics: hand-computed values, Hungarian alignment, invariants, reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simhsi.errors import DataError
from simhsi.metrics.unmixing import (
    align,
    armse,
    ermse,
    reconstruction_metrics,
    sad_deg,
    sad_matrix,
    score_result,
    sre_db,
    unmixing_scores,
)


def test_hand_computed_values():
    E_ref = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    E = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])  # 45 deg from each reference column
    assert sad_deg(E, E_ref) == pytest.approx(45.0)
    assert sad_matrix(E_ref, E_ref)[0, 1] == pytest.approx(90.0)
    assert sad_deg(3.0 * E_ref, E_ref) == pytest.approx(0.0, abs=1e-6)
    # eRMSE: differences (0,1,0) and (1,0,0): 2 of 6 entries are 1 -> 100*sqrt(2/6)
    assert ermse(E, E_ref) == pytest.approx(100 * np.sqrt(2 / 6))
    A_ref = np.array([[1.0, 0.5, 0.0, 0.25], [0.0, 0.5, 1.0, 0.75]])
    A = A_ref + np.array([[0.1, -0.1, 0.1, -0.1], [-0.1, 0.1, -0.1, 0.1]])
    assert armse(A, A_ref) == pytest.approx(10.0)
    # SRE: ||A_ref||_F^2 = 1+.25+0+.0625+0+.25+1+.5625 = 3.125, ||diff||^2 = 8*0.01
    assert sre_db(A, A_ref) == pytest.approx(20 * np.log10(np.sqrt(3.125) / np.sqrt(0.08)))
    assert sre_db(A_ref, A_ref) == float("inf")


def test_hungarian_recovers_shuffled_permutation():
    rng = np.random.default_rng(0)
    p, n, B = 5, 400, 30
    A_ref = rng.dirichlet(np.full(p, 0.5), n).T
    E_ref = rng.random((B, p))
    perm = rng.permutation(p)
    A = A_ref[np.argsort(perm)] + rng.normal(0, 0.01, (p, n))
    E = E_ref[:, np.argsort(perm)]
    found = align(A, A_ref)
    np.testing.assert_array_equal(found, perm)  # row perm[k] of the estimate is truth k
    np.testing.assert_allclose(A[found], A_ref, atol=0.05)
    s = unmixing_scores(E, A, E_ref, A_ref)
    assert s["sad_deg"] == pytest.approx(0.0, abs=1e-5)
    assert s["armse"] == pytest.approx(1.0, rel=0.1)
    assert s["permutation"] == found.tolist()


def test_alignment_uses_abundance_distance_not_angle():
    # two endmembers with the same spectrum shape: only the abundance maps can tell them apart
    A_ref = np.array([[1.0, 0.0, 0.8], [0.0, 1.0, 0.2]])
    E_ref = np.array([[1.0, 2.0], [2.0, 4.0]])
    s = unmixing_scores(E_ref[:, ::-1], A_ref[::-1], E_ref, A_ref)
    assert s["permutation"] == [1, 0]
    assert s["armse"] == pytest.approx(0.0)


def test_nan_pixels_ignored_and_shape_errors():
    A_ref = np.array([[1.0, 0.0, np.nan], [0.0, 1.0, np.nan]])
    assert armse(A_ref, A_ref) == 0.0
    with pytest.raises(DataError, match="shape"):
        armse(A_ref[:, :2], A_ref)
    with pytest.raises(DataError, match="finite"):
        armse(np.full((2, 3), np.nan), A_ref)
    with pytest.raises(DataError):
        sad_deg(np.ones((3, 2)), np.ones((4, 2)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.integers(2, 6), scale=st.floats(0.1, 10.0))
def test_invariants(seed, p, scale):
    rng = np.random.default_rng(seed)
    n, B = 50, 12
    A_ref = rng.dirichlet(np.ones(p), n).T
    E_ref = rng.random((B, p)) + 0.01
    A = rng.dirichlet(np.ones(p), n).T
    E = rng.random((B, p)) + 0.01
    s = unmixing_scores(E, A, E_ref, A_ref)
    perm = rng.permutation(p)
    s2 = unmixing_scores(scale * E[:, perm], A[perm], E_ref, A_ref)
    # permuting the estimate and scaling its spectra change nothing but eRMSE
    assert s2["armse"] == pytest.approx(s["armse"], rel=1e-9, abs=1e-9)
    assert s2["sad_deg"] == pytest.approx(s["sad_deg"], rel=1e-7, abs=1e-6)
    assert 0.0 <= s["sad_deg"] <= 180.0 and s["armse"] >= 0
    assert sorted(s["permutation"]) == list(range(p))
    # the matched aRMSE is the smallest over all permutations checked (Hungarian optimum on distances)
    d = [np.linalg.norm(A[q] - A_ref, axis=1).sum() for q in (np.arange(p), perm)]
    best = np.linalg.norm(A[s["permutation"]] - A_ref, axis=1).sum()
    assert best <= min(d) + 1e-9


def _result_from(cube, E, A):
    from simhsi.unmixing._base import Prepared, build_result

    h, w = A.shape[1:]
    prep = Prepared(Y=np.empty((E.shape[0], h * w)), mask=np.ones((h, w), bool),
                    band_index=np.arange(E.shape[0]), scale=1.0, shape_yx=(h, w))
    return build_result(cube, prep, E, A.reshape(A.shape[0], -1), method="truth", params={}, runtime_s=0.0,
                        rmse=0.0)


def test_reconstruction_and_score_result(mixture):
    cube, E, A = mixture(12, 12, 20, 3, seed=1)
    res = _result_from(cube, E, A)
    m = reconstruction_metrics(cube, res)
    assert m["rmse"] < 1e-12
    assert m["ssim"] == pytest.approx(1.0, abs=1e-9)
    import xarray as xr

    ref = xr.Dataset({"endmembers": res["endmembers"], "abundances": res["abundances"]})
    # shuffled estimate scores perfectly after alignment
    shuffled = _result_from(cube, E[:, [2, 0, 1]], A[[2, 0, 1]])
    s = score_result(shuffled, ref)
    assert s["armse"] == pytest.approx(0.0, abs=1e-9) and s["sad_deg"] == pytest.approx(0.0, abs=1e-5)
    # a worse reconstruction: scaled abundances
    bad = _result_from(cube, E, A * 0.9)
    assert reconstruction_metrics(cube, bad)["rmse"] > 1e-3
