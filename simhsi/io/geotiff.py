"""GeoTIFF / COG cubes, read with ``rioxarray`` (lazy, dask chunks with all bands in a chunk).

Band centre wavelengths are looked for, in this order:

1. per-band GDAL metadata ``wavelength`` (+ ``wavelength_units``, ``fwhm``), as written by GDAL's
   ENVI driver and most hyperspectral tools;
2. per-band ``IMAGERY`` domain ``CENTRAL_WAVELENGTH_UM`` / ``FWHM_UM`` (GDAL >= 3.10 convention);
3. dataset ``ENVI`` domain ``wavelength = {...}`` / ``wavelength_units`` / ``fwhm``;
4. band descriptions containing a number with a unit, e.g. ``"Band 12 (550.3 nm)"`` or ``"0.55 um"``.

Without any of them the wavelengths are NaN and a warning says so: the cube can still be unmixed
or inspected, but any stage that needs wavelengths (sensor rendering) will refuse it.
The CRS and transform are kept (rioxarray ``spatial_ref``); nodata becomes NaN and GDAL
scale/offset are applied.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.conventions import BAD_BAND, BAND, X, Y
from simhsi.errors import FormatError, InputFileError
from simhsi.io.envi import wavelength_scale_to_nm

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

#: Default spatial tile edge (pixels) of the dask chunks.
DEFAULT_CHUNK = 512

_DESC_RE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(nm|nanometers?|um|µm|micrometers?|microns?)\b", re.IGNORECASE
)


def _list(value: str) -> list[float]:
    return [float(v) for v in value.strip().strip("{}").split(",") if v.strip()]


def _band_wavelengths(src: Any) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(wavelength nm, fwhm nm, where found) from a rasterio dataset's metadata."""
    n = src.count
    # 1. per-band default-domain tags
    tags = [src.tags(b) for b in range(1, n + 1)]
    lower = [{k.lower(): v for k, v in t.items()} for t in tags]
    if all("wavelength" in t for t in lower):
        wl = np.array([float(t["wavelength"]) for t in lower])
        units = lower[0].get("wavelength_units") or lower[0].get("wavelength units")
        f = wavelength_scale_to_nm(units, wl)
        fw = np.array([float(t["fwhm"]) for t in lower]) * f if all("fwhm" in t for t in lower) else None
        return wl * f, fw, "band metadata 'wavelength'"
    # 2. per-band IMAGERY domain (GDAL RFC 100)
    imagery = [src.tags(b, ns="IMAGERY") for b in range(1, n + 1)]
    if all("CENTRAL_WAVELENGTH_UM" in t for t in imagery):
        wl = np.array([float(t["CENTRAL_WAVELENGTH_UM"]) for t in imagery]) * 1e3
        fw = (np.array([float(t["FWHM_UM"]) for t in imagery]) * 1e3
              if all("FWHM_UM" in t for t in imagery) else None)
        return wl, fw, "IMAGERY CENTRAL_WAVELENGTH_UM"
    # 3. dataset ENVI domain
    envi = {k.lower(): v for k, v in src.tags(ns="ENVI").items()}
    if "wavelength" in envi:
        wl = np.array(_list(envi["wavelength"]))
        if wl.size == n:
            f = wavelength_scale_to_nm(envi.get("wavelength_units") or envi.get("wavelength units"), wl)
            fw = np.array(_list(envi["fwhm"])) * f if "fwhm" in envi and len(_list(envi["fwhm"])) == n else None
            return wl * f, fw, "ENVI metadata domain"
    # 4. band descriptions
    desc = src.descriptions
    if desc and all(desc):
        found = [_DESC_RE.search(d) for d in desc]
        if all(found):
            vals = np.array([float(m.group(1)) for m in found])
            units = [m.group(2).lower() for m in found]
            f = np.array([1.0 if u.startswith("n") else 1e3 for u in units])
            return vals * f, None, "band descriptions"
    return None, None, "none"


def read_geotiff(
    path: str | os.PathLike[str], chunks: int | dict[str, int] | str | None = None
) -> xr.DataArray:
    """Open a GeoTIFF/COG as a lazy cube ``DataArray`` (y, x, band) with wavelengths in nm.

    ``chunks``: int (y/x tile edge), dict or "auto"; the band axis is always one chunk.
    Default: 512 x 512 pixel tiles. Wavelengths: see the module docstring (NaN + warning if the
    file has none). CRS and transform are kept; ``bad_band`` is read from ENVI ``bbl`` if present.
    """
    import rasterio
    import rioxarray

    from simhsi.conventions import make_cube

    p = Path(path)
    if not p.exists():
        raise InputFileError("no such file", path=p)
    try:
        with rasterio.open(p) as src:
            wl, fw, where = _band_wavelengths(src)
            n = src.count
            bbl_txt = {k.lower(): v for k, v in src.tags(ns="ENVI").items()}.get("bbl")
            nodata = src.nodata
            dtypes = set(src.dtypes)
    except rasterio.errors.RasterioIOError as exc:
        raise InputFileError(f"cannot read as GeoTIFF, truncated or corrupt ({exc})", path=p) from exc
    except FormatError as exc:
        raise FormatError(exc.message, path=p) from exc
    if any(not np.issubdtype(np.dtype(d), np.number) for d in dtypes):
        raise FormatError(f"non-numeric band data types {sorted(dtypes)}", path=p)
    if chunks is None:
        chunks = DEFAULT_CHUNK
    if isinstance(chunks, int):
        spec: Any = {"band": -1, "y": chunks, "x": chunks}
    elif isinstance(chunks, dict):
        spec = {**chunks, "band": -1}
    else:
        spec = {"band": -1, "y": chunks, "x": chunks}
    try:
        da = rioxarray.open_rasterio(p, chunks=spec, masked=True, mask_and_scale=True)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read as GeoTIFF ({exc})", path=p) from exc
    if isinstance(da, list):
        raise FormatError("file has several subdatasets; simhsi reads single-image GeoTIFFs", path=p)
    da = da.transpose(Y, X, BAND)
    if wl is None:
        warnings.warn(f"{p}: no band wavelengths in the GeoTIFF metadata; wavelength set to NaN", stacklevel=2)
        wl = np.full(n, np.nan)
    if wl.size != n:
        raise FormatError(f"{n} bands but {wl.size} wavelengths in the metadata", path=p)
    coords: dict[str, Any] = {Y: da[Y], X: da[X]}
    if "spatial_ref" in da.coords:
        coords["spatial_ref"] = da.coords["spatial_ref"]
    if bbl_txt:
        bbl = np.array(_list(bbl_txt))
        if bbl.size == n:
            coords[BAD_BAND] = (BAND, bbl == 0, {"long_name": "bad band (from ENVI bbl)"})
    attrs = {
        "source_file": str(p),
        "format": "geotiff",
        "wavelength_source": where,
    }
    if nodata is not None:
        attrs["nodata"] = float(nodata)
    if where == "none":
        attrs["wavelengths_missing"] = 1
    units = str(da.attrs.get("units", "unknown"))
    cube = make_cube(da.data, wl, fw, units=units, name="data", attrs=attrs, coords=coords)
    if da.rio.crs is not None:
        cube = cube.rio.write_crs(da.rio.crs).rio.write_transform(da.rio.transform())
    return cube
