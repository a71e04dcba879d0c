"""Names, units and checks of the simhsi data model (see docs/data-model.md).

Objects flowing between stages are xarray objects with named dims:

* cube: ``DataArray`` (``y``, ``x``, ``band``), coords ``wavelength`` and ``fwhm`` on ``band`` in nm;
* abundances: ``DataArray`` (``endmember``, ``y``, ``x``), >= 0 and summing to 1 over ``endmember``
  (NaN where nodata);
* endmember library: ``DataArray`` (``endmember``, ``band``) with ``wavelength``/``fwhm`` coords.

Note the orientation: the linear mixing model ``Y = E @ A`` is written bands x pixels (E is
bands x p, A is p x pixels) while cubes are stored (y, x, band). :func:`cube_to_matrix` and
:func:`matrix_to_cube` convert.
"""

from __future__ import annotations

import datetime as _dt
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import simhsi._libs  # noqa: F401  (netCDF4 before rasterio; see simhsi/_libs.py)
from simhsi.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

Y, X, BAND, ENDMEMBER = "y", "x", "band", "endmember"
WAVELENGTH, FWHM, BAD_BAND = "wavelength", "fwhm", "bad_band"
CUBE_DIMS = (Y, X, BAND)
ABUNDANCE_DIMS = (ENDMEMBER, Y, X)
LIBRARY_DIMS = (ENDMEMBER, BAND)

UNITS_REFLECTANCE = "1"
UNITS_RADIANCE = "W m-2 sr-1 um-1"
UNITS_NM = "nm"

#: Attribute keys used across stages.
ATTR_SENSOR = "sensor"
ATTR_LEVEL = "processing_level"
ATTR_SOURCE = "source_file"
ATTR_VERSION = "simhsi_version"
ATTR_HISTORY = "history"


def provenance_attrs(**extra: Any) -> dict[str, Any]:
    """Attributes recording who made an object: simhsi version, UTC time, command line, extras.

    Values that NetCDF cannot store (None, bool, dict) are converted to strings.
    """
    from simhsi._version import __version__

    attrs: dict[str, Any] = {
        ATTR_VERSION: __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ATTR_HISTORY: " ".join(sys.argv) if sys.argv else "",
    }
    for k, v in extra.items():
        attrs[k] = netcdf_safe(v)
    return attrs


def netcdf_safe(value: Any) -> Any:
    """Convert an attribute value to something netCDF4 can store (str, number, 1-D numeric array)."""
    if value is None:
        return "none"
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str | int | float | np.integer | np.floating):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        arr = np.asarray(value)
        if arr.dtype.kind in "iuf" and arr.ndim == 1:
            return arr
        return ", ".join(map(str, np.ravel(arr).tolist()))
    if isinstance(value, dict):
        import json

        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def make_cube(
    data: Any,
    wavelength: Sequence[float] | np.ndarray,
    fwhm: Sequence[float] | np.ndarray | None = None,
    *,
    units: str = UNITS_REFLECTANCE,
    name: str = "reflectance",
    attrs: dict[str, Any] | None = None,
    coords: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Build a cube ``DataArray`` (y, x, band) from an (H, W, B) numpy or dask array.

    ``wavelength``/``fwhm`` are band centres and full widths at half maximum in nm. ``fwhm``
    defaults to NaN (unknown).
    """
    import xarray as xr

    if getattr(data, "ndim", None) != 3:
        raise DataError(f"a cube must be 3-D (y, x, band); got shape {getattr(data, 'shape', None)}")
    wl = np.asarray(wavelength, dtype=np.float64)
    nb = data.shape[2]
    if wl.shape != (nb,):
        raise DataError(f"{nb} bands but {wl.size} wavelengths")
    fw = np.full(nb, np.nan) if fwhm is None else np.asarray(fwhm, dtype=np.float64)
    if fw.shape != (nb,):
        raise DataError(f"{nb} bands but {fw.size} FWHM values")
    all_coords: dict[str, Any] = {
        WAVELENGTH: (BAND, wl, {"units": UNITS_NM, "long_name": "band centre wavelength"}),
        FWHM: (BAND, fw, {"units": UNITS_NM, "long_name": "band full width at half maximum"}),
    }
    if coords:
        all_coords.update(coords)
    a = {"units": units}
    if attrs:
        a.update(attrs)
    return xr.DataArray(data, dims=CUBE_DIMS, coords=all_coords, name=name, attrs=a)


def default_endmember_names(p: int) -> list[str]:
    """``["em0", "em1", ...]``: names used when endmembers have no names."""
    return [f"em{i}" for i in range(p)]


def make_abundances(
    data: Any, names: Sequence[str] | None = None, *, attrs: dict[str, Any] | None = None
) -> xr.DataArray:
    """Build an abundance ``DataArray`` (endmember, y, x) from a (p, H, W) array."""
    import xarray as xr

    if getattr(data, "ndim", None) != 3:
        raise DataError(f"abundances must be 3-D (endmember, y, x); got shape {getattr(data, 'shape', None)}")
    p = data.shape[0]
    names = list(names) if names is not None else default_endmember_names(p)
    if len(names) != p:
        raise DataError(f"{p} abundance maps but {len(names)} endmember names")
    return xr.DataArray(
        data,
        dims=ABUNDANCE_DIMS,
        coords={ENDMEMBER: names},
        name="abundances",
        attrs={"units": "1", "long_name": "fractional abundance", **(attrs or {})},
    )


def make_library(
    data: Any,
    wavelength: Sequence[float] | np.ndarray,
    fwhm: Sequence[float] | np.ndarray | None = None,
    names: Sequence[str] | None = None,
    *,
    units: str = UNITS_REFLECTANCE,
    attrs: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Build an endmember library ``DataArray`` (endmember, band) from a (p, B) array."""
    import xarray as xr

    arr = np.asarray(data)
    if arr.ndim != 2:
        raise DataError(f"an endmember library must be 2-D (endmember, band); got shape {arr.shape}")
    p, nb = arr.shape
    wl = np.asarray(wavelength, dtype=np.float64)
    if wl.shape != (nb,):
        raise DataError(f"library has {nb} bands but {wl.size} wavelengths")
    fw = np.full(nb, np.nan) if fwhm is None else np.asarray(fwhm, dtype=np.float64)
    names = list(names) if names is not None else default_endmember_names(p)
    if len(names) != p:
        raise DataError(f"library has {p} spectra but {len(names)} names")
    return xr.DataArray(
        arr,
        dims=LIBRARY_DIMS,
        coords={
            ENDMEMBER: names,
            WAVELENGTH: (BAND, wl, {"units": UNITS_NM}),
            FWHM: (BAND, fw, {"units": UNITS_NM}),
        },
        name="endmembers",
        attrs={"units": units, **(attrs or {})},
    )


def check_cube(cube: xr.DataArray, what: str = "cube") -> xr.DataArray:
    """Check a cube follows the data model; return it (transposed to (y, x, band) if needed)."""
    import xarray as xr

    if not isinstance(cube, xr.DataArray):
        raise DataError(f"{what} must be an xarray.DataArray, got {type(cube).__name__}")
    if set(cube.dims) != set(CUBE_DIMS):
        raise DataError(f"{what} must have dims {CUBE_DIMS}; got {cube.dims}")
    if WAVELENGTH not in cube.coords:
        raise DataError(f"{what} has no 'wavelength' coordinate (nm) on 'band'")
    if cube.dtype.kind not in "iuf":
        raise DataError(f"{what} must be numeric; got dtype {cube.dtype}")
    return cube.transpose(*CUBE_DIMS)


def check_abundances(
    abund: xr.DataArray, what: str = "abundances", atol: float = 1e-4, check_simplex: bool = True
) -> xr.DataArray:
    """Check dims and (eagerly, on the data) the simplex constraint, ignoring NaN pixels."""
    import xarray as xr

    if not isinstance(abund, xr.DataArray):
        raise DataError(f"{what} must be an xarray.DataArray, got {type(abund).__name__}")
    if set(abund.dims) != set(ABUNDANCE_DIMS):
        raise DataError(f"{what} must have dims {ABUNDANCE_DIMS}; got {abund.dims}")
    abund = abund.transpose(*ABUNDANCE_DIMS)
    if check_simplex:
        a = np.asarray(abund.values, dtype=np.float64)
        valid = np.all(np.isfinite(a), axis=0)
        if not valid.any():
            raise DataError(f"{what} has no valid (finite) pixel")
        av = a[:, valid]
        if av.min() < -atol:
            raise DataError(f"{what} has negative values (min {av.min():.3g}); abundances must be >= 0")
        s = av.sum(axis=0)
        worst = float(np.max(np.abs(s - 1.0)))
        if worst > atol:
            raise DataError(f"{what} do not sum to 1 over 'endmember' (worst pixel off by {worst:.3g})")
    return abund


def cube_to_matrix(cube: xr.DataArray) -> np.ndarray:
    """(y, x, band) cube → (band, pixel) matrix Y of the mixing model Y = E·A (row-major pixels)."""
    c = check_cube(cube)
    h, w, b = c.shape
    return np.asarray(c.values).reshape(h * w, b).T


def matrix_to_cube(matrix: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """(k, pixel) matrix → (k, y, x) array (row-major pixels); inverse of :func:`cube_to_matrix`."""
    k = matrix.shape[0]
    return np.asarray(matrix).reshape(k, *shape_yx)
