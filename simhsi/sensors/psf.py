"""Spatial stage: Gaussian point-spread function and integration to the sensor's ground sampling distance.

The mixing is linear, so the PSF and the resampling are applied to the p abundance maps (not to the
hundreds of bands). Each sensor pixel = mean over its GSD footprint (box, the detector's aperture) of the
scene convolved with a separable Gaussian of σ = ``sigma_gsd`` · GSD. With an integer ratio
GSD/scene-pixel this is a block mean; otherwise each output pixel averages the input pixels it overlaps,
weighted by overlap length (separable along y and x). Output size: floor(H · scene_pixel / GSD).
Weights sum to 1, so abundances stay on the simplex.
"""

from __future__ import annotations

import math

import numpy as np

from simhsi.errors import ParameterError


def _check(scene_pixel_m: float, gsd_m: float, sigma_gsd: float) -> None:
    for name, v in (("scene_pixel_m", scene_pixel_m), ("gsd_m", gsd_m)):
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ParameterError(f"{name} must be a positive number of metres; got {v!r}")
    if not (isinstance(sigma_gsd, int | float) and math.isfinite(sigma_gsd) and sigma_gsd >= 0):
        raise ParameterError(f"sigma_gsd must be a number >= 0 (PSF sigma in GSD units); got {sigma_gsd!r}")


def psf_kernel(scene_pixel_m: float, gsd_m: float, sigma_gsd: float, truncate: float = 4.0) -> np.ndarray:
    """2-D Gaussian PSF sampled at scene pixels (odd square, sums to 1); σ = sigma_gsd·gsd_m / scene_pixel_m px."""
    _check(scene_pixel_m, gsd_m, sigma_gsd)
    s = sigma_gsd * gsd_m / scene_pixel_m
    r = max(int(math.ceil(truncate * s)), 0)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / s) ** 2) if s > 0 else (x == 0).astype(np.float64)
    g /= g.sum()
    return np.outer(g, g)


def area_weights(n_in: int, factor: float) -> np.ndarray:
    """(n_out, n_in) overlap-weight matrix for output pixels ``factor`` input pixels wide; rows sum to 1."""
    n_out = int(math.floor(n_in / factor + 1e-9))
    if n_out < 1:
        raise ParameterError(
            f"the scene ({n_in} px) is smaller than one sensor pixel ({factor:g} scene px); use a larger scene"
        )
    lo = np.arange(n_out) * factor
    hi = lo + factor
    edges_lo = np.arange(n_in, dtype=np.float64)
    ov = np.clip(np.minimum(hi[:, None], edges_lo[None, :] + 1) - np.maximum(lo[:, None], edges_lo[None, :]), 0, None)
    return ov / ov.sum(axis=1, keepdims=True)


def apply_psf_and_resample(abund, scene_pixel_m: float, gsd_m: float, sigma_gsd: float):
    """Blur (p, H, W) abundance maps by the sensor PSF and integrate them to the sensor GSD → (p, H', W').

    ``abund`` may be numpy or dask (lazy result, blur by ``map_overlap``). Pixel sizes in metres;
    ``sigma_gsd`` is the PSF σ in GSD units (0: no blur, box integration only). NaN pixels are not
    supported (fill them first).
    """
    _check(scene_pixel_m, gsd_m, sigma_gsd)
    if getattr(abund, "ndim", None) != 3:
        raise ParameterError(f"abundances must be (p, H, W); got shape {getattr(abund, 'shape', None)}")
    s = sigma_gsd * gsd_m / scene_pixel_m
    factor = gsd_m / scene_pixel_m
    _, h, w = abund.shape
    ry, rx = area_weights(h, factor), area_weights(w, factor)
    is_dask = type(abund).__module__.startswith("dask")
    from scipy.ndimage import gaussian_filter

    if is_dask:
        import dask.array as da

        x = abund.astype(np.float32) if abund.dtype != np.float64 else abund
        if s > 0:
            depth = int(math.ceil(4.0 * s))
            # each block needs at least `depth` pixels for the overlap
            if min(min(c) for c in x.chunks[1:]) < depth:
                x = x.rechunk({1: max(depth, x.chunksize[1]), 2: max(depth, x.chunksize[2])})
            x = x.map_overlap(
                gaussian_filter, depth={0: 0, 1: depth, 2: depth}, boundary="reflect",
                sigma=(0, s, s), mode="reflect", truncate=4.0, dtype=x.dtype,
            )
        if abs(factor - round(factor)) < 1e-9 and factor >= 1:
            f = int(round(factor))
            x = x[:, : (h // f) * f, : (w // f) * f]
            return da.coarsen(np.mean, x, {1: f, 2: f}, trim_excess=True).astype(x.dtype)
        y = da.einsum("ij,pjx->pix", ry.astype(x.dtype), x)
        return da.einsum("pyj,kj->pyk", y, rx.astype(x.dtype))
    a = np.asarray(abund)
    dt = a.dtype if a.dtype.kind == "f" else np.float64
    a = a.astype(dt, copy=False)
    if s > 0:
        a = gaussian_filter(a, sigma=(0, s, s), mode="reflect", truncate=4.0)
    if abs(factor - round(factor)) < 1e-9 and factor >= 1:
        f = int(round(factor))
        hh, ww = (h // f) * f, (w // f) * f
        return a[:, :hh, :ww].reshape(a.shape[0], hh // f, f, ww // f, f).mean(axis=(2, 4)).astype(dt)
    return np.einsum("ij,pjx,kx->pik", ry.astype(dt), a, rx.astype(dt), optimize=True)
