"""Readers and writers. :func:`open_cube` opens any supported file by its content.

Supported: PRISMA HDF-EOS5 (``.he5``, L1/L2B/L2C/L2D), ENVI (``.hdr`` + data), GeoTIFF/COG,
simhsi's own NetCDF, and the benchmark ``.mat`` layout of unmixing papers (Zhu's Samson/Jasper).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simhsi._libs  # noqa: F401  (netCDF4 before rasterio; see simhsi/_libs.py)
from simhsi.errors import FormatError, InputFileError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

FORMATS = ("prisma", "envi", "geotiff", "netcdf", "mat")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(head: bytes, path: Path) -> bool:
    if head.startswith(_HDF5_MAGIC):
        return True
    # HDF5 may start after a user block of 512, 1024, ... bytes (MATLAB v7.3 uses 512).
    try:
        with open(path, "rb") as fh:
            for off in (512, 1024, 2048):
                fh.seek(off)
                if fh.read(8) == _HDF5_MAGIC:
                    return True
    except OSError:
        return False
    return False


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return the format name of ``path`` from its content (not only its extension).

    Raises :class:`InputFileError` if the file is missing/unreadable and :class:`FormatError` if the
    content is not a supported format.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError("no such file", path=p)
    if p.is_dir():
        raise InputFileError("is a directory, not a file", path=p)
    if p.suffix.lower() == ".hdr":
        return "envi"
    try:
        with open(p, "rb") as fh:
            head = fh.read(128)
    except OSError as exc:
        raise InputFileError(f"cannot read ({exc.strerror or exc})", path=p) from exc
    if not head:
        raise InputFileError("file is empty", path=p)
    if head.startswith(b"MATLAB"):
        return "mat"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "geotiff"
    if head[:3] == b"CDF":
        return "netcdf"
    if _is_hdf5(head, p):
        from simhsi.io.prisma import is_prisma

        return "prisma" if is_prisma(p) else "netcdf"
    if p.with_suffix(".hdr").exists() or Path(str(p) + ".hdr").exists():
        return "envi"
    if p.suffix.lower() in (".he5", ".h5", ".hdf5", ".nc"):
        raise InputFileError(f"not a valid HDF5/NetCDF file (truncated or corrupt?); starts with {head[:8]!r}", path=p)
    raise FormatError(
        "unknown format; simhsi reads PRISMA .he5, ENVI (.hdr + data), GeoTIFF, NetCDF and benchmark .mat files",
        path=p,
    )


def open_cube(path: str | os.PathLike[str], *, format: str | None = None, **kwargs: Any) -> xr.DataArray:
    """Open a hyperspectral cube as a lazy ``DataArray`` (y, x, band) with ``wavelength``/``fwhm`` in nm.

    ``format`` forces a reader (one of :data:`FORMATS`); by default it is detected from the content.
    Extra keyword arguments go to the reader (e.g. ``overlap=`` for PRISMA, ``chunks=``).
    """
    fmt = format or detect_format(path)
    if fmt == "prisma":
        from simhsi.io.prisma import read_prisma as reader
    elif fmt == "envi":
        from simhsi.io.envi import read_envi as reader
    elif fmt == "geotiff":
        from simhsi.io.geotiff import read_geotiff as reader
    elif fmt == "netcdf":
        from simhsi.io.netcdf import read_netcdf_cube as reader
    elif fmt == "mat":
        from simhsi.io.mat import read_mat_cube as reader
    else:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", path=path)
    return reader(path, **kwargs)
