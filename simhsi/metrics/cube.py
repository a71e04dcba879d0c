"""Cube-against-cube metrics: SAD, RMSE, PSNR, SSIM, ERGAS (definitions in docs/metrics.md).

Both cubes are (y, x, band) ``DataArray`` objects with a ``wavelength`` coordinate in nm. Bands are
matched by wavelength (each reference band to the nearest candidate band within a tolerance, one to
one); only matched bands enter the metrics. Pixels that are NaN in either cube are ignored.

Definitions (all computed on the matched bands, in float64):

* ``rmse``: sqrt(mean((C - R)^2)) over all valid entries, in the cube's units.
* ``sad_deg``: per-pixel spectral angle arccos(<r, c> / (|r| |c|)) in degrees, mean over pixels
  (pixels that are all-zero in either cube are skipped).
* ``psnr_db``: per band 10 log10(peak_b^2 / MSE_b) with peak_b the maximum of the reference band;
  mean over bands (``inf`` when the cubes are identical).
* ``ssim``: per band :func:`skimage.metrics.structural_similarity` with Gaussian weights
  (sigma = 1.5, ``use_sample_covariance=False``), ``data_range`` = reference band max - min (1 when the band is
  constant); mean over bands. NaN pixels are set to 0 in both cubes for SSIM only.
* ``ergas``: 100 * ratio * sqrt(mean_b (RMSE_b / mean_b(R))^2) with ``ratio`` = candidate/reference
  pixel-size ratio (1 for cubes on the same grid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.conventions import check_cube
from simhsi.errors import DataError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

#: Smallest image edge for SSIM: skimage's Gaussian window is 2*int(3.5*1.5 + 0.5) + 1 = 11 px.
SSIM_MIN_SIZE = 11

#: One-line definitions stored with results (output metadata) and printed by ``simhsi validate``.
DEFINITIONS: dict[str, str] = {
    "rmse": "sqrt(mean((C-R)^2)) over all valid entries of the matched bands, cube units",
    "sad_deg": "per-pixel spectral angle in degrees, mean over pixels (all-zero/NaN pixels skipped)",
    "psnr_db": "per band 10*log10(max(R_b)^2/MSE_b), mean over bands",
    "ssim": "per band skimage SSIM, Gaussian weights sigma=1.5, data_range=max(R_b)-min(R_b), mean over bands",
    "ergas": "100*ratio*sqrt(mean_b (RMSE_b/mean(R_b))^2), ratio = pixel-size ratio (1 on the same grid)",
}


def match_bands(
    ref_wavelength: np.ndarray, cand_wavelength: np.ndarray, tolerance_nm: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pair bands by wavelength: indices ``(i_ref, i_cand)`` of one-to-one nearest matches.

    Each reference band is paired with the nearest candidate band if the distance is at most
    ``tolerance_nm`` (default: 1 nm); when several reference bands pick the same candidate band, the
    nearest keeps it. Raises :class:`DataError` when no band matches.
    """
    rw = np.asarray(ref_wavelength, dtype=np.float64)
    cw = np.asarray(cand_wavelength, dtype=np.float64)
    tol = 1.0 if tolerance_nm is None else float(tolerance_nm)
    if not np.isfinite(tol) or tol < 0:
        raise ParameterError(f"The 'tolerance_nm' parameter must be a number >= 0. Got {tolerance_nm!r} instead.")
    if rw.size == 0 or cw.size == 0:
        raise DataError("a cube has no bands")
    dist = np.abs(rw[:, None] - cw[None, :])
    nearest = np.argmin(dist, axis=1)
    d = dist[np.arange(rw.size), nearest]
    best: dict[int, tuple[float, int]] = {}
    for i in np.flatnonzero(d <= tol):
        j = int(nearest[i])
        if j not in best or d[i] < best[j][0]:
            best[j] = (float(d[i]), int(i))
    if not best:
        raise DataError(
            f"no band of the candidate ({cw.min():.1f}-{cw.max():.1f} nm) lies within {tol:g} nm of a band of the "
            f"reference ({rw.min():.1f}-{rw.max():.1f} nm); raise the tolerance (--tolerance) or compare cubes "
            "of the same sensor"
        )
    pairs = sorted((i, j) for j, (_, i) in best.items())
    i_ref = np.array([p[0] for p in pairs], dtype=np.intp)
    i_cand = np.array([p[1] for p in pairs], dtype=np.intp)
    return i_ref, i_cand


def _ssim_band(r: np.ndarray, c: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    rng = float(r.max() - r.min())
    if rng <= 0:
        rng = 1.0
    if min(r.shape) < SSIM_MIN_SIZE:
        raise DataError(f"SSIM (Gaussian window sigma 1.5, 11 px) needs images of at least {SSIM_MIN_SIZE}x"
                        f"{SSIM_MIN_SIZE} pixels; got {r.shape[0]}x{r.shape[1]} (skip it with --no-ssim)")
    return float(
        structural_similarity(r, c, data_range=rng, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    )


def cube_metrics(
    reference: xr.DataArray,
    candidate: xr.DataArray,
    *,
    tolerance_nm: float | None = None,
    resolution_ratio: float = 1.0,
    ssim: bool = True,
) -> dict[str, Any]:
    """Compare ``candidate`` to ``reference`` (both (y, x, band) with ``wavelength`` in nm).

    Returns a dict with ``rmse``, ``sad_deg``, ``psnr_db``, ``ssim`` (NaN when ``ssim=False``), ``ergas``,
    ``n_bands_matched``, ``max_wavelength_offset_nm`` and ``n_pixels``. Both cubes are loaded into
    memory as float32 (about 2x the cube size). Spatial shapes must match (:class:`DataError`).
    """
    ref = check_cube(reference, "reference cube")
    cand = check_cube(candidate, "candidate cube")
    if ref.shape[:2] != cand.shape[:2]:
        raise DataError(
            f"the cubes differ in size: reference {ref.shape[0]}x{ref.shape[1]} pixels, candidate "
            f"{cand.shape[0]}x{cand.shape[1]}; compare cubes on the same grid"
        )
    ur, uc = ref.attrs.get("units"), cand.attrs.get("units")
    if ur is not None and uc is not None and str(ur).strip() != str(uc).strip():
        raise DataError(f"the cubes have different units: reference {ur!r}, candidate {uc!r}; compare "
                        "reflectance with reflectance (L2) or radiance with radiance (L1)")
    if not (np.isfinite(resolution_ratio) and resolution_ratio > 0):
        raise ParameterError(f"The 'resolution_ratio' parameter must be > 0. Got {resolution_ratio!r} instead.")
    rw = np.asarray(ref["wavelength"].values, dtype=np.float64)
    cw = np.asarray(cand["wavelength"].values, dtype=np.float64)
    i_ref, i_cand = match_bands(rw, cw, tolerance_nm)
    r = np.asarray(ref.isel(band=i_ref).values, dtype=np.float32)
    c = np.asarray(cand.isel(band=i_cand).values, dtype=np.float32)
    h, w, nb = r.shape
    valid = np.isfinite(r).all(axis=2) & np.isfinite(c).all(axis=2)
    if not valid.any():
        raise DataError("no pixel is finite in both cubes")
    rv = r[valid].astype(np.float64)  # (n, nb)
    cv = c[valid].astype(np.float64)
    diff2 = (cv - rv) ** 2
    mse_b = diff2.mean(axis=0)
    rmse = float(np.sqrt(diff2.mean()))
    nr = np.linalg.norm(rv, axis=1)
    nc = np.linalg.norm(cv, axis=1)
    ok = (nr > 0) & (nc > 0)
    if ok.any():
        # angle = 2 atan2(|u - v|, |u + v|) for unit vectors u, v: the same as arccos(u.v) but exact near 0
        u = rv[ok] / nr[ok, None]
        v = cv[ok] / nc[ok, None]
        ang = 2.0 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
        sad = float(np.degrees(ang).mean())
    else:
        sad = float("nan")
    peak = rv.max(axis=0)
    with np.errstate(divide="ignore"):
        psnr_b = np.where(mse_b > 0, 10.0 * np.log10(np.maximum(peak, 0.0) ** 2 / np.where(mse_b > 0, mse_b, 1.0)), np.inf)
    psnr = float(np.mean(psnr_b))
    mean_b = rv.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.sqrt(mse_b) / np.abs(mean_b)
    rel = np.where(mse_b == 0, 0.0, rel)
    ergas = float(100.0 * resolution_ratio * np.sqrt(np.mean(rel**2)))
    del rv, cv, diff2
    if ssim:
        if not valid.all():
            r = np.where(valid[..., None], r, 0.0)
            c = np.where(valid[..., None], c, 0.0)
        ssim_v = float(np.mean([_ssim_band(r[..., b].astype(np.float64), c[..., b].astype(np.float64)) for b in range(nb)]))
    else:
        ssim_v = float("nan")
    return {
        "rmse": rmse,
        "sad_deg": sad,
        "psnr_db": psnr,
        "ssim": ssim_v,
        "ergas": ergas,
        "n_bands_matched": int(nb),
        "n_bands_reference": int(rw.size),
        "n_bands_candidate": int(cw.size),
        "max_wavelength_offset_nm": float(np.max(np.abs(rw[i_ref] - cw[i_cand]))),
        "n_pixels": int(valid.sum()),
        "units": str(ref.attrs.get("units", "")),
    }
