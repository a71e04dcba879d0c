"""Writing rendered scenes: CF-NetCDF (default), ENVI, PRISMA HDF-EOS5 (L1 / L2D layout).

NetCDF storage decision: when the cube was quantised with a linear DN convention that has one scale and
offset for all bands (PRISMA L1: L = DN / 100; L2: ρ = Min + DN (Max − Min) / 65535) and the scene has no
nodata pixel, the cube is stored as the sensor's exact unsigned-integer DN with CF ``scale_factor`` /
``add_offset``: the file holds what the sensor would deliver, is half the size of float32, and any CF reader
(xarray, netCDF4, simhsi) decodes the physical values. Otherwise it is stored as float32.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simhsi.errors import FormatError, OutputError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

log = logging.getLogger(__name__)

FORMATS = ("netcdf", "envi", "prisma-he5")
#: NetCDF compression of rendered scenes (see :func:`write_scene`).
DEFAULT_COMPRESSION = "zlib"


def cube_variable(ds: xr.Dataset) -> str:
    """Name of the scene's sensor cube variable (``radiance`` or ``reflectance``)."""
    for name in ("radiance", "reflectance"):
        if name in ds.data_vars:
            return name
    raise FormatError(f"the scene has no 'radiance' or 'reflectance' variable; it has {list(ds.data_vars)}")


def _to_dn(values: np.ndarray, scale: float, offset: float, dtype: str) -> np.ndarray:
    """Dequantised values -> their exact DN (float32 arithmetic is exact enough: |error| << 0.5 DN)."""
    dn = (values - np.float32(offset)) * np.float32(1.0 / scale)
    np.rint(dn, out=dn)
    return dn.astype(dtype)


def _pack_dn(ds: xr.Dataset, var: str) -> xr.Dataset:
    """Store the cube as its DN with CF ``scale_factor``/``add_offset`` when that is exact and lossless.

    The DN are computed chunk by chunk here (float32) rather than by xarray's CF encoder, which would make
    float64 copies of every chunk. A cube straight from :func:`simhsi.render.render_scene` has a DN twin
    (:func:`simhsi.render.forward.dn_twin`) that renders the same chunks directly as DN: used when present
    (no dequantise/requantise round trip, and the float32 cube is never made).
    """
    import dask.array as da

    from simhsi.render.forward import dn_twin

    attrs = dict(ds[var].attrs)
    if not (attrs.get("quantized") and "dn_scale" in attrs) or int(ds.attrs.get("has_nodata", 0)):
        return ds
    scale, offset = float(attrs.pop("dn_scale")), float(attrs.pop("dn_offset"))
    dtype = str(attrs.pop("dn_dtype", "uint16"))
    data = ds[var].data
    twin = dn_twin(data)
    if twin is not None and np.dtype(twin.dtype) == np.dtype(dtype):
        dn = twin
    elif isinstance(data, da.Array):
        dn = data.map_blocks(_to_dn, scale, offset, dtype, dtype=dtype)
    else:
        dn = _to_dn(np.asarray(data, dtype=np.float32), scale, offset, dtype)
    attrs.update(scale_factor=np.float64(scale), add_offset=np.float64(offset),
                 storage=f"sensor DN ({dtype}) with CF scale_factor/add_offset")
    ds = ds.copy()
    ds[var] = (ds[var].dims, dn, attrs)
    return ds


def write_scene(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    format: str = "netcdf",
    overwrite: bool = False,
    progress: bool = False,
    pack_dn: bool = True,
    complevel: int = 1,
    compression: str = DEFAULT_COMPRESSION,
) -> Path:
    """Write a scene from :func:`simhsi.render.render_scene` (atomic: nothing is left on failure).

    ``format``: ``"netcdf"`` (cube + ground truth + provenance), ``"envi"`` (the cube only, .hdr + data),
    ``"prisma-he5"`` (the cube in the PRISMA L1 / L2D product layout; sensor must be PRISMA).
    ``compression`` / ``complevel``: the NetCDF compression (:func:`simhsi.io.netcdf.write_netcdf`):
    ``"zlib"`` (default: deflate + shuffle at level ``complevel``, compressed in parallel by the dask
    workers; every NetCDF-4 reader), ``"szip"`` (CCSDS lossless coding, ~7 % smaller on noisy DN but
    compressed serially inside HDF5: slower), ``"zstd"`` (needs netCDF-C ≥ 4.9 with its filter plugins to
    read back), ``"none"`` (largest).
    """
    from simhsi._atomic import check_output_path

    if format not in FORMATS:
        raise ParameterError(f"The 'format' parameter must be one of {', '.join(FORMATS)}. Got {format!r} instead.")
    check_output_path(path, overwrite)
    var = cube_variable(ds)
    if format == "netcdf":
        out = _pack_dn(ds, var) if pack_dn else ds
        try:
            from simhsi.io.netcdf import write_netcdf
        except ImportError:  # pragma: no cover - io helper module missing
            write_netcdf = None
        if write_netcdf is not None:
            return write_netcdf(out, path, overwrite=overwrite, complevel=complevel, compression=compression,
                                progress=progress)
        from simhsi._atomic import atomic_path  # pragma: no cover

        with atomic_path(path, overwrite) as tmp:  # pragma: no cover
            out.to_netcdf(tmp, engine="netcdf4")
        return Path(path)  # pragma: no cover
    cube = ds[var]
    if progress:
        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc=f"writing {Path(path).name}"):
            return _write_other(ds, cube, var, path, format, overwrite)
    return _write_other(ds, cube, var, path, format, overwrite)


def _write_other(ds: xr.Dataset, cube: xr.DataArray, var: str, path: str | os.PathLike[str], format: str,
                 overwrite: bool) -> Path:
    """ENVI or PRISMA HE5 writing of the cube (dask computes it chunk by chunk inside the writers)."""
    if format == "envi":
        from simhsi.io.envi import write_envi

        cube = cube.copy()
        cube.attrs.update({k: v for k, v in ds.attrs.items() if isinstance(v, str | int | float)})
        res = write_envi(cube, path, overwrite=overwrite)
        return Path(res[0]) if isinstance(res, tuple) else Path(res)
    # prisma-he5
    sensor = str(ds.attrs.get("sensor", "")).lower()
    if "prisma" not in sensor:
        raise ParameterError(
            f"--format prisma-he5 needs a scene rendered for the PRISMA sensor; this one is for {sensor!r}"
        )
    from simhsi.io.prisma import write_prisma_he5

    level = "L1" if var == "radiance" else "L2D"
    scale = None
    a = cube.attrs
    if level == "L1" and "dn_scale" in a:
        scale = {f"{k}_{det}": v for det in ("Vnir", "Swir")
                 for k, v in (("ScaleFactor", 1.0 / float(a["dn_scale"])), ("Offset", -float(a["dn_offset"])))}
    elif level == "L2D" and "dn_scale" in a:
        # back to the convention's own Min/Max (1/65535 * 65535 is 0.9999999999999999 in floating point)
        lo = float(f"{float(a['dn_offset']):.12g}")
        hi = float(f"{float(a['dn_offset']) + 65535.0 * float(a['dn_scale']):.12g}")
        scale = {f"L2Scale{det}{k}": v for det in ("Vnir", "Swir") for k, v in (("Min", lo), ("Max", hi))}
    sza = ds.attrs.get("sun_zenith_deg")
    res = write_prisma_he5(cube, path, level=level, overwrite=overwrite, scale=scale,
                           sun_zenith=float(sza) if sza is not None else None,
                           attrs={"simhsi_sensor_simulation": f"simhsi {ds.attrs.get('simhsi_version', '')} "
                                  f"synthetic scene, seed {ds.attrs.get('seed', '')}"})
    return Path(res)


def check_format_available(format: str) -> None:
    """Raise :class:`OutputError` early when the writer module for ``format`` is missing."""
    import importlib

    mod = {"netcdf": "simhsi.io.netcdf", "envi": "simhsi.io.envi", "prisma-he5": "simhsi.io.prisma"}.get(format)
    if mod is None:
        raise ParameterError(f"The 'format' parameter must be one of {', '.join(FORMATS)}. Got {format!r} instead.")
    try:
        m = importlib.import_module(mod)
    except ImportError as exc:
        raise OutputError(f"the {format} writer is not available in this installation ({exc})") from None
    fn = {"netcdf": "write_netcdf", "envi": "write_envi", "prisma-he5": "write_prisma_he5"}[format]
    if not hasattr(m, fn):
        raise OutputError(f"the {format} writer ({mod}.{fn}) is not available in this installation")
