"""Procedural abundance baseline: HIST-style Gaussian random fields (no training).

Each endmember gets an independent stationary Gaussian random field with a chosen covariance
kernel (circulant embedding on an FFT grid whose size is the next power of two that holds the
scene plus the kernel range). Each map is min-max normalised to [0, 1]; then, per pixel, the
dominant endmember keeps its value ``v_max`` and the others are rescaled to sum to ``1 − v_max``
(HIST's renormalisation, see docs/generation.md). The result is a valid abundance map.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simhsi.errors import ParameterError, check_param

KERNELS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    # correlation functions c(h) with c(0) = 1; h and theta in pixels
    "spheric": lambda h, t: np.where(h < t, 1.0 - 1.5 * (h / t) + 0.5 * (h / t) ** 3, 0.0),
    "exponential": lambda h, t: np.exp(-h / t),
    "gaussian": lambda h, t: np.exp(-((h / t) ** 2)),
    "rational": lambda h, t: 1.0 / (1.0 + (h / t) ** 2),
    "matern": lambda h, t: (1.0 + np.sqrt(3.0) * h / t) * np.exp(-np.sqrt(3.0) * h / t),  # nu = 3/2
}


def correlation(kernel: str, lag: np.ndarray | float, theta: float) -> np.ndarray:
    """The correlation c(lag) of ``kernel`` with range/scale ``theta`` (both in pixels)."""
    if kernel not in KERNELS:
        raise ParameterError(f"unknown GRF kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    return KERNELS[kernel](np.asarray(lag, dtype=np.float64), float(theta))


def _next_pow2(n: int) -> int:
    return 1 << int(np.ceil(np.log2(max(n, 1))))


def gaussian_random_field(
    shape: tuple[int, int],
    *,
    kernel: str = "spheric",
    theta: float = 100.0,
    rng: np.random.Generator | None = None,
    n: int = 1,
) -> np.ndarray:
    """``n`` zero-mean, unit-variance stationary Gaussian fields of ``shape`` (pixels), shape (n, H, W).

    Exact circulant embedding: the covariance on a periodic FFT grid of side
    ``next_pow2(max(H, W) + support)`` has eigenvalues ``fft2(c)`` (negatives clipped to 0);
    a field is ``ifft2(sqrt(λ) · fft2(white noise))`` cropped to ``shape``.
    """
    check_param("theta", theta, theta > 0, "a positive length in pixels", "gaussian_random_field")
    rng = rng or np.random.default_rng()
    h, w = shape
    support = theta if kernel == "spheric" else 3.0 * theta
    m = _next_pow2(int(max(h, w) + min(support, 4 * max(h, w))))
    d = np.minimum(np.arange(m), m - np.arange(m)).astype(np.float64)
    dist = np.hypot(d[:, None], d[None, :])
    lam = np.fft.fft2(correlation(kernel, dist, theta)).real
    lam = np.clip(lam, 0.0, None)
    sq = np.sqrt(lam)
    white = rng.standard_normal((n, m, m))
    fields = np.fft.ifft2(sq[None] * np.fft.fft2(white)).real[:, :h, :w]
    return fields


def dominant_renormalise(maps: np.ndarray) -> np.ndarray:
    """HIST renormalisation of (p, H, W) maps in [0, 1]: the dominant endmember keeps its value
    ``v_max``; the others are rescaled to sum to ``1 − v_max`` (equal shares if they are all 0)."""
    p = maps.shape[0]
    vmax = maps.max(axis=0)
    dom = maps.argmax(axis=0)
    is_dom = np.arange(p)[:, None, None] == dom[None]
    others = np.where(is_dom, 0.0, maps)
    s = others.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(s > 0, others * ((1.0 - vmax) / s), (1.0 - vmax) / (p - 1))
    out = np.where(is_dom, vmax, np.where(is_dom, 0.0, scaled))
    return out


def gaussian_random_field_abundances(
    n: int,
    size: tuple[int, int],
    p: int,
    *,
    kernel: str = "spheric",
    theta: float = 100.0,
    seed: int = 0,
):
    """``n`` synthetic abundance maps of ``size`` (H, W) pixels and ``p`` endmembers.

    Returns an ``xarray.DataArray`` (sample, endmember, y, x), on the simplex at every pixel, with the
    generator settings in attrs. ``theta`` is the kernel range (spheric) or scale (others) in pixels.
    """
    import xarray as xr

    from simhsi.conventions import default_endmember_names, provenance_attrs
    from simhsi.simplex import project_simplex

    check_param("n", n, isinstance(n, int | np.integer) and n >= 1, "an int >= 1", "gaussian_random_field_abundances")
    check_param("p", p, isinstance(p, int | np.integer) and p >= 2, "an int >= 2", "gaussian_random_field_abundances")
    h, w = (int(s) for s in size)
    check_param("size", size, h >= 2 and w >= 2, "two ints >= 2 (H, W)", "gaussian_random_field_abundances")
    if kernel not in KERNELS:
        raise ParameterError(f"unknown GRF kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    out = np.empty((n, p, h, w), dtype=np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, i])  # sample i is the same whatever n is
        f = gaussian_random_field((h, w), kernel=kernel, theta=theta, rng=rng, n=p)
        lo = f.min(axis=(1, 2), keepdims=True)
        hi = f.max(axis=(1, 2), keepdims=True)
        maps = (f - lo) / np.maximum(hi - lo, 1e-12)
        a = dominant_renormalise(maps)
        out[i] = project_simplex(a, axis=0).astype(np.float32)  # removes float round-off only
    return xr.DataArray(
        out,
        dims=("sample", "endmember", "y", "x"),
        coords={"endmember": default_endmember_names(p), "sample": np.arange(n)},
        name="abundances",
        attrs={"units": "1", "long_name": "fractional abundance",
               **provenance_attrs(generator="grf", kernel=kernel, theta_px=float(theta), seed=int(seed))},
    )
