"""Base class and registry of the blind unmixing methods.

Every method is a small scikit-learn-style estimator: ``__init__`` only stores hyperparameters,
``fit(cube)`` does the work and returns an unmixing result (xarray Dataset):

* ``endmembers`` (endmember, band): spectra in the cube's units, at the kept bands;
* ``abundances`` (endmember, y, x): >= 0, sum to 1 over ``endmember``, NaN at masked pixels;
* ``mask`` (y, x): True where the pixel was used (valid in every kept band);
* attrs: ``method``, ``n_endmembers``, ``seed``, hyperparameters, ``runtime_s``, ``rmse`` (reconstruction
  RMSE over valid pixels, cube units).

Orientation: methods work on Y = E·A with Y (bands × pixels), E (bands × p), A (p × pixels).
Preprocessing shared by all methods (:func:`prepare`): bands with any non-finite value at every
pixel or flagged in a ``bad_band`` coord are dropped; pixels with any non-finite value in a kept
band are masked; the data are divided by their global maximum (one scalar, ``scale``) before fitting
and the endmembers multiplied back afterwards, so hyperparameters do not depend on the units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from simhsi.errors import DataError, ParameterError, check_param

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

_REGISTRY: dict[str, type[Unmixer]] = {}


def register(cls: type[Unmixer]) -> type[Unmixer]:
    """Class decorator: make a method available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of all registered methods."""
    import simhsi.unmixing  # noqa: F401  (import registers every method)

    return sorted(_REGISTRY)


def get_method(name: str) -> type[Unmixer]:
    """The method class registered under ``name``; a clear error for an unknown name."""
    names = available_methods()
    if name not in _REGISTRY:
        raise ParameterError(f"unknown unmixing method {name!r}; available: {', '.join(names)}")
    return _REGISTRY[name]


@dataclass
class Prepared:
    """A cube made ready for fitting: Y (bands × valid pixels) scaled by ``scale``."""

    Y: np.ndarray  # (B, N) float64, divided by scale
    mask: np.ndarray  # (H, W) bool, True where used
    band_index: np.ndarray  # indices of kept bands in the input cube
    scale: float
    shape_yx: tuple[int, int]


def prepare(cube: xr.DataArray, n_endmembers: int, owner: str = "unmixing") -> Prepared:
    """Drop bad bands, mask nodata pixels, scale by the global max; validate p against the data."""
    from simhsi.conventions import BAD_BAND, check_cube

    c = check_cube(cube)
    data = np.asarray(c.values, dtype=np.float64)
    h, w, b = data.shape
    flat = data.reshape(h * w, b)
    finite = np.isfinite(flat)
    keep = finite.any(axis=0)
    if BAD_BAND in c.coords:
        keep &= ~np.asarray(c.coords[BAD_BAND].values, dtype=bool)
    band_index = np.flatnonzero(keep)
    if band_index.size == 0:
        raise DataError("the cube has no valid band (all NaN or flagged bad)")
    pix_ok = finite[:, band_index].all(axis=1)
    n_valid = int(pix_ok.sum())
    check_param("n_endmembers", n_endmembers, isinstance(n_endmembers, int | np.integer) and n_endmembers >= 2,
                "an int >= 2", owner)
    check_param("n_endmembers", n_endmembers, n_endmembers < band_index.size,
                f"an int in [2, {band_index.size}) (fewer than the {band_index.size} valid bands)", owner)
    if n_valid == 0:
        raise DataError("the cube has no valid pixel (every pixel has NaN in some band)")
    if n_valid < n_endmembers:
        raise DataError(f"only {n_valid} valid pixels for {n_endmembers} endmembers")
    Y = flat[pix_ok][:, band_index].T
    scale = float(np.max(np.abs(Y)))
    if scale == 0 or float(np.ptp(Y)) <= 1e-12 * max(scale, 1.0):
        raise DataError("the cube is constant; there is nothing to unmix")
    return Prepared(Y=Y / scale, mask=pix_ok.reshape(h, w), band_index=band_index, scale=scale, shape_yx=(h, w))


class Unmixer:
    """Base of every unmixing method. Subclasses set ``name``/``family`` and implement ``_fit``."""

    name: ClassVar[str] = "base"
    family: ClassVar[str] = "none"  # "geometric", "least-squares", "deep", "statistical"

    def __init__(self, n_endmembers: int = 3, *, seed: int = 0) -> None:
        self.n_endmembers = n_endmembers
        self.seed = seed

    # -- to implement -------------------------------------------------------------------------
    def _fit(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """Return E (B × p) and A (p × N) for the prepared, scaled Y (B × N)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as stored by ``__init__`` (public attributes not ending in ``_``)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and not k.endswith("_")}

    def fit(self, cube: xr.DataArray, progress: bool = False) -> xr.Dataset:
        """Unmix ``cube`` (y, x, band); return the unmixing result Dataset (see module docs)."""
        prep = prepare(cube, self.n_endmembers, owner=type(self).__name__)
        rng = np.random.default_rng(self.seed)
        t0 = time.perf_counter()
        E, A = self._fit(prep, rng, progress)
        runtime = time.perf_counter() - t0
        E = np.asarray(E, dtype=np.float64)
        A = np.asarray(A, dtype=np.float64)
        B, N = prep.Y.shape
        p = self.n_endmembers
        if E.shape != (B, p) or A.shape != (p, N):
            raise RuntimeError(f"{self.name} returned E {E.shape}, A {A.shape}; expected {(B, p)}, {(p, N)}")
        self.endmembers_ = E * prep.scale
        self.abundances_ = A
        rmse = float(np.sqrt(np.mean((prep.Y - E @ A) ** 2))) * prep.scale
        return build_result(cube, prep, E * prep.scale, A, method=self.name, params=self.get_params(),
                            runtime_s=runtime, rmse=rmse, family=self.family)


def build_result(
    cube: xr.DataArray,
    prep: Prepared,
    E: np.ndarray,
    A: np.ndarray,
    *,
    method: str,
    params: dict[str, Any],
    runtime_s: float,
    rmse: float,
    family: str = "",
) -> xr.Dataset:
    """Assemble the unmixing result Dataset from E (B × p, cube units) and A (p × N valid pixels)."""
    import xarray as xr

    from simhsi.conventions import (
        ABUNDANCE_DIMS,
        BAND,
        ENDMEMBER,
        FWHM,
        WAVELENGTH,
        default_endmember_names,
        netcdf_safe,
        provenance_attrs,
    )

    p = E.shape[1]
    h, w = prep.shape_yx
    full = np.full((p, h * w), np.nan)
    full[:, prep.mask.ravel()] = A
    c = cube.transpose("y", "x", "band")
    names = default_endmember_names(p)
    wl = np.asarray(c[WAVELENGTH].values)[prep.band_index]
    coords: dict[str, Any] = {ENDMEMBER: names, WAVELENGTH: (BAND, wl, {"units": "nm"})}
    if FWHM in c.coords:
        coords[FWHM] = (BAND, np.asarray(c[FWHM].values)[prep.band_index], {"units": "nm"})
    for dim in ("y", "x"):
        if dim in c.coords:
            coords[dim] = c[dim].values
    ds = xr.Dataset(
        {
            "endmembers": ((ENDMEMBER, BAND), E.T, {"units": c.attrs.get("units", "1")}),
            "abundances": (ABUNDANCE_DIMS, full.reshape(p, h, w), {"units": "1"}),
            "mask": (("y", "x"), prep.mask),
        },
        coords=coords,
    )
    attrs = {"method": method, "family": family, "n_endmembers": p, "runtime_s": float(runtime_s),
             "rmse": float(rmse), "scale": float(prep.scale),
             "hyperparameters": netcdf_safe(params)}
    for k, v in params.items():
        attrs[f"param_{k}"] = netcdf_safe(v)
    attrs["seed"] = int(params.get("seed", 0))
    ds.attrs.update(provenance_attrs(**attrs))
    return ds
