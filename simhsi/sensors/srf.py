"""Spectral response functions (SRF) and the resampling matrix to a sensor's bands.

A band value is ∫ r_b(λ) s(λ) dλ / ∫ r_b(λ) dλ. The source spectrum s is known only at its samples
λ_j; simhsi takes s to be piecewise linear between them (s(λ) = Σ_j s_j h_j(λ), h_j the hat functions)
and integrates exactly:  R[b, j] = ∫ r_b h_j dλ / Σ_j ∫ r_b h_j dλ. For a Gaussian r_b this has a closed
form (normal CDF and partial first moment on each segment), so it is right both when the source grid
is much finer than the band (it tends to trapezoid integration) and when it is coarser (it tends to
linear interpolation). Rows sum to 1.

If the source samples are themselves band averages with Gaussian width ``src_fwhm`` (a library or
image at another sensor's bands), the sensor response is deconvolved in quadrature:
σ_eff² = max(σ_b² − σ_src², 0), which is exact when both are Gaussian. Tabulated SRFs (Sentinel-2)
ignore ``src_fwhm``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import ndtr

from simhsi.errors import SensorError

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: a Gaussian band "reaches" ±REACH_FWHM × FWHM around its centre (checked against the source range)
REACH_FWHM = 1.5
#: a tabulated SRF's support is where it exceeds this fraction of its peak
SUPPORT_FRACTION = 0.01

_OOR = ("error", "warn", "ignore")


def _sorted_source(src_wavelength_nm) -> tuple[np.ndarray, np.ndarray]:
    wl = np.asarray(src_wavelength_nm, dtype=np.float64).ravel()
    if wl.size < 2 or not np.all(np.isfinite(wl)):
        raise SensorError(f"source wavelengths must be >= 2 finite values in nm; got {wl.size} values")
    order = np.argsort(wl, kind="stable")
    ws = wl[order]
    if np.any(np.diff(ws) <= 0):
        dup = ws[1:][np.diff(ws) <= 0][0]
        raise SensorError(f"source wavelengths must be distinct; {dup:g} nm appears twice")
    return ws, order


def _unsort(R_sorted: np.ndarray, order: np.ndarray) -> np.ndarray:
    R = np.empty_like(R_sorted)
    R[:, order] = R_sorted
    return R


def _normalise(W: np.ndarray, names: list[str]) -> np.ndarray:
    tot = W.sum(axis=1, keepdims=True)
    empty = tot[:, 0] <= 0
    if empty.any():
        bad = [names[i] for i in np.flatnonzero(empty)][:5]
        warnings.warn(
            f"{int(empty.sum())} band(s) lie entirely outside the source wavelength range "
            f"(e.g. {', '.join(bad)}); their SRF rows are NaN",
            stacklevel=3,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(empty[:, None], np.nan, W / np.where(tot > 0, tot, 1.0))


def check_range(
    lo: np.ndarray, hi: np.ndarray, src_min: float, src_max: float, names: list[str], out_of_range: str,
    what: str,
) -> None:
    """Error or warn when band supports [lo, hi] (nm) reach outside [src_min, src_max]."""
    if out_of_range not in _OOR:
        raise SensorError(f"out_of_range must be one of {_OOR}; got {out_of_range!r}")
    bad = np.flatnonzero((lo < src_min - 1e-9) | (hi > src_max + 1e-9))
    if bad.size == 0 or out_of_range == "ignore":
        return
    ex = ", ".join(f"{names[i]} ({lo[i]:.1f}-{hi[i]:.1f} nm)" for i in bad[:4])
    more = f" and {bad.size - 4} more" if bad.size > 4 else ""
    msg = (
        f"{bad.size} sensor band(s) reach outside the source wavelength range {src_min:.1f}-{src_max:.1f} nm "
        f"({what}): {ex}{more}"
    )
    if out_of_range == "error":
        raise SensorError(msg + ". Use a library/source covering them, drop these bands "
                          "(Sensor.select_bands), or pass out_of_range='warn' to truncate their responses")
    warnings.warn(msg + "; their responses are truncated to the source range", stacklevel=3)


def gaussian_srf_matrix(
    centers_nm,
    fwhm_nm,
    src_wavelength_nm,
    src_fwhm_nm=None,
    *,
    out_of_range: str = "error",
    names: list[str] | None = None,
) -> np.ndarray:
    """(n_bands, n_src) resampling matrix for Gaussian bands (centre, FWHM in nm); rows sum to 1.

    Bands reaching beyond ±1.5 FWHM outside the source range raise :class:`SensorError`
    (``out_of_range="warn"``: warning and truncated response; ``"ignore"``: silently truncated).
    """
    c = np.asarray(centers_nm, dtype=np.float64).ravel()
    fw = np.asarray(fwhm_nm, dtype=np.float64).ravel()
    if c.shape != fw.shape or not (np.all(np.isfinite(fw)) and np.all(fw > 0)):
        raise SensorError("Gaussian SRFs need one positive finite FWHM (nm) per band centre")
    names = names or [f"{x:.1f} nm" for x in c]
    ws, order = _sorted_source(src_wavelength_nm)
    check_range(c - REACH_FWHM * fw, c + REACH_FWHM * fw, ws[0], ws[-1], names, out_of_range,
                f"Gaussian bands, ±{REACH_FWHM} FWHM")
    sig = fw * FWHM_TO_SIGMA
    if src_fwhm_nm is not None:
        sf = np.asarray(src_fwhm_nm, dtype=np.float64).ravel()
        if sf.size == 1:
            sf = np.full(ws.size, sf[0])
        elif sf.size != ws.size:
            raise SensorError(f"src_fwhm has {sf.size} values but the source has {ws.size} wavelengths")
        else:
            sf = sf[order]
        sf = np.where(np.isfinite(sf), sf, 0.0)
        # source width at each band centre (interpolated), removed in quadrature
        s_at = np.interp(c, ws, sf) * FWHM_TO_SIGMA
        sig = np.sqrt(np.maximum(sig**2 - s_at**2, 0.0))
    sig = np.maximum(sig, 1e-9)
    W = np.zeros((c.size, ws.size))
    # per band, only the segments within ±8 σ (the Gaussian mass beyond is < 1e-15)
    i_lo = np.clip(np.searchsorted(ws, c - 8 * sig, side="right") - 1, 0, ws.size - 2)
    i_hi = np.clip(np.searchsorted(ws, c + 8 * sig, side="left"), 1, ws.size - 1)
    for b in range(c.size):
        x0, x1 = ws[i_lo[b]:i_hi[b]], ws[i_lo[b] + 1:i_hi[b] + 1]
        d = x1 - x0
        t0 = (x0 - c[b]) / sig[b]
        t1 = (x1 - c[b]) / sig[b]
        i0 = ndtr(t1) - ndtr(t0)  # ∫ g over each segment
        i1 = c[b] * i0 + sig[b] * (np.exp(-0.5 * t0**2) - np.exp(-0.5 * t1**2)) / np.sqrt(2 * np.pi)  # ∫ λ g
        W[b, i_lo[b]:i_hi[b]] += (x1 * i0 - i1) / d
        W[b, i_lo[b] + 1:i_hi[b] + 1] += (i1 - x0 * i0) / d
    W = np.clip(W, 0.0, None)  # round-off
    return _unsort(_normalise(W, names), order)


def tabulated_srf_matrix(
    srf_wavelength_nm,
    srf_values,
    src_wavelength_nm,
    *,
    out_of_range: str = "error",
    names: list[str] | None = None,
) -> np.ndarray:
    """(n_bands, n_src) resampling matrix for tabulated responses ``srf_values`` (n_bands, n_srf_grid).

    The response and the source are both taken piecewise linear; their product is integrated with the
    trapezoid rule on the union of both grids. A band's support is where its response exceeds 1 % of
    its peak; it must lie inside the source range (see :func:`gaussian_srf_matrix` for the options).
    """
    g = np.asarray(srf_wavelength_nm, dtype=np.float64).ravel()
    r = np.atleast_2d(np.asarray(srf_values, dtype=np.float64))
    if r.shape[1] != g.size:
        raise SensorError(f"SRF table has {r.shape[1]} samples per band but {g.size} wavelengths")
    nb = r.shape[0]
    names = names or [f"band {i + 1}" for i in range(nb)]
    ws, order = _sorted_source(src_wavelength_nm)
    lo = np.empty(nb)
    hi = np.empty(nb)
    for b in range(nb):
        sup = np.flatnonzero(r[b] > SUPPORT_FRACTION * np.nanmax(r[b]))
        lo[b], hi[b] = g[sup[0]], g[sup[-1]]
    check_range(lo, hi, ws[0], ws[-1], names, out_of_range, "tabulated SRF support above 1 % of peak")
    W = np.zeros((nb, ws.size))
    inside = (g >= ws[0]) & (g <= ws[-1])
    u = np.union1d(g[inside], ws)  # source range only: the source is undefined outside it
    tw = np.zeros(u.size)  # trapezoid weights on u
    du = np.diff(u)
    tw[:-1] += du / 2
    tw[1:] += du / 2
    k = np.clip(np.searchsorted(ws, u, side="right") - 1, 0, ws.size - 2)
    f = np.clip((u - ws[k]) / (ws[k + 1] - ws[k]), 0.0, 1.0)
    for b in range(nb):
        ru = np.interp(u, g, np.nan_to_num(r[b]), left=0.0, right=0.0) * tw
        np.add.at(W[b], k, ru * (1 - f))
        np.add.at(W[b], k + 1, ru * f)
    return _unsort(_normalise(W, names), order)
