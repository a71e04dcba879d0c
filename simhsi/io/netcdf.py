"""simhsi's NetCDF format: the one writer every stage uses, and the matching readers.

* :func:`write_netcdf` writes any ``DataArray``/``Dataset`` (cubes, unmixing results, abundance
  sets, synthetic scenes) with the netCDF4 engine: CF-1.8 ``Conventions``, compression (zlib by
  default; szip, zstd or none on request),
  NetCDF chunks equal to the dask chunks (all bands in one chunk), written through dask chunk by
  chunk (big zlib/uncompressed dask variables are compressed in parallel by the dask workers and
  written as finished HDF5 chunks: :func:`_write_direct`), atomically (temporary file in the target
  folder, renamed on success) and never over an existing file unless ``overwrite=True``.
* :func:`open_dataset` opens such a file lazily, with clear errors for missing/corrupt files.
* :func:`read_netcdf_cube` returns the cube ``DataArray`` (y, x, band) of a simhsi NetCDF.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi._atomic import atomic_path
from simhsi.conventions import BAND, CUBE_DIMS, ENDMEMBER, WAVELENGTH, X, Y, netcdf_safe
from simhsi.errors import DataError, FormatError, InputFileError, OutputError, SimhsiError, check_param

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

#: Names tried, in order, for the cube variable of a NetCDF file.
CUBE_VARIABLES = ("reflectance", "radiance", "dn", "cube", "data", "clean")

#: Default spatial chunk edge (pixels) used when the data are not dask arrays.
DEFAULT_CHUNK = 256

#: Dims never split across NetCDF/dask chunks (pixel-wise operations need them whole).
WHOLE_DIMS = (BAND, ENDMEMBER)

# Encoding keys kept from the source of a variable (everything else, such as the on-disk chunk
# sizes, 'source' or 'contiguous' of a file it was read from, is recomputed here).
_KEEP_ENCODING = ("dtype", "_FillValue", "scale_factor", "add_offset", "units", "calendar", "grid_mapping")

_DEFAULT_DA_NAME = "data"

#: Compression choices of :func:`write_netcdf` (netCDF4-python names).
COMPRESSIONS = ("zlib", "szip", "zstd", "none")
#: szip (CCSDS 121.0, libaec) settings: nearest-neighbour preprocessing, 32 values per block.
SZIP_PIXELS_PER_BLOCK = 32


def _to_dataset(obj: xr.DataArray | xr.Dataset) -> xr.Dataset:
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        return obj.copy(deep=False)
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else _DEFAULT_DA_NAME
        ds = obj.to_dataset(name=str(name), promote_attrs=True)
        # The variable keeps its own attrs; the global attrs get a copy (processing level, sensor...).
        ds[str(name)].attrs = dict(obj.attrs)
        return ds.copy(deep=False)
    raise DataError(f"write_netcdf needs an xarray DataArray or Dataset, got {type(obj).__name__}")


def _safe_attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        v = netcdf_safe(v)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.dtype.itemsize > 8:
            v = v.astype(np.float64)
        out[str(k)] = v
    return out


def _normalise_chunks(ds: xr.Dataset, chunks: Any) -> dict[str, int]:
    """Turn ``chunks`` (int, dict dim→size, or 'auto') into a dict that keeps band/endmember whole."""
    if isinstance(chunks, int | np.integer):
        check_param("chunks", chunks, chunks > 0, "a positive int, a dict {dim: size} or 'auto'", "write_netcdf")
        spec: dict[str, Any] = {d: int(chunks) for d in (Y, X) if d in ds.dims}
    elif isinstance(chunks, Mapping):
        spec = dict(chunks)
    elif chunks == "auto":
        spec = {d: "auto" for d in ds.dims}
    else:
        raise OutputError(f"chunks must be an int, a dict {{dim: size}} or 'auto'; got {chunks!r}")
    for d in WHOLE_DIMS:
        if d in ds.dims:
            spec[d] = -1
    return {d: v for d, v in spec.items() if d in ds.dims}


def _chunksizes(var: xr.Variable) -> tuple[int, ...] | None:
    """NetCDF chunk shape of a variable: its dask chunks, or spatial tiles with whole other dims."""
    if var.ndim == 0 or var.size == 0:
        return None
    if var.chunks is not None:
        return tuple(max(1, int(c[0])) for c in var.chunks)
    sizes = []
    for dim, n in zip(var.dims, var.shape, strict=True):
        sizes.append(min(n, DEFAULT_CHUNK) if dim in (Y, X) else n)
    # NetCDF-4 chunks must be < 4 GiB; keep them at most ~64 MiB by shrinking y/x.
    while np.prod(sizes, dtype=np.float64) * var.dtype.itemsize > 64 * 2**20:
        shrunk = False
        for i, dim in enumerate(var.dims):
            if dim in (Y, X) and sizes[i] > 16:
                sizes[i] //= 2
                shrunk = True
        if not shrunk:
            break
    return tuple(max(1, s) for s in sizes)


def _compression_encoding(compression: str, complevel: int, chunk_values: int) -> dict[str, Any]:
    """netCDF4 encoding keys for one numeric variable whose NetCDF chunks hold ``chunk_values`` values."""
    if compression == "zlib":
        return {"zlib": True, "complevel": int(complevel), "shuffle": True}
    if compression == "zstd":
        return {"compression": "zstd", "complevel": int(complevel), "shuffle": True}
    if compression == "szip" and chunk_values >= SZIP_PIXELS_PER_BLOCK:  # HDF5's szip needs a full block
        return {"compression": "szip", "szip_coding": "nn", "szip_pixels_per_block": SZIP_PIXELS_PER_BLOCK}
    return {}  # "none", or too small for szip


def _prepare(ds: xr.Dataset, complevel: int, compression: str = "zlib") -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """NetCDF-safe attrs, CF conventions, and per-variable encoding (compression + chunks)."""
    from simhsi._version import __version__

    ds.attrs = _safe_attrs(ds.attrs)
    ds.attrs.setdefault("Conventions", "CF-1.8")
    ds.attrs.setdefault("simhsi_version", __version__)
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        var.attrs = _safe_attrs(var.attrs)
        if name == WAVELENGTH and "standard_name" not in var.attrs:
            var.attrs["standard_name"] = "radiation_wavelength"
        enc = {k: v for k, v in var.encoding.items() if k in _KEEP_ENCODING}
        # An attribute that xarray must set itself cannot also be an attr.
        for key in ("_FillValue", "scale_factor", "add_offset", "dtype"):
            if key in var.attrs and key in enc:
                del var.attrs[key]
        kind = var.dtype.kind
        if kind == "O" and var.size and not isinstance(np.ravel(var.values)[0], str | bytes):
            raise OutputError(
                f"variable {name!r} has Python objects of type {type(np.ravel(var.values)[0]).__name__}; "
                "convert it to numbers or strings before writing"
            )
        if kind in "iufb" and var.ndim >= 1 and name not in ds.dims:
            cs = _chunksizes(var)
            enc.update(_compression_encoding(compression, complevel, int(np.prod(cs)) if cs else var.size))
            if cs is not None:
                enc["chunksizes"] = cs
        var.encoding = {}
        encoding[str(name)] = enc
    return ds, encoding


def write_netcdf(
    obj: xr.DataArray | xr.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunks: int | Mapping[str, int] | str | None = None,
    complevel: int = 4,
    progress: bool = False,
    compression: str = "zlib",
) -> Path:
    """Write a ``DataArray`` or ``Dataset`` to a compressed, chunked NetCDF-4 file; return its path.

    Parameters
    ----------
    obj:
        Anything of the data model (cube, abundances, unmixing result, scene). A ``DataArray``
        without a name is stored as variable ``"data"``. Bool variables, string coordinates and a
        rioxarray ``spatial_ref`` CRS variable are supported; attribute values NetCDF cannot store
        (None, bool, dict, lists of strings) are converted with :func:`simhsi.conventions.netcdf_safe`.
    path:
        Output file. Written to a temporary file in the same folder, renamed on success; on any
        failure nothing is left behind and an existing file is untouched.
    overwrite:
        Replace ``path`` if it exists (otherwise :class:`~simhsi.errors.OutputError`).
    chunks:
        Re-chunk before writing: an int (y/x tile edge in pixels), a dict ``{dim: size}`` or
        ``"auto"``. ``band`` and ``endmember`` always stay whole in a chunk. ``None`` keeps the
        dask chunks of ``obj`` (numpy data get 256 x 256 pixel NetCDF chunks).
    complevel:
        zlib level, 1 (fast) to 9 (small) (zstd: its level, 1 to 9; ignored by szip and none). Dask
        variables of ≥ 8 MiB are deflated in parallel with ISA-L (``isal``), whose levels stop at 3:
        4-9 mean 3 for them and 0 stores them uncompressed (the stream is ordinary deflate, read by every
        NetCDF-4 reader).
    progress:
        Show a tqdm bar while dask computes and writes the chunks.
    compression:
        ``"zlib"`` (deflate + byte shuffle; every NetCDF-4 reader; compressed in parallel), ``"szip"``
        (CCSDS lossless coding, nearest-neighbour preprocessing: ~7 % smaller on integer sensor DN but
        compressed serially inside HDF5; readers need HDF5 built with
        szip/libaec, as the netCDF4 and h5py wheels, conda and Debian/Ubuntu HDF5 are), ``"zstd"``
        (netCDF-C >= 4.9 with its filter plugins to read back) or ``"none"``.
    """
    check_param("complevel", complevel, isinstance(complevel, int) and 0 <= complevel <= 9,
                "an int in [0, 9]", "write_netcdf")
    check_param("compression", compression, compression in COMPRESSIONS, "one of " + ", ".join(COMPRESSIONS),
                "write_netcdf")
    ds = _to_dataset(obj)
    if chunks is not None:
        ds = ds.chunk(_normalise_chunks(ds, chunks))
    elif any(len(ds.chunksizes.get(d, ())) > 1 for d in WHOLE_DIMS):
        # keep the band / endmember axis whole in every chunk
        ds = ds.chunk({d: -1 for d in WHOLE_DIMS if d in ds.chunksizes})
    ds, encoding = _prepare(ds, complevel, compression)
    lazy = any(v.chunks is not None for v in ds.variables.values())
    final = Path(path)
    direct = _direct_candidates(ds, encoding, compression) if lazy else []
    with atomic_path(final, overwrite=overwrite) as tmp:
        try:
            if direct:
                # the big variables are compressed in parallel and written chunk by chunk after the rest
                rest = ds.drop_vars(direct)
                rest.to_netcdf(tmp, mode="w", engine="netcdf4", format="NETCDF4",
                               encoding={k: v for k, v in encoding.items() if k not in direct})
                _write_direct(ds, direct, encoding, tmp, compression, complevel, progress,
                              f"writing {final.name}")
            elif lazy:
                delayed = ds.to_netcdf(tmp, mode="w", engine="netcdf4", format="NETCDF4",
                                       encoding=encoding, compute=False)
                if progress:
                    from tqdm.dask import TqdmCallback

                    with TqdmCallback(desc=f"writing {final.name}"):
                        delayed.compute()
                else:
                    delayed.compute()
            else:
                ds.to_netcdf(tmp, mode="w", engine="netcdf4", format="NETCDF4", encoding=encoding)
        except SimhsiError:
            raise
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise OutputError(f"cannot write NetCDF ({type(exc).__name__}: {msg})", path=final) from exc
        _umask_mode(tmp)
    return final


# ------------------------------------------------------------------------ parallel (direct-chunk) writes
#: A dask variable of at least this many bytes is written by :func:`_write_direct` (zlib / none).
DIRECT_MIN_BYTES = 8 * 2**20


def _deflate() -> tuple[Any, int]:
    """(module with ``compress(data, level)`` making zlib-format deflate streams, its highest level).

    ``isal`` (Intel ISA-L, 3-6 x faster than zlib at similar ratios) when installed, else the standard
    library's ``zlib``. Both release the GIL while compressing and both streams are plain HDF5 deflate.
    """
    try:
        from isal import isal_zlib

        return isal_zlib, 3
    except ImportError:  # pragma: no cover - isal is a dependency; kept optional for source installs
        import zlib

        return zlib, 9


def _direct_candidates(ds: xr.Dataset, encoding: Mapping[str, Mapping[str, Any]], compression: str) -> list[str]:
    """Big dask data variables that :func:`_write_direct` can write exactly as xarray would."""
    if compression not in ("zlib", "none") or _distributed_client_active():
        return []  # (a cluster's workers cannot hold the open h5py file: xarray's own path is used there)
    names = []
    for name, var in ds.data_vars.items():
        enc = encoding.get(str(name), {})
        if (var.chunks is None or var.dtype.kind not in "iuf" or var.nbytes < DIRECT_MIN_BYTES
                or any(k in enc for k in ("scale_factor", "add_offset", "calendar"))
                or ("dtype" in enc and np.dtype(enc["dtype"]) != var.dtype) or not enc.get("chunksizes")):
            continue  # xarray's CF encoder would transform these values: leave them to it
        names.append(str(name))
    return names


def _distributed_client_active() -> bool:
    """Whether a dask.distributed client is the default scheduler (``simhsi render-cube --scheduler``)."""
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return False
    return True


class _ChunkStore:
    """dask ``store`` target: each block is shuffled and deflated in the calling (worker) thread, then
    written as one finished HDF5 chunk (``H5Dwrite_chunk``) under a lock, so compression runs in parallel."""

    def __init__(self, dset: Any, chunk: tuple[int, ...], level: int | None, lock: Any) -> None:
        self.dset, self.chunk, self.level, self.lock = dset, chunk, level, lock
        self.dtype = dset.dtype
        self.module = _deflate()[0] if level is not None else None

    def __setitem__(self, key: tuple[slice, ...], block: np.ndarray) -> None:
        block = np.asarray(block, dtype=self.dtype)
        if block.shape != self.chunk:  # edge chunks are stored full size in HDF5
            full = np.zeros(self.chunk, dtype=self.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        data = np.ascontiguousarray(block)
        if self.module is not None:
            size = data.dtype.itemsize
            if size > 1:  # HDF5 shuffle filter: byte k of every value, for k = 0..size-1
                data = np.ascontiguousarray(data.reshape(-1).view(np.uint8).reshape(-1, size).T)
            payload = self.module.compress(data, self.level)
        else:
            payload = data
        offset = tuple(int(s.start or 0) for s in key)
        with self.lock:
            self.dset.id.write_direct_chunk(offset, payload)


def _write_direct(ds: xr.Dataset, names: list[str], encoding: Mapping[str, Mapping[str, Any]], tmp: Path,
                  compression: str, complevel: int, progress: bool, label: str) -> None:
    """Add the variables ``names`` of ``ds`` to the NetCDF file ``tmp`` (written without them).

    The variables are defined with netCDF4 (same dims, dtype, attrs, chunks and filters as xarray
    would give them), then every dask block is computed, compressed in the worker threads and written
    with h5py as a finished chunk: the serial part is only the disk write.
    """
    import threading

    import dask.array as da
    import h5py
    import netCDF4

    module, max_level = _deflate()
    level = None if compression == "none" else min(int(complevel), max_level)
    if level == 0:
        level = None  # deflate level 0 only stores: write the chunks uncompressed (no filter to declare)
    coord_names = [str(c) for c in ds.coords if c not in ds.dims]
    with netCDF4.Dataset(tmp, "a") as nc:
        attached: set[str] = set()
        for name in names:
            var = ds[name]
            enc = encoding[name]
            for dim, n in zip(var.dims, var.shape, strict=True):
                if dim not in nc.dimensions:
                    nc.createDimension(dim, n)
            fill = enc.get("_FillValue", np.nan if var.dtype.kind == "f" else None)
            v = nc.createVariable(name, var.dtype, var.dims, zlib=level is not None,
                                  complevel=level or 0, shuffle=level is not None and var.dtype.itemsize > 1,
                                  chunksizes=tuple(enc["chunksizes"]), fill_value=fill)
            v.set_auto_maskandscale(False)
            coords = sorted(c for c in coord_names if set(ds[c].dims) <= set(var.dims))
            attrs = {k: val for k, val in var.attrs.items() if k not in ("_FillValue", "coordinates")}
            if coords:
                attrs["coordinates"] = " ".join(coords)
                attached.update(coords)
            v.setncatts(attrs)
        if "coordinates" in nc.ncattrs():  # xarray listed coords left without a variable there: now attached
            rest = [c for c in str(nc.getncattr("coordinates")).split() if c not in attached]
            if rest:
                nc.setncattr("coordinates", " ".join(rest))
            else:
                nc.delncattr("coordinates")
    lock = threading.Lock()
    with h5py.File(tmp, "r+") as h5:
        sources, targets = [], []
        for name in names:
            chunk = tuple(int(c) for c in encoding[name]["chunksizes"])
            arr = ds[name].data
            if any(any(c != chunk[i] for c in cs[:-1]) or cs[-1] > chunk[i] for i, cs in enumerate(arr.chunks)):
                arr = arr.rechunk(chunk)
            sources.append(arr)
            targets.append(_ChunkStore(h5[name], chunk, level, lock))
        if progress:
            from tqdm.dask import TqdmCallback

            with TqdmCallback(desc=label):
                da.store(sources, targets, lock=False)
        else:
            da.store(sources, targets, lock=False)


def _umask_mode(path: Path) -> None:
    """Give a temporary file (created 0600 by mkstemp) the usual permissions for a new file (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def open_dataset(
    path: str | os.PathLike[str], *, chunks: int | Mapping[str, int] | str | None = "auto"
) -> xr.Dataset:
    """Open a NetCDF file lazily (dask ``chunks``; ``None`` for plain lazy arrays).

    Raises :class:`~simhsi.errors.InputFileError` for a missing, truncated or corrupt file and
    :class:`~simhsi.errors.FormatError` for a file that is not NetCDF/HDF5 at all. The rioxarray
    CRS variable (``spatial_ref``) becomes a coordinate.
    """
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise InputFileError("no such file", path=p)
    if p.is_dir():
        raise InputFileError("is a directory, not a NetCDF file", path=p)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise InputFileError("file is empty", path=p)
    if not (head.startswith(b"\x89HDF") or head.startswith(b"CDF")):
        raise FormatError(f"not a NetCDF file (starts with {head!r}); simhsi writes NetCDF-4 (HDF5)", path=p)
    try:
        ds = xr.open_dataset(p, engine="netcdf4", chunks=chunks, decode_coords="all")
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if _is_readable_hdf5(p):
            raise FormatError(f"an HDF5 file that xarray cannot read as NetCDF-4 ({msg})", path=p) from exc
        raise InputFileError(f"cannot open as NetCDF, the file is truncated or corrupt ({msg})", path=p) from exc
    # Small 1-D coordinates (wavelength, fwhm, bad_band, names) are read now, not left as dask.
    small = [n for n, c in ds.coords.items() if c.ndim <= 1 and c.chunks is not None]
    if small:
        ds = ds.assign_coords({n: ds.coords[n].compute() for n in small})
    return ds


def _is_readable_hdf5(path: Path) -> bool:
    """Whether h5py opens the file (i.e. it is intact HDF5, just not something netCDF4 reads)."""
    import h5py

    try:
        with h5py.File(path, "r"):
            return True
    except (OSError, ValueError):
        return False


def _pick_cube_variable(ds: xr.Dataset, path: Path, variable: str | None) -> str:
    if variable is not None:
        if variable not in ds.data_vars:
            raise FormatError(
                f"no variable {variable!r}; it holds {', '.join(map(str, ds.data_vars)) or 'no variables'}",
                path=path,
            )
        return variable
    candidates = [str(n) for n, v in ds.data_vars.items() if set(v.dims) == set(CUBE_DIMS)]
    if not candidates:
        held = ", ".join(f"{n}{tuple(map(str, v.dims))}" for n, v in ds.data_vars.items()) or "no variables"
        raise FormatError(
            f"no cube variable with dims (y, x, band); it holds {held}. "
            "Open it with simhsi.io.netcdf.open_dataset instead",
            path=path,
        )
    for name in CUBE_VARIABLES:
        if name in candidates:
            return name
    if len(candidates) == 1:
        return candidates[0]
    raise FormatError(f"several cube variables ({', '.join(candidates)}); choose one with variable=", path=path)


def read_netcdf_cube(
    path: str | os.PathLike[str],
    variable: str | None = None,
    *,
    chunks: int | Mapping[str, int] | str | None = "auto",
) -> xr.DataArray:
    """Return the cube ``DataArray`` (y, x, band) of a simhsi NetCDF, lazily (dask).

    ``variable`` names the cube variable; by default the one with dims (y, x, band), preferring
    ``reflectance``, ``radiance``, ``dn``, ``cube``. Global attributes of the file are added to the
    cube's attrs (the variable's own attrs win); ``source_file`` is set to ``path``.
    """
    p = Path(path)
    ds = open_dataset(p, chunks=chunks)
    name = _pick_cube_variable(ds, p, variable)
    da = ds[name]
    if set(da.dims) != set(CUBE_DIMS):
        raise FormatError(f"variable {name!r} has dims {da.dims}, not (y, x, band)", path=p)
    if da.dtype.kind not in "iuf":
        raise DataError(f"variable {name!r} is not numeric (dtype {da.dtype}); a cube must hold numbers", path=p)
    if WAVELENGTH not in da.coords:
        raise FormatError(
            f"variable {name!r} has no 'wavelength' coordinate on 'band'; add band centres in nm", path=p
        )
    da = da.transpose(*CUBE_DIMS)
    da.attrs = {**ds.attrs, **da.attrs, "source_file": str(p)}
    return da
