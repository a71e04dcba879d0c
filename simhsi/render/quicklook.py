"""Quicklook PNG of a rendered scene: RGB composite, abundance maps, a few spectra."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

RGB_NM = (640.0, 550.0, 460.0)


def _stretch(img: np.ndarray) -> np.ndarray:
    """Per-channel 2-98 % percentile stretch to [0, 1] (NaN -> 0)."""
    out = np.zeros_like(img, dtype=np.float64)
    for c in range(img.shape[-1]):
        ch = img[..., c]
        fin = np.isfinite(ch)
        if not fin.any():
            continue
        lo, hi = np.percentile(ch[fin], [2, 98])
        out[..., c] = np.clip((np.where(fin, ch, lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    return out


def rgb_bands(cube: xr.DataArray) -> list[int]:
    """Indices of the bands nearest 640 / 550 / 460 nm; among the finest-GSD bands when a ``gsd_m`` band
    coordinate says the GSDs differ (Sentinel-2: B4, B3, B2 rather than the 60 m B1)."""
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    cand = np.arange(wl.size)
    if "gsd_m" in cube.coords:
        gsd = np.asarray(cube["gsd_m"].values, dtype=np.float64)
        cand = np.flatnonzero(gsd == gsd.min())
    return [int(cand[np.argmin(np.abs(wl[cand] - t))]) for t in RGB_NM]


def write_quicklook(
    ds: xr.Dataset, path: str | os.PathLike[str], *, overwrite: bool = False, max_pixels: int = 512, n_spectra: int = 5
) -> Path:
    """Write a PNG: RGB composite (bands nearest 640/550/460 nm — among the finest-GSD bands when the bands'
    GSDs differ —, 2-98 % stretch), the abundance maps
    and the spectra of the purest pixel of up to ``n_spectra`` endmembers. Large scenes are subsampled
    (every k-th pixel) to at most ``max_pixels`` per side.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from simhsi._atomic import atomic_path
    from simhsi.render.export import cube_variable

    var = cube_variable(ds)
    cube = ds[var]
    h, w = cube.sizes["y"], cube.sizes["x"]
    k = max(1, int(np.ceil(max(h, w) / max_pixels)))
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    sub = cube.isel(y=slice(None, None, k), x=slice(None, None, k)).values.astype(np.float32)
    rgb_idx = rgb_bands(cube)
    rgb = _stretch(sub[..., rgb_idx])
    ab = ds["abundances"].isel(y=slice(None, None, k), x=slice(None, None, k)).values if "abundances" in ds else None
    p = 0 if ab is None else ab.shape[0]
    ncol = 2 + p
    fig, axes = plt.subplots(1, ncol, figsize=(3.2 * ncol, 3.4), squeeze=False)
    ax = axes[0]
    ax[0].imshow(rgb)
    ax[0].set_title(f"{ds.attrs.get('sensor', '')} {ds.attrs.get('processing_level', '')} RGB "
                    f"({', '.join(f'{wl[i]:.0f}' for i in rgb_idx)} nm)", fontsize=8)
    names = [str(n) for n in ds["endmember"].values] if p else []
    for j in range(p):
        ax[1 + j].imshow(ab[j], vmin=0, vmax=1, cmap="viridis")
        ax[1 + j].set_title(f"abundance: {names[j]}", fontsize=8)
    for a in ax[: 1 + p]:
        a.set_xticks([])
        a.set_yticks([])
    axs = ax[-1]
    if p:
        flat = ab.reshape(p, -1)
        for j in range(min(p, n_spectra)):
            score = np.where(np.isfinite(flat[j]), flat[j], -1)
            i = int(np.argmax(score))
            iy, ix = divmod(i, ab.shape[2])
            axs.plot(wl, sub[iy, ix], lw=0.8, label=f"{names[j]} ({flat[j, i]:.2f})")
        axs.legend(fontsize=6)
    else:
        axs.plot(wl, np.nanmean(sub.reshape(-1, wl.size), axis=0), lw=0.8, label="mean")
    axs.set_xlabel("wavelength (nm)", fontsize=8)
    axs.set_ylabel(f"{var} ({cube.attrs.get('units', '')})", fontsize=8)
    axs.set_title("purest-pixel spectra", fontsize=8)
    axs.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it 0600
    plt.close(fig)
    return Path(path)
