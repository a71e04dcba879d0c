"""``simhsi info PATH [--json]``: describe a hyperspectral file.

For a cube (any format :func:`simhsi.io.open_cube` reads): shape, number of bands, wavelength and
FWHM range, units, sensor and processing level, nodata fraction, bad bands, CRS/transform, map and
lat/lon bounds. For a NetCDF that holds no cube (an unmixing result, an abundance set): its
variables, dims, endmember names and attributes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from simhsi.cli._options import json_option

#: attrs shown (when present) in the text summary, with their labels
_SHOWN_ATTRS = (
    ("sensor", "sensor"),
    ("processing_level", "level"),
    ("long_name", "product"),
    ("sun_zenith_deg", "sun zenith"),
    ("sun_azimuth_deg", "sun azimuth"),
    ("wavelengths_approximate", "approx. wl"),
)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _range(values: Any) -> list[float] | None:
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return [float(a.min()), float(a.max())] if a.size else None


def _runs(wl: Any) -> list[list[float]]:
    """Contiguous runs of bad bands as [first_nm, last_nm] (band indices where wavelengths are NaN)."""
    out: list[list[float]] = []
    prev = None
    for i, w in wl:
        if prev is not None and i == prev + 1:
            out[-1][1] = w
        else:
            out.append([w, w])
        prev = i
    return out


def _jsonable(v: Any) -> Any:
    import numpy as np

    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.size <= 20 else f"array{v.shape} {v.dtype}"
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _crs_info(obj: Any) -> dict[str, Any]:
    """CRS, transform, map bounds and lat/lon bounds of a cube (empty when not georeferenced)."""
    import numpy as np

    out: dict[str, Any] = {}
    crs = None
    try:
        import rioxarray  # noqa: F401

        crs = obj.rio.crs
    except Exception:  # noqa: BLE001 - any rioxarray problem means "no usable CRS"
        crs = None
    if crs is not None:
        epsg = crs.to_epsg()
        out["crs"] = f"EPSG:{epsg}" if epsg else crs.to_wkt()
        try:
            out["transform"] = [float(t) for t in tuple(obj.rio.transform())[:6]]
            left, bottom, right, top = obj.rio.bounds()
            out["bounds"] = {"left": left, "bottom": bottom, "right": right, "top": top}
            if "lat" not in obj.coords:
                w, s, e, n = obj.rio.transform_bounds("EPSG:4326")
                out["lat_range"], out["lon_range"] = [s, n], [w, e]
        except Exception:  # noqa: BLE001
            pass
    if "lat" in obj.coords and "lon" in obj.coords:
        out["lat_range"] = _range(np.asarray(obj["lat"].values))
        out["lon_range"] = _range(np.asarray(obj["lon"].values))
    return out


def _compute(path: str, *objs: Any) -> tuple[Any, ...]:
    """Compute xarray objects in one pass over the data; read errors become :class:`InputFileError`."""
    import dask

    from simhsi.errors import InputFileError, SimhsiError

    try:
        return dask.compute(*objs)
    except SimhsiError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"reading the data failed, the file is truncated or corrupt ({msg})",
                             path=path) from exc


def xr_zeros_like(cube: Any) -> Any:
    """A boolean all-False array like ``cube`` (integer data without a nodata value)."""
    import xarray as xr

    return xr.zeros_like(cube, dtype=bool)


def cube_summary(cube: Any, fmt: str, path: str, scan: bool = True) -> dict[str, Any]:
    """A JSON-able description of a cube ``DataArray`` (y, x, band)."""
    import numpy as np

    from simhsi.conventions import BAD_BAND, FWHM, WAVELENGTH

    h, w, nb = (int(cube.sizes[d]) for d in ("y", "x", "band"))
    info: dict[str, Any] = {
        "file": path,
        "format": fmt,
        "kind": "cube",
        "variable": str(cube.name) if cube.name is not None else None,
        "shape": {"y": h, "x": w, "band": nb},
        "dtype": str(cube.dtype),
        "n_bands": nb,
        "wavelength_range_nm": _range(cube[WAVELENGTH].values),
        "fwhm_range_nm": _range(cube[FWHM].values) if FWHM in cube.coords else None,
        "units": cube.attrs.get("units"),
        "processing_level": cube.attrs.get("processing_level"),
        "sensor": cube.attrs.get("sensor"),
    }
    wl = np.asarray(cube[WAVELENGTH].values, dtype=np.float64)
    if not np.isfinite(wl).any():
        info["wavelengths_missing"] = True
    if BAD_BAND in cube.coords:
        bad = np.asarray(cube[BAD_BAND].values, dtype=bool)
        idx = np.flatnonzero(bad)
        info["bad_bands"] = {
            "count": int(bad.sum()),
            "ranges_nm": _runs([(int(i), float(wl[i]) if np.isfinite(wl[i]) else int(i)) for i in idx]),
        }
    else:
        info["bad_bands"] = None
    for key, _ in _SHOWN_ATTRS[2:]:
        if key in cube.attrs:
            info[key] = _jsonable(cube.attrs[key])
    info.update(_crs_info(cube))
    if scan and h * w * nb:
        if cube.dtype.kind == "f":
            missing = cube.isnull()
        else:
            nodata = cube.attrs.get("nodata", cube.attrs.get("data_ignore_value"))
            missing = cube == nodata if nodata is not None else xr_zeros_like(cube)
        pix, val, lo, hi = _compute(
            path, missing.all("band").mean(), missing.mean(), cube.min(skipna=True), cube.max(skipna=True)
        )
        info["nodata_fraction"] = float(pix)
        info["nan_value_fraction"] = float(val)
        info["value_range"] = [_num(lo.values), _num(hi.values)]
    return info


def dataset_summary(ds: Any, path: str) -> dict[str, Any]:
    """A JSON-able description of a NetCDF ``Dataset`` that holds no cube."""
    from simhsi.errors import DataError

    variables = {}
    numeric = False
    for name, var in ds.data_vars.items():
        kind = var.dtype.kind
        if kind not in "iufb" and {"y", "x"} <= set(var.dims):
            raise DataError(f"variable {name!r} {var.dims} is not numeric (dtype {var.dtype}); "
                            "image variables must hold numbers", path=path)
        numeric |= kind in "iufb"
        variables[str(name)] = {"dims": list(map(str, var.dims)), "shape": list(var.shape), "dtype": str(var.dtype)}
    if not numeric:
        raise DataError("no numeric data variable: nothing simhsi can use in this file", path=path)
    info: dict[str, Any] = {
        "file": path,
        "format": "netcdf",
        "kind": "dataset",
        "dims": {str(k): int(v) for k, v in ds.sizes.items()},
        "variables": variables,
    }
    if "endmember" in ds.coords:
        info["endmembers"] = [str(v) for v in ds["endmember"].values]
    info["attrs"] = {str(k): _jsonable(v) for k, v in ds.attrs.items()}
    info.update(_crs_info(ds))
    return info


def _fmt_range(r: list[float] | None, unit: str = "") -> str:
    if not r:
        return "unknown"
    if r[0] == r[1]:
        return f"{r[0]:.6g}{(' ' + unit) if unit else ''}"
    return f"{r[0]:.6g}-{r[1]:.6g}{(' ' + unit) if unit else ''}"


def format_text(info: dict[str, Any]) -> str:
    """Human-readable lines of :func:`cube_summary` / :func:`dataset_summary`."""
    rows: list[tuple[str, str]] = [("file", info["file"]), ("format", info["format"])]
    if info["kind"] == "cube":
        s = info["shape"]
        rows.append(("variable", str(info.get("variable"))))
        rows.append(("shape", f"y={s['y']} x={s['x']} band={s['band']} ({info['dtype']})"))
        wl = "unknown (no wavelengths in the file)" if info.get("wavelengths_missing") else _fmt_range(
            info["wavelength_range_nm"], "nm")
        fw = info.get("fwhm_range_nm")
        rows.append(("bands", f"{info['n_bands']}, {wl}" + (f" (FWHM {_fmt_range(fw, 'nm')})" if fw else "")))
        rows.append(("units", str(info.get("units") or "unknown")))
        for key, label in _SHOWN_ATTRS:
            if info.get(key) is not None:
                value = info[key]
                if key == "wavelengths_approximate":
                    value = "yes (nominal band grid, not calibrated centres)" if value else "no"
                rows.append((label, str(value)))
        if "nodata_fraction" in info:
            rows.append(("nodata", f"{100 * info['nodata_fraction']:.3g} % of pixels (all bands), "
                                   f"{100 * info['nan_value_fraction']:.3g} % of values"))
            rows.append(("values", _fmt_range(info.get("value_range"))))
        bad = info.get("bad_bands")
        if bad is None:
            rows.append(("bad bands", "none marked"))
        else:
            runs = ", ".join(_fmt_range(r) for r in bad["ranges_nm"])
            rows.append(("bad bands", f"{bad['count']}" + (f": {runs} nm" if runs else "")))
    else:
        rows.append(("content", "dataset (no cube with dims y, x, band)"))
        rows.append(("dims", " ".join(f"{k}={v}" for k, v in info["dims"].items())))
        for name, v in info["variables"].items():
            rows.append((f"  {name}", f"({', '.join(v['dims'])}) {v['dtype']}"))
        if "endmembers" in info:
            rows.append(("endmembers", ", ".join(info["endmembers"])))
        for k, v in info["attrs"].items():
            text = str(v)
            rows.append((f"  @{k}", text if len(text) <= 80 else text[:77] + "..."))
    rows.append(("CRS", info.get("crs", "none")))
    if "bounds" in info:
        b = info["bounds"]
        rows.append(("bounds", f"x {b['left']:.10g}-{b['right']:.10g}, y {b['bottom']:.10g}-{b['top']:.10g}"))
    if info.get("lat_range"):
        rows.append(("lat/lon", f"lat {_fmt_range(info['lat_range'])}, lon {_fmt_range(info.get('lon_range'))} deg"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def describe(path: str | Path, *, fmt: str | None = None, variable: str | None = None,
             scan: bool = True) -> dict[str, Any]:
    """Summary dict of any file ``simhsi info`` understands (used by the command, also from Python)."""
    from simhsi.io import detect_format, open_cube

    p = str(path)
    fmt = fmt or detect_format(p)
    if fmt == "netcdf":
        from simhsi.errors import FormatError
        from simhsi.io.netcdf import _pick_cube_variable, open_dataset, read_netcdf_cube

        ds = open_dataset(p)
        try:
            name = _pick_cube_variable(ds, Path(p), variable)
        except FormatError:
            if variable is not None:
                raise
            return dataset_summary(ds, p)
        return cube_summary(read_netcdf_cube(p, variable=name), fmt, p, scan)
    cube = open_cube(p, format=fmt)
    return cube_summary(cube, fmt, p, scan)


@click.command(name="info")
@click.argument("path")
@json_option
@click.option("--format", "fmt", type=click.Choice(["prisma", "envi", "geotiff", "netcdf", "mat"]),
              default=None, help="Force the reader (default: detected from the content).")
@click.option("--variable", default=None, help="NetCDF: the cube variable (default: the one with dims y, x, band).")
@click.option("--no-scan", is_flag=True, help="Do not read the data (skip nodata fraction and value range).")
def command(path: str, as_json: bool, fmt: str | None, variable: str | None, no_scan: bool) -> None:
    """Describe a hyperspectral file: shape, bands, wavelength range, units, level, nodata, CRS.

    PATH is a PRISMA .he5, ENVI (.hdr or data file), GeoTIFF, simhsi NetCDF or benchmark .mat file.
    """
    info = describe(path, fmt=fmt, variable=variable, scan=not no_scan)
    if as_json:
        click.echo(json.dumps(_jsonable(info), indent=2))
    else:
        click.echo(format_text(info))
