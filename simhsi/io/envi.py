"""ENVI images (``.hdr`` header + raw data file), read and written with the ``spectral`` package.

Reading (:func:`read_envi`) is lazy: the data file is memory-mapped by ``spectral`` and wrapped
in a dask array (spatial tiles, all bands in a chunk). From the header:

* ``wavelength``/``fwhm`` with ``wavelength units`` (micrometres, nanometres, ...) → nm coords;
  without units, values below 30 are taken as micrometres. No wavelengths: NaN with a warning.
* ``bbl`` (bad band list, 1 = good) → boolean ``bad_band`` coord (True = bad);
* ``data ignore value`` → NaN; ``reflectance scale factor`` → data divided by it (units "1");
* ``map info`` + ``coordinate system string`` → ``y``/``x`` pixel-centre map coords and a
  rioxarray CRS (north-up grids; rotated grids keep pixel indices, with a warning).

Writing (:func:`write_envi`) stores BIP (band-interleaved-by-pixel, the (y, x, band) order of a
cube), little-endian, with ``wavelength units = Nanometers``, ``fwhm``, ``bbl`` and the map info;
both files are written to temporary names in the target folder and renamed on success.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi._atomic import atomic_path, check_output_path
from simhsi.conventions import BAD_BAND, BAND, CUBE_DIMS, FWHM, WAVELENGTH, X, Y, check_cube, make_cube
from simhsi.errors import FormatError, InputFileError, OutputError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

_UNIT_TO_NM = {
    "nm": 1.0, "nanometers": 1.0, "nanometer": 1.0, "nanometres": 1.0, "nanometre": 1.0,
    "um": 1e3, "µm": 1e3, "micrometers": 1e3, "micrometer": 1e3, "micrometres": 1e3, "micrometre": 1e3,
    "microns": 1e3, "micron": 1e3, "mm": 1e6, "millimeters": 1e6,
    "wavenumber": np.nan, "ghz": np.nan, "mhz": np.nan, "index": np.nan, "unknown": np.nan,
}

#: Default spatial tile edge (pixels) of the dask chunks.
DEFAULT_CHUNK = 512


def _header_and_data(path: Path) -> tuple[Path, Path | None]:
    """The header path for a header or data path (``x.hdr`` for ``x.img``/``x``, or ``x.img.hdr``)."""
    if path.suffix.lower() == ".hdr":
        return path, None
    for hdr in (path.with_suffix(".hdr"), Path(str(path) + ".hdr"), path.with_suffix(".HDR")):
        if hdr.exists():
            return hdr, path
    raise InputFileError("no ENVI header found (looked for .hdr next to the data file)", path=path)


def wavelength_scale_to_nm(units: str | None, values: np.ndarray) -> float:
    """Factor converting wavelengths in ``units`` (ENVI ``wavelength units``) to nm.

    Without units, values whose maximum is below 30 are taken as micrometres, otherwise nm.
    """
    if units:
        key = units.strip().lower()
        if key in _UNIT_TO_NM:
            return _UNIT_TO_NM[key]
        raise FormatError(f"unsupported wavelength units {units!r}; use nanometers or micrometers")
    finite = values[np.isfinite(values)]
    return 1e3 if finite.size and finite.max() < 30 else 1.0


def _floats(meta: dict[str, Any], key: str, n: int, path: Path) -> np.ndarray | None:
    if key not in meta:
        return None
    try:
        arr = np.asarray(meta[key], dtype=np.float64).ravel()
    except ValueError as exc:
        raise FormatError(f"header field {key!r} is not a list of numbers", path=path) from exc
    if arr.size != n:
        raise FormatError(f"header has {n} bands but {arr.size} values in {key!r}", path=path)
    return arr


def _map_coords(meta: dict[str, Any], rows: int, cols: int) -> tuple[dict[str, Any], str | None]:
    """Pixel-centre ``y``/``x`` coords from ENVI ``map info`` and the CRS WKT (or EPSG) if known."""
    info = meta.get("map info")
    if not info:
        return {}, None
    items = [s.strip() for s in (info if isinstance(info, list) else str(info).strip("{}").split(","))]
    try:
        ref_x, ref_y, east, north, dx, dy = map(float, items[1:7])
    except (ValueError, IndexError):
        warnings.warn(f"cannot parse ENVI map info {info!r}; no map coordinates", stacklevel=3)
        return {}, None
    if any(s.lower().startswith("rotation") and float(s.split("=")[1]) != 0 for s in items if "=" in s):
        warnings.warn("rotated ENVI grid: map coordinates not set (pixel indices kept)", stacklevel=3)
        return {}, None
    # ENVI pixel (1, 1) is the upper-left corner of the upper-left pixel: centres are at +0.5.
    x = east + (np.arange(cols) + 1.5 - ref_x) * dx
    y = north - (np.arange(rows) + 1.5 - ref_y) * dy
    crs: str | None = None
    wkt = meta.get("coordinate system string")
    if wkt:
        crs = wkt if isinstance(wkt, str) else ",".join(wkt)
    elif items[0].upper() == "UTM" and len(items) >= 10 and "wgs" in items[9].lower():
        zone = int(float(items[7]))
        crs = f"EPSG:{32600 + zone if items[8].lower().startswith('n') else 32700 + zone}"
    elif items[0].lower().startswith("geographic"):
        crs = "EPSG:4326"
    return {Y: (Y, y), X: (X, x)}, crs


def read_envi(path: str | os.PathLike[str], chunks: int | dict[str, int] | str | None = None) -> xr.DataArray:
    """Open an ENVI image lazily as a cube ``DataArray`` (y, x, band), wavelengths/fwhm in nm.

    ``path`` is the ``.hdr`` or the data file. ``chunks``: dask chunk spec (int = y/x tile edge,
    dict, or "auto"); the band axis is always one chunk. Default: 512 x 512 pixel tiles.
    """
    import dask.array as da
    import spectral.io.envi as envi

    p = Path(path)
    if not p.exists():
        raise InputFileError("no such file", path=p)
    hdr, data = _header_and_data(p)
    if not hdr.exists():
        raise InputFileError("no such ENVI header", path=hdr)
    try:
        img = envi.open(str(hdr), str(data) if data else None)
    except envi.EnviDataFileNotFoundError as exc:
        raise InputFileError("ENVI data file not found next to the header (tried .img, .dat, none, ...)",
                             path=hdr) from exc
    except (envi.FileNotAnEnviHeader, envi.MissingEnviHeaderParameter, envi.EnviHeaderParsingError,
            envi.EnviDataTypeError, envi.EnviFeatureNotSupported) as exc:
        raise FormatError(f"invalid ENVI header ({exc})", path=hdr) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"cannot read ENVI file ({exc})", path=hdr) from exc
    if isinstance(img, envi.SpectralLibrary):
        raise FormatError("this is an ENVI spectral library, not an image; read it with "
                          "spectral.io.envi.open(...).spectra", path=hdr)
    meta = img.metadata
    rows, cols, nb = img.shape
    expected = img.offset + rows * cols * nb * np.dtype(img.dtype).itemsize
    size = os.path.getsize(img.filename)
    if size < expected:
        raise InputFileError(f"data file is truncated: {size} bytes, the header needs {expected}",
                             path=img.filename)
    try:
        mm = img.open_memmap(interleave="bip", writable=False)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot memory-map the ENVI data ({exc})", path=img.filename) from exc
    if chunks is None:
        chunks = DEFAULT_CHUNK
    if isinstance(chunks, int):
        spec: Any = (chunks, chunks, -1)
    elif isinstance(chunks, dict):
        spec = (chunks.get(Y, "auto"), chunks.get(X, "auto"), -1)
    else:
        spec = (chunks, chunks, -1)
    from dask.base import tokenize

    st = os.stat(img.filename)
    token = tokenize(str(Path(img.filename).resolve()), st.st_mtime_ns, st.st_size, spec)
    arr = da.from_array(mm, chunks=spec, asarray=True, name=f"envi-{token}")
    attrs: dict[str, Any] = {"source_file": str(img.filename), "format": "envi", "envi_interleave": img.interleave
                             if isinstance(img.interleave, str) else str(meta.get("interleave"))}
    ignore = meta.get("data ignore value")
    if ignore is not None:
        value = float(ignore)
        arr = arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64)
        arr = da.where(arr == value, np.nan, arr)
        attrs["data_ignore_value"] = value
    units = str(meta.get("data units", "unknown"))
    scale = meta.get("reflectance scale factor")
    if scale is not None and float(scale) not in (0.0, 1.0):
        arr = arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64) / float(scale)
        attrs["reflectance_scale_factor"] = float(scale)
        units = "1"
    wl_raw = _floats(meta, "wavelength", nb, hdr)
    if wl_raw is None:
        warnings.warn(f"{hdr}: no wavelengths in the ENVI header; wavelength set to NaN", stacklevel=2)
        wl = np.full(nb, np.nan)
        attrs["wavelengths_missing"] = 1
        factor = 1.0
    else:
        factor = wavelength_scale_to_nm(meta.get("wavelength units"), wl_raw)
        if np.isnan(factor):
            raise FormatError(f"wavelength units {meta.get('wavelength units')!r} cannot be converted to nm",
                              path=hdr)
        wl = wl_raw * factor
    fw_raw = _floats(meta, "fwhm", nb, hdr)
    fw = None if fw_raw is None else fw_raw * factor
    coords: dict[str, Any] = {}
    bbl = _floats(meta, "bbl", nb, hdr)
    if bbl is not None:
        coords[BAD_BAND] = (BAND, bbl == 0, {"long_name": "bad band (from ENVI bbl)"})
    map_coords, crs = _map_coords(meta, rows, cols)
    coords.update(map_coords)
    for key in ("sensor type", "description", "acquisition time"):
        if key in meta:
            attrs[key.replace(" ", "_")] = str(meta[key]).strip("{} ")
    cube = make_cube(arr, wl, fw, units=units, name="data", attrs=attrs, coords=coords)
    if crs is not None:
        import rioxarray  # noqa: F401

        with contextlib.suppress(Exception):
            cube = cube.rio.write_crs(crs).rio.write_transform()
    return cube


def _envi_header(cube: xr.DataArray, data_name: str, dtype: np.dtype) -> dict[str, Any]:
    import spectral.io.envi as envi

    h, w, nb = cube.shape
    header: dict[str, Any] = {
        "description": f"simhsi cube {cube.name or ''} (y, x, band); units {cube.attrs.get('units', 'unknown')}",
        "samples": w,
        "lines": h,
        "bands": nb,
        "header offset": 0,
        "file type": "ENVI Standard",
        "data type": envi.dtype_to_envi[dtype.char],
        "interleave": "bip",
        "byte order": 0,
    }
    wl = np.asarray(cube[WAVELENGTH].values, dtype=np.float64)
    if np.isfinite(wl).any():  # unknown wavelengths are left out of the header, not written as NaN
        header["wavelength units"] = "Nanometers"
        header["wavelength"] = [f"{v:.6g}" for v in wl]
    if FWHM in cube.coords and np.isfinite(cube[FWHM].values).any():
        header["fwhm"] = [f"{v:.6g}" for v in cube[FWHM].values]
    if BAD_BAND in cube.coords:
        header["bbl"] = [str(int(not b)) for b in np.asarray(cube[BAD_BAND].values, dtype=bool)]
    if "units" in cube.attrs:
        header["data units"] = str(cube.attrs["units"])
    if "sensor" in cube.attrs:
        header["sensor type"] = str(cube.attrs["sensor"])
    crs = None
    with contextlib.suppress(Exception):
        import rioxarray  # noqa: F401

        crs = cube.rio.crs
    if crs is not None and Y in cube.coords and X in cube.coords and h > 1 and w > 1:
        x, y = cube[X].values, cube[Y].values
        dx, dy = float(x[1] - x[0]), float(y[0] - y[1])
        if dx > 0 and dy > 0 and np.allclose(np.diff(x), dx) and np.allclose(np.diff(y), -dy):
            import pyproj

            utm = pyproj.CRS.from_user_input(crs).utm_zone
            ul = [float(x[0] - dx / 2), float(y[0] + dy / 2)]
            if utm:
                info = ["UTM", "1", "1", f"{ul[0]:.10g}", f"{ul[1]:.10g}", f"{dx:.10g}", f"{dy:.10g}",
                        utm[:-1], "North" if utm[-1] == "N" else "South", "WGS-84", "units=Meters"]
            else:
                info = ["Arbitrary", "1", "1", f"{ul[0]:.10g}", f"{ul[1]:.10g}", f"{dx:.10g}", f"{dy:.10g}"]
            header["map info"] = info
            header["coordinate system string"] = crs.to_wkt()
    return header


def _data_and_header_paths(path: Path) -> tuple[Path, Path]:
    if path.suffix.lower() == ".hdr":
        return path.with_suffix(".img"), path
    return path, path.with_suffix(".hdr") if path.suffix else Path(str(path) + ".hdr")


def write_envi(
    cube: xr.DataArray, path: str | os.PathLike[str], *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write a cube as an ENVI BIP image; return ``(data_path, header_path)``.

    ``path`` is the data file (``scene.img`` → header ``scene.hdr``) or the header (``scene.hdr``
    → data ``scene.img``). dask-backed cubes are written chunk by chunk into a memory-mapped file.
    Wavelengths are stored in nm. Refuses to overwrite either file unless ``overwrite=True``.
    """
    import dask.array as da

    cube = check_cube(cube).transpose(*CUBE_DIMS)
    data_path, hdr_path = _data_and_header_paths(Path(path))
    for p in (data_path, hdr_path):
        check_output_path(p, overwrite)
    dtype = np.dtype(cube.dtype).newbyteorder("<")
    if dtype.kind == "f" and dtype.itemsize > 8 or dtype.kind == "i" and dtype.itemsize == 1:
        dtype = np.dtype("<f8") if dtype.kind == "f" else np.dtype("<i2")
    import spectral.io.envi as envi

    if dtype.char not in envi.dtype_to_envi:
        raise OutputError(f"ENVI cannot store dtype {cube.dtype}; convert the cube to float32", path=data_path)
    header = _envi_header(cube, data_path.name, dtype)
    with atomic_path(data_path, overwrite) as tmp_data, atomic_path(hdr_path, overwrite) as tmp_hdr:
        h, w, nb = cube.shape
        if h * w * nb:
            mm = np.memmap(tmp_data, dtype=dtype, mode="w+", shape=(h, w, nb))
            src = cube.data
            if isinstance(src, da.Array):
                da.store(src.astype(dtype), mm, lock=True)
            else:
                mm[:] = np.asarray(src, dtype=dtype)
            mm.flush()
            del mm
        envi.write_envi_header(str(tmp_hdr), header)
        umask = os.umask(0)
        os.umask(umask)
        for t in (tmp_data, tmp_hdr):
            os.chmod(t, 0o666 & ~umask)
    return data_path, hdr_path


__all__ = ["read_envi", "write_envi", "wavelength_scale_to_nm"]
