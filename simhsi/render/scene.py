"""Inputs of a scene: abundance files, endmember libraries, and the embedded demo defaults.

Demo scene (``simhsi render-cube --sensor prisma --out scene.nc`` with no other input): abundance maps from

1. the default trained generator model shipped in ``simhsi/data/default_model`` (``simhsi.diffusion``),
   generated on the sensor grid (the PSF stage runs at the GSD);
2. else (no model, or it fails) the Gaussian-random-field generator (``simhsi.diffusion.grf``, HIST-style
   fields, no training) at :data:`DEMO_SCENE_PIXEL_M` (3x finer than PRISMA's 30 m, so the resampling runs),

and the :data:`DEMO_P` measured spectra :data:`DEMO_NAMES` from the bundled real library (``simhsi.library``).
The bundled spectra end at 2500 nm, so the last PRISMA bands (centre + 1.5 FWHM up to ~2511 nm) reach
outside the library: with the bundled library the CLI warns (truncated band response) instead of failing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.errors import FormatError, InputFileError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

log = logging.getLogger(__name__)

DEMO_P = 5
DEMO_SIZE = (256, 256)  # sensor pixels
DEMO_SCENE_PIXEL_M = 10.0
DEMO_GRF_THETA_PX = 60.0
#: Demo spectra (bundled library, all USGS splib07a, measured 350-2500 nm): a conifer / dry grass / water /
#: clay / carbonate landscape. The earthlib soils and urban spectra stop at 2450 nm.
DEMO_NAMES = ("engelmann_spruce_needles", "grass_golden_dry", "seawater_coastal_chl", "illite_imt1", "calcite")


def _abundance_var(ds: xr.Dataset, path: Any) -> str:
    if "abundances" in ds.data_vars:
        return "abundances"
    for name, v in ds.data_vars.items():
        if {"endmember", "y", "x"} <= set(v.dims):
            return str(name)
    raise FormatError(f"no abundance variable (dims endmember, y, x) in the file; it has {list(ds.data_vars)}",
                      path=path)


def read_abundances(path: str | os.PathLike[str], *, sample: int = 0) -> xr.DataArray:
    """Abundance maps (endmember, y, x) from a NetCDF written by simhsi (generate-abundances, unmix, a scene).

    Extra leading dims (``sample``, ``run``, ...) are indexed at ``sample`` (default the first).
    """
    from simhsi.io.netcdf import open_dataset

    ds = open_dataset(path)
    name = _abundance_var(ds, path)
    a = ds[name]
    for dim in [d for d in a.dims if d not in ("endmember", "y", "x")]:
        n = a.sizes[dim]
        if not 0 <= sample < n:
            raise ParameterError(f"The 'sample' parameter must be in [0, {n}) for {os.fspath(path)!r} "
                                 f"(dim {dim!r}). Got {sample!r} instead.")
        a = a.isel({dim: sample})
    a = a.transpose("endmember", "y", "x")
    a.attrs.setdefault("source_file", os.fspath(path))
    return a


def load_scene_library(
    source: str | os.PathLike[str] = "bundled",
    p: int = DEMO_P,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    wavelength_range: tuple[float, float] | None = None,
) -> xr.DataArray:
    """``p`` spectra (endmember, band) from ``source`` ("bundled" or a file :func:`simhsi.library.load_library`
    reads): by ``names`` when given; from the bundled library with p == :data:`DEMO_P` the
    :data:`DEMO_NAMES`; else at random with ``seed`` among the spectra measured over ``wavelength_range``
    (nm; clipped to the library's range) — all spectra when a file holds exactly p.
    """
    try:
        from simhsi.library import load_library, select_endmembers
    except ImportError as exc:  # pragma: no cover - library module missing
        raise InputFileError(f"endmember libraries are not available in this installation ({exc})") from None
    bundled = str(source).lower() in ("bundled", "curated", "default")
    if not bundled and not os.path.exists(source):
        raise InputFileError("no such library file", path=source)
    lib = load_library("bundled" if bundled else source)
    if names:
        return select_endmembers(lib, len(names), names=list(names), seed=seed)
    if bundled and p == DEMO_P:
        return select_endmembers(lib, p, names=list(DEMO_NAMES), seed=seed)
    if lib.sizes["endmember"] == p:
        return lib
    rng = None
    if wavelength_range is not None:
        wl = np.asarray(lib["wavelength"].values, dtype=np.float64)
        rng = (max(float(wavelength_range[0]), float(wl.min())), min(float(wavelength_range[1]), float(wl.max())))
    return select_endmembers(lib, p, seed=seed, wavelength_range=rng)


def _default_generator_model() -> str | None:
    """The installed default diffusion model directory, or None."""
    from simhsi.diffusion.generate import default_model_dir

    return default_model_dir()


def demo_abundances(size: tuple[int, int] = DEMO_SIZE, p: int = DEMO_P, *, seed: int = 0,
                    scene_pixel_m: float | None = None, gsd_m: float = 30.0, progress: bool = True) -> xr.DataArray:
    """Demo abundance maps for a scene of ``size`` sensor pixels.

    With the default diffusion model the maps are generated on the sensor grid (``scene_pixel_m`` =
    ``gsd_m``; 256 x 256 px take one to three minutes on 2 CPU cores); with the Gaussian-field fallback at
    ``DEMO_SCENE_PIXEL_M`` (finer than the GSD, so the PSF + resampling stage runs). An explicit
    ``scene_pixel_m`` (m) overrides both. Returns (endmember, y, x) with ``attrs["generator"]`` naming the
    source used and ``attrs["pixel_m"]`` the pixel size of the maps in metres.
    """
    import xarray as xr

    model = _default_generator_model()
    if model is not None:
        pixel = float(scene_pixel_m or gsd_m)
        h, w = (int(round(s * gsd_m / pixel)) for s in size)
        try:
            from simhsi.diffusion.generate import generate_abundances

            out = generate_abundances(model, n=1, size=(h, w), p=p, seed=seed, progress=progress)
            a = out["abundances"] if isinstance(out, xr.Dataset) else out
            a = a.isel(sample=0) if "sample" in a.dims else a
            a.attrs["generator"] = f"ddpm default model {model}"
            a.attrs["pixel_m"] = pixel
            return a
        except Exception as exc:  # noqa: BLE001 - fall back to GRF, loudly
            log.warning("default generator model failed (%s); using Gaussian random fields", exc)
    from simhsi.diffusion.grf import gaussian_random_field_abundances

    pixel = float(scene_pixel_m or DEMO_SCENE_PIXEL_M)
    h, w = (int(round(s * gsd_m / pixel)) for s in size)
    a = gaussian_random_field_abundances(1, (h, w), p, theta=DEMO_GRF_THETA_PX, seed=seed).isel(sample=0)
    a.attrs["generator"] = f"grf (Gaussian random fields, spheric, theta {DEMO_GRF_THETA_PX:g} px)"
    a.attrs["pixel_m"] = pixel
    return a
