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

    Y: np.ndarray  # (B, N) float (Unmixer.work_dtype, float64 by default), divided by scale
    mask: np.ndarray  # (H, W) bool, True where used
    band_index: np.ndarray  # indices of kept bands in the input cube
    scale: float
    shape_yx: tuple[int, int]


def prepare(cube: xr.DataArray, n_endmembers: int, owner: str = "unmixing",
            dtype: type | np.dtype = np.float64) -> Prepared:
    """Drop bad bands, mask nodata pixels, scale by the global max; validate p against the data.

    ``dtype``: dtype of ``Prepared.Y`` (float64 by default; methods that work in chunks may ask for
    float32 to halve the memory of big scenes). At most about two copies of the valid data are held
    at once (the input and Y).
    """
    from simhsi.conventions import BAD_BAND, check_cube

    c = check_cube(cube)
    check_param("n_endmembers", n_endmembers, isinstance(n_endmembers, int | np.integer) and n_endmembers >= 2,
                "an int >= 2", owner)
    data = np.asarray(c.values)
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    h, w, b = data.shape
    flat = data.reshape(h * w, b)
    keep = np.zeros(b, dtype=bool)
    pix_ok = np.ones(h * w, dtype=bool)
    step = max(1, 2**22 // max(b, 1))
    for s in range(0, h * w, step):  # chunked finiteness scan (no full-size boolean temporaries)
        fin = np.isfinite(flat[s:s + step])
        keep |= fin.any(axis=0)
    if BAD_BAND in c.coords:
        keep &= ~np.asarray(c.coords[BAD_BAND].values, dtype=bool)
    band_index = np.flatnonzero(keep)
    if band_index.size == 0:
        raise DataError("the cube has no valid band (all NaN or flagged bad)")
    check_param("n_endmembers", n_endmembers, n_endmembers < band_index.size,
                f"an int in [2, {band_index.size}) (fewer than the {band_index.size} valid bands)", owner)
    all_bands = band_index.size == b
    for s in range(0, h * w, step):
        blk = flat[s:s + step] if all_bands else flat[s:s + step][:, band_index]
        pix_ok[s:s + step] = np.isfinite(blk).all(axis=1)
    n_valid = int(pix_ok.sum())
    if n_valid == 0:
        raise DataError("the cube has no valid pixel (every pixel has NaN in some band)")
    if n_valid < n_endmembers:
        raise DataError(f"only {n_valid} valid pixels for {n_endmembers} endmembers")
    sub = flat if n_valid == h * w else flat[pix_ok]
    if not all_bands:
        sub = sub[:, band_index]
    Yt = np.array(sub, dtype=dtype, copy=True) if np.shares_memory(sub, data) else sub.astype(dtype, copy=False)
    del sub
    hi, lo = float(Yt.max()), float(Yt.min())
    scale = max(abs(hi), abs(lo))
    if scale == 0 or hi - lo <= 1e-12 * max(scale, 1.0):
        raise DataError("the cube is constant; there is nothing to unmix")
    Yt /= np.asarray(scale, dtype=Yt.dtype)
    return Prepared(Y=Yt.T, mask=pix_ok.reshape(h, w), band_index=band_index, scale=scale, shape_yx=(h, w))


def reconstruction_rmse(Y: np.ndarray, E: np.ndarray, A: np.ndarray, chunk: int = 16_384) -> float:
    """sqrt(mean((Y − E·A)²)) over all entries, computed in pixel chunks (Y: B × N, E: B × p, A: p × N).

    The residual is formed in Y's dtype (float32 data: float32 residual) and summed in float64.
    """
    B, N = Y.shape
    Yt = Y.T  # pixel-major: contiguous rows for the (transposed) matrices made by prepare()
    Et = E.T.astype(Y.dtype, copy=False) if Y.dtype.kind == "f" else E.T
    total = 0.0
    for s in range(0, N, chunk):
        r = (Yt[s:s + chunk] - A[:, s:s + chunk].T.astype(Et.dtype, copy=False) @ Et).ravel()
        r64 = r.astype(np.float64, copy=False)
        total += float(np.dot(r64, r64))
    return float(np.sqrt(total / max(B * N, 1)))


def sample_pixels(Y: np.ndarray, max_pixels: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """At most ``max_pixels`` columns of Y (bands × pixels), drawn without replacement with ``rng`` and
    kept in image order; ``(Y, False)`` when Y is small enough. Methods fit on the sample and then
    compute every pixel's abundances by FCLS."""
    n = Y.shape[1]
    if n <= max_pixels:
        return Y, False
    return Y[:, np.sort(rng.choice(n, max_pixels, replace=False))], True


class Unmixer:
    """Base of every unmixing method. Subclasses set ``name``/``family`` and implement ``_fit``."""

    name: ClassVar[str] = "base"
    family: ClassVar[str] = "none"  # "geometric", "least-squares", "deep", "statistical"
    #: dtype of ``prep.Y`` given to ``_fit`` (float32 halves the memory of big scenes).
    work_dtype: ClassVar[type] = np.float64

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
        prep = prepare(cube, self.n_endmembers, owner=type(self).__name__, dtype=self.work_dtype)
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
        rmse = reconstruction_rmse(prep.Y, E, A) * prep.scale
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


class TorchUnmixer(Unmixer):
    """Base of the torch methods: ``_fit`` runs ``_fit_impl`` with torch's CPU thread count set to
    ``self.num_threads`` (None: unchanged) and restored afterwards. Torch is imported only here, lazily."""

    num_threads: int | None = None

    def _fit(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        from simhsi.unmixing._torch import cpu_threads

        with cpu_threads(self.num_threads):
            return self._fit_impl(prep, rng, progress)

    def _fit_impl(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError
