"""Unmixing against ground truth (the HySUPP protocol, Rasti et al. 2024) and reconstruction quality.

Definitions (also in ``docs/unmixing.md`` and stored as :data:`DEFINITIONS` in outputs):

* alignment: Hungarian assignment (:func:`scipy.optimize.linear_sum_assignment`) minimising the
  Euclidean distance between abundance maps (rows of A, p × N); endmembers follow the same permutation.
* ``sad_deg``: per matched pair arccos(clip(cos, −1, 1)) in degrees, mean over endmembers.
* ``armse``: 100 · sqrt(mean((A − A_gt)²)) over all p × N entries.
* ``ermse``: 100 · sqrt(mean((E − E_gt)²)) over all B × p entries, E in the units of the cube the
  ground truth refers to (for the benchmarks: the cube divided by its maximum).
* ``sre_db``: 20 · log10(‖A_gt‖_F / ‖A_gt − A‖_F).
* reconstruction: ``rmse``/``psnr_db``/``ssim``/``sad_deg`` of the cube E·A against the input cube, with
  :func:`simhsi.metrics.cube.cube_metrics` (its definitions) on the bands the method kept.

Arrays follow the mixing model: E (bands × p), A (p × pixels) (or (p, y, x), flattened).
Pixels that are NaN in either A are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

DEFINITIONS: dict[str, str] = {
    "alignment": "Hungarian assignment on the Euclidean distance between abundance maps; endmembers follow",
    "sad_deg": "mean over matched endmembers of arccos(clip(cos,-1,1)) in degrees",
    "armse": "100*sqrt(mean((A-A_gt)^2)) over all p x N entries (valid pixels)",
    "ermse": "100*sqrt(mean((E-E_gt)^2)) over all B x p entries, E in the ground truth's units",
    "sre_db": "20*log10(||A_gt||_F/||A_gt-A||_F)",
}


def _as_matrix(A: np.ndarray, what: str) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim == 3:
        A = A.reshape(A.shape[0], -1)
    if A.ndim != 2:
        raise DataError(f"{what} must be (p, pixels) or (p, y, x); got shape {A.shape}")
    return A


def _check_pair(X: np.ndarray, Xref: np.ndarray, what: str) -> None:
    if X.shape != Xref.shape:
        raise DataError(f"{what}: estimate has shape {X.shape}, ground truth {Xref.shape}; they must match")


def sad_matrix(E: np.ndarray, E_ref: np.ndarray) -> np.ndarray:
    """Spectral angles in degrees between every column of E (B × p) and of E_ref (B × q): (p × q)."""
    E = np.asarray(E, dtype=np.float64)
    E_ref = np.asarray(E_ref, dtype=np.float64)
    if E.ndim != 2 or E_ref.ndim != 2 or E.shape[0] != E_ref.shape[0]:
        raise DataError(f"endmembers must be (bands, p) with the same bands; got {E.shape} and {E_ref.shape}")
    n1 = np.linalg.norm(E, axis=0)
    n2 = np.linalg.norm(E_ref, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (E.T @ E_ref) / np.outer(n1, n2)
    return np.degrees(np.arccos(np.clip(np.nan_to_num(cos, nan=0.0), -1.0, 1.0)))


def sad_deg(E: np.ndarray, E_ref: np.ndarray) -> float:
    """Mean spectral angle (degrees) between matched columns E[:, i] and E_ref[:, i]."""
    E = np.asarray(E, dtype=np.float64)
    E_ref = np.asarray(E_ref, dtype=np.float64)
    _check_pair(E, E_ref, "SAD")
    return float(np.mean(np.diag(sad_matrix(E, E_ref))))


def _valid_pixels(A: np.ndarray, A_ref: np.ndarray) -> np.ndarray:
    ok = np.isfinite(A).all(axis=0) & np.isfinite(A_ref).all(axis=0)
    if not ok.any():
        raise DataError("no pixel is finite in both abundance sets")
    return ok


def armse(A: np.ndarray, A_ref: np.ndarray) -> float:
    """100 · sqrt(mean((A − A_ref)²)) over all entries of the valid pixels."""
    A, A_ref = _as_matrix(A, "A"), _as_matrix(A_ref, "A_ref")
    _check_pair(A, A_ref, "aRMSE")
    ok = _valid_pixels(A, A_ref)
    return float(100.0 * np.sqrt(np.mean((A[:, ok] - A_ref[:, ok]) ** 2)))


def ermse(E: np.ndarray, E_ref: np.ndarray) -> float:
    """100 · sqrt(mean((E − E_ref)²)) over all B × p entries."""
    E = np.asarray(E, dtype=np.float64)
    E_ref = np.asarray(E_ref, dtype=np.float64)
    _check_pair(E, E_ref, "eRMSE")
    return float(100.0 * np.sqrt(np.mean((E - E_ref) ** 2)))


def sre_db(A: np.ndarray, A_ref: np.ndarray) -> float:
    """Signal-to-reconstruction error 20·log10(‖A_ref‖_F / ‖A_ref − A‖_F) in dB (inf when equal)."""
    A, A_ref = _as_matrix(A, "A"), _as_matrix(A_ref, "A_ref")
    _check_pair(A, A_ref, "SRE")
    ok = _valid_pixels(A, A_ref)
    num = np.linalg.norm(A_ref[:, ok])
    den = np.linalg.norm(A_ref[:, ok] - A[:, ok])
    if den == 0:
        return float("inf")
    return float(20.0 * np.log10(num / den))


def align(A: np.ndarray, A_ref: np.ndarray) -> np.ndarray:
    """Permutation ``perm`` such that row ``perm[k]`` of A matches row k of A_ref (HySUPP alignment).

    Hungarian assignment on the Euclidean distance between abundance maps (valid pixels). A and
    A_ref must have the same number of endmembers.
    """
    from scipy.optimize import linear_sum_assignment

    A, A_ref = _as_matrix(A, "A"), _as_matrix(A_ref, "A_ref")
    _check_pair(A, A_ref, "alignment")
    ok = _valid_pixels(A, A_ref)
    a, r = A[:, ok], A_ref[:, ok]
    d2 = (np.sum(a**2, axis=1)[:, None] + np.sum(r**2, axis=1)[None, :] - 2 * a @ r.T)
    cost = np.sqrt(np.maximum(d2, 0.0))
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(A.shape[0], dtype=np.int64)
    perm[cols] = rows
    return perm


def unmixing_scores(
    E: np.ndarray, A: np.ndarray, E_ref: np.ndarray, A_ref: np.ndarray, *, aligned: bool = False
) -> dict[str, Any]:
    """All HySUPP scores of an estimate (E: B × p, A: p × N or p × y × x) against ground truth.

    Aligns with :func:`align` first unless ``aligned``. Returns ``sad_deg``, ``armse``, ``ermse``,
    ``sre_db``, per-endmember ``sad_per_endmember`` / ``armse_per_endmember`` (ground-truth order) and
    ``permutation`` (row of the estimate matched to each ground-truth endmember).
    """
    A2, R2 = _as_matrix(A, "A"), _as_matrix(A_ref, "A_ref")
    E = np.asarray(E, dtype=np.float64)
    E_ref = np.asarray(E_ref, dtype=np.float64)
    if E.shape[1] != A2.shape[0] or E_ref.shape[1] != R2.shape[0]:
        raise DataError(f"E {E.shape} and A {A2.shape} (or their ground truth) disagree on p")
    perm = np.arange(A2.shape[0]) if aligned else align(A2, R2)
    A2, E = A2[perm], E[:, perm]
    ok = _valid_pixels(A2, R2)
    per_a = 100.0 * np.sqrt(np.mean((A2[:, ok] - R2[:, ok]) ** 2, axis=1))
    per_s = np.diag(sad_matrix(E, E_ref))
    return {
        "sad_deg": float(per_s.mean()),
        "armse": armse(A2, R2),
        "ermse": ermse(E, E_ref),
        "sre_db": sre_db(A2, R2),
        "sad_per_endmember": per_s.tolist(),
        "armse_per_endmember": per_a.tolist(),
        "permutation": perm.tolist(),
    }


def score_result(result: xr.Dataset, reference: xr.Dataset) -> dict[str, Any]:
    """HySUPP scores of an unmixing result Dataset against a reference Dataset with ``endmembers``
    (endmember, band) and ``abundances`` (endmember, y, x) (e.g. ``simhsi.data.load("samson")``).

    The reference endmembers are restricted to the result's bands (by wavelength, nearest within
    1 nm; by position when the reference has no wavelengths). p must match.
    """
    E = np.asarray(result["endmembers"].transpose("endmember", "band").values, dtype=np.float64).T
    A = np.asarray(result["abundances"].transpose("endmember", "y", "x").values, dtype=np.float64)
    E_ref_da = reference["endmembers"].transpose("endmember", "band")
    A_ref = np.asarray(reference["abundances"].transpose("endmember", "y", "x").values, dtype=np.float64)
    if E.shape[1] != A_ref.shape[0]:
        raise DataError(f"the result has {E.shape[1]} endmembers but the reference {A_ref.shape[0]}; "
                        "score runs with the reference's p")
    if A.shape[1:] != A_ref.shape[1:]:
        raise DataError(f"abundance maps differ in size: result {A.shape[1:]}, reference {A_ref.shape[1:]}")
    E_ref = np.asarray(E_ref_da.values, dtype=np.float64).T
    if E_ref.shape[0] != E.shape[0]:
        wl_ref = np.asarray(E_ref_da["wavelength"].values, dtype=np.float64) if "wavelength" in E_ref_da.coords \
            else None
        wl = np.asarray(result["wavelength"].values, dtype=np.float64)
        if wl_ref is None or not np.all(np.isfinite(wl_ref)):
            raise DataError(f"reference endmembers have {E_ref.shape[0]} bands, the result {E.shape[0]}, and no "
                            "wavelengths to match them")
        idx = np.argmin(np.abs(wl_ref[:, None] - wl[None, :]), axis=0)
        if np.max(np.abs(wl_ref[idx] - wl)) > 1.0:
            raise DataError("reference endmember wavelengths do not cover the result's bands (within 1 nm)")
        E_ref = E_ref[idx]
    return unmixing_scores(E, A, E_ref, A_ref)


def reconstruction_metrics(cube: xr.DataArray, result: xr.Dataset, *, ssim: bool = True) -> dict[str, Any]:
    """Quality of the reconstruction E·A of ``cube`` by an unmixing result (cube units).

    Returns :func:`simhsi.metrics.cube.cube_metrics` of the reconstructed cube against the input, on
    the bands the method kept and the pixels it used: ``rmse``, ``psnr_db``, ``ssim``, ``sad_deg``, ...
    """
    from simhsi.conventions import check_cube, make_cube
    from simhsi.metrics.cube import cube_metrics

    c = check_cube(cube)
    E = np.asarray(result["endmembers"].transpose("endmember", "band").values, dtype=np.float64)
    A = np.asarray(result["abundances"].transpose("endmember", "y", "x").values, dtype=np.float64)
    wl = np.asarray(result["wavelength"].values, dtype=np.float64)
    cw = np.asarray(c["wavelength"].values, dtype=np.float64)
    idx = np.array([int(np.argmin(np.abs(cw - w))) for w in wl])
    ref_vals = np.asarray(c.values[:, :, idx], dtype=np.float64)
    recon = np.einsum("pb,pyx->yxb", E, A)
    ref_vals = np.where(np.isfinite(recon), ref_vals, np.nan)
    fw = np.asarray(c["fwhm"].values)[idx] if "fwhm" in c.coords else np.full(wl.size, np.nan)
    ref = make_cube(ref_vals, cw[idx], fw)
    rec = make_cube(recon, cw[idx], fw)
    return cube_metrics(ref, rec, ssim=ssim)
