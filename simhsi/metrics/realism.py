"""Abundance realism: statistics comparing a set of generated abundance patches with real ones.

Definitions (docs/metrics.md, "Abundance realism"). Both sets are brought to patches of one size
and p; channels of an abundance map have no fixed meaning across scenes, so each patch's channels
are sorted by decreasing mean abundance before any per-channel statistic.

* ``hist_w1``: mean over channels of the Wasserstein-1 distance between the pooled pixel values.
* ``psd_log_distance``: mean over channels and radial frequencies of |log10 PSD_real − log10 PSD_synth|,
  PSD the radially averaged periodogram of each (mean-removed) map, averaged over patches.
* ``corr_frobenius``: Frobenius norm of the difference of the cross-channel correlation matrices.
* ``purity_*``: fraction of pixels whose largest abundance exceeds 0.9; ``entropy_*``: mean per-pixel
  Shannon entropy in nats; ``*_diff`` the absolute differences.
* memorisation (with ``train``): median RMS distance from each generated patch to its nearest training
  patch, and the same for the real (held-out) patches; ``memorisation_ratio`` = synth / real (well
  below 1 means the generator copies its training set).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simhsi.errors import DataError

PURE_THRESHOLD = 0.9


def _as_array(obj: Any, what: str) -> np.ndarray:
    """(n, p, h, w) float64 array from a DataArray/ndarray with 3 (endmember, y, x) or 4 dims."""
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        if "abundances" not in obj:
            raise DataError(f"{what}: dataset has no 'abundances' variable")
        obj = obj["abundances"]
    if isinstance(obj, xr.DataArray):
        dims = [d for d in ("endmember", "y", "x") if d in obj.dims]
        if len(dims) != 3:
            raise DataError(f"{what} must have dims (..., endmember, y, x); got {obj.dims}")
        lead = [d for d in obj.dims if d not in dims]
        obj = obj.transpose(*lead, *dims).values
    a = np.asarray(obj, dtype=np.float64)
    if a.ndim == 3:
        a = a[None]
    if a.ndim > 4:
        a = a.reshape(-1, *a.shape[-3:])
    if a.ndim != 4:
        raise DataError(f"{what} must be (sample, endmember, y, x) or (endmember, y, x); got shape {a.shape}")
    return a


def extract_patches(abundances: Any, size: int, stride: int | None = None) -> np.ndarray:
    """Square patches (n, p, size, size) of an abundance map or set, dropping patches with NaN
    (nodata) and, for NaN-padded unmixing runs, the all-NaN extra channels."""
    a = _as_array(abundances, "abundances")
    stride = stride or size
    keep = ~np.all(np.isnan(a), axis=(0, 2, 3))
    a = a[:, keep]
    _, p, h, w = a.shape
    if h < size or w < size:
        raise DataError(f"maps of {h}×{w} pixels are smaller than the patch size {size}")
    out = [
        a[i, :, y : y + size, x : x + size]
        for i in range(a.shape[0])
        for y in range(0, h - size + 1, stride)
        for x in range(0, w - size + 1, stride)
    ]
    patches = np.stack(out)
    ok = np.all(np.isfinite(patches), axis=(1, 2, 3))
    return patches[ok]


def sort_channels(patches: np.ndarray) -> np.ndarray:
    """Reorder each patch's channels by decreasing mean abundance."""
    order = np.argsort(-np.nanmean(patches, axis=(2, 3)), axis=1, kind="stable")
    return np.take_along_axis(patches, order[:, :, None, None], axis=1)


def radial_psd(patches: np.ndarray) -> np.ndarray:
    """Radially averaged periodogram of each (mean-removed) map, averaged over patches: (p, n_radii)."""
    n, p, h, w = patches.shape
    x = patches - patches.mean(axis=(2, 3), keepdims=True)
    psd = np.abs(np.fft.fft2(x)) ** 2 / (h * w)
    fy = np.fft.fftfreq(h)[:, None] * h
    fx = np.fft.fftfreq(w)[None, :] * w
    r = np.rint(np.hypot(fy * min(h, w) / h, fx * min(h, w) / w)).astype(int)
    nr = min(h, w) // 2
    sel = (r >= 1) & (r <= nr)
    counts = np.bincount(r[sel], minlength=nr + 1)[1:]
    mean_psd = psd.mean(axis=0)  # (p, h, w)
    out = np.empty((p, nr))
    for c in range(p):
        out[c] = np.bincount(r[sel], weights=mean_psd[c][sel], minlength=nr + 1)[1:] / np.maximum(counts, 1)
    return out


def _corr(patches: np.ndarray) -> np.ndarray:
    p = patches.shape[1]
    flat = np.moveaxis(patches, 1, 0).reshape(p, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(flat)
    return np.nan_to_num(c, nan=0.0)


def _entropy(patches: np.ndarray) -> float:
    a = np.clip(patches, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = -np.where(a > 0, a * np.log(a), 0.0).sum(axis=1)
    return float(e.mean())


def _purity(patches: np.ndarray) -> float:
    return float((patches.max(axis=1) > PURE_THRESHOLD).mean())


def _nn_rms(query: np.ndarray, ref: np.ndarray, chunk: int = 256) -> np.ndarray:
    """RMS distance of each query patch to its nearest reference patch."""
    q = query.reshape(len(query), -1)
    r = ref.reshape(len(ref), -1)
    r2 = (r**2).sum(axis=1)
    out = np.empty(len(q))
    for i in range(0, len(q), chunk):
        qi = q[i : i + chunk]
        d2 = (qi**2).sum(axis=1)[:, None] + r2[None] - 2.0 * qi @ r.T
        out[i : i + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0) / q.shape[1])
    return out


def _common(real: np.ndarray, synth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if real.shape[1] != synth.shape[1]:
        raise DataError(f"the sets have different numbers of endmembers ({real.shape[1]} vs {synth.shape[1]})")
    size = min(real.shape[2], real.shape[3], synth.shape[2], synth.shape[3])
    if real.shape[2:] != (size, size):
        real = extract_patches(real, size)
    if synth.shape[2:] != (size, size):
        synth = extract_patches(synth, size)
    if len(real) == 0 or len(synth) == 0:
        raise DataError("no valid (NaN-free) patch to compare")
    return real, synth


def realism_metrics(
    real: Any,
    synth: Any,
    *,
    train: Any | None = None,
    seed: int = 0,
    max_values: int = 200_000,
) -> dict[str, float]:
    """Realism distances between a real and a synthetic set of abundance patches (lower is closer).

    ``real``/``synth``: DataArrays or arrays (sample, endmember, y, x) or single maps (endmember, y, x);
    if patch sizes differ both are cut into square patches of the smaller size. ``train``: the
    generator's training patches, for the memorisation check. Histogram distances use at most
    ``max_values`` pixel values per channel, drawn with ``seed``.
    """
    from scipy.stats import wasserstein_distance

    r, s = _common(_as_array(real, "real"), _as_array(synth, "synthetic"))
    r, s = sort_channels(r), sort_channels(s)
    rng = np.random.default_rng(seed)
    p = r.shape[1]

    def values(a: np.ndarray, c: int) -> np.ndarray:
        v = a[:, c].ravel()
        return v if v.size <= max_values else rng.choice(v, max_values, replace=False)

    w1 = [wasserstein_distance(values(r, c), values(s, c)) for c in range(p)]
    eps = 1e-12
    psd_r, psd_s = radial_psd(r), radial_psd(s)
    psd_d = np.mean(np.abs(np.log10(psd_r + eps) - np.log10(psd_s + eps)))
    out: dict[str, float] = {
        "n_real": float(len(r)),
        "n_synth": float(len(s)),
        "hist_w1": float(np.mean(w1)),
        "psd_log_distance": float(psd_d),
        "corr_frobenius": float(np.linalg.norm(_corr(r) - _corr(s))),
        "purity_real": _purity(r),
        "purity_synth": _purity(s),
        "entropy_real": _entropy(r),
        "entropy_synth": _entropy(s),
    }
    out["purity_diff"] = abs(out["purity_real"] - out["purity_synth"])
    out["entropy_diff"] = abs(out["entropy_real"] - out["entropy_synth"])
    if train is not None:
        t, _ = _common(_as_array(train, "train"), s)
        t = sort_channels(t)
        nn_s = float(np.median(_nn_rms(s, t)))
        nn_r = float(np.median(_nn_rms(r, t)))
        out["nn_train_synth_median"] = nn_s
        out["nn_train_real_median"] = nn_r
        out["memorisation_ratio"] = nn_s / nn_r if nn_r > 1e-9 else float("nan")
    return out


#: The distances of :func:`realism_metrics` (lower = more realistic); the others are descriptive.
DISTANCES = ("hist_w1", "psd_log_distance", "corr_frobenius", "purity_diff", "entropy_diff")


def realism_table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per compared set (e.g. "real vs real", "ddpm", "grf")."""
    keys = [k for k in (*DISTANCES, "memorisation_ratio") if any(k in r for r in results.values())]
    width = max([len(n) for n in results] + [8])
    lines = [f"{'set':<{width}}  " + "  ".join(f"{k:>16}" for k in keys)]
    for name, r in results.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{r.get(k, float('nan')):>16.4f}" for k in keys))
    return "\n".join(lines)
