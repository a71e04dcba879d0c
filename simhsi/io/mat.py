"""MATLAB ``.mat`` files of the unmixing benchmarks (Zhu's Samson / Jasper Ridge / Urban layout).

Layout (see ``simhsi/data/PROVENANCE.md``): the image is a (bands, pixels) matrix ``V`` or ``Y``
with ``nRow``/``nCol`` scalars, pixels in MATLAB column-major order, i.e.
``cube = Y.T.reshape(nRow, nCol, bands, order="F")``. Ground truth is either Zhu's ``end*.mat``
(``M`` (bands, p), ``A`` (p, pixels) column-major, ``cood`` names) or MiSiCNet's ``E.mat``
(``E`` (bands, p)) + ``A_true.mat`` (``A_true`` (H, W, p)). Both MATLAB v5 (scipy) and v7.3
(HDF5, h5py) files are read.

Benchmark files usually carry no wavelengths (variables ``wavelength``/``fwhm`` in nm are used when present);
otherwise they are reconstructed from the sensor's nominal grid and
flagged ``wavelengths_approximate=1`` in the attrs:

* Samson (156 bands): ``linspace(401, 889, 156)`` nm;
* Jasper Ridge (AVIRIS, ``nBand`` = 224 with ``SlectBands``): ``380 + (SlectBands - 1) * 9.46`` nm;
* HYDICE Urban (``nBand`` = 210 with ``SlectBands``): ``linspace(400, 2500, 210)[SlectBands - 1]`` nm.

FWHM is approximated by the band spacing (``fwhm_approximate=1``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.conventions import make_abundances, make_cube, make_library
from simhsi.errors import DataError, FormatError, InputFileError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

#: Variable names tried, in order, for the image matrix / endmembers / abundances.
CUBE_KEYS = ("V", "Y", "X", "data", "cube", "image", "img", "HSI")
ENDMEMBER_KEYS = ("M", "E", "endmembers", "M1")
ABUNDANCE_KEYS = ("A", "A_true", "abundances", "abundance")
NAME_KEYS = ("cood", "names", "endmember_names", "material_names")


def _h5_to_numpy(f: Any, obj: Any) -> Any:
    """Convert an h5py object of a v7.3 file to numpy, reversing the axes (MATLAB is column-major)."""
    import h5py

    if isinstance(obj, h5py.Group):
        return {k: _h5_to_numpy(f, v) for k, v in obj.items() if not k.startswith("#")}
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    arr = obj[()]
    if obj.dtype == h5py.ref_dtype:  # cell array
        cells = np.empty(arr.shape, dtype=object)
        for idx, ref in np.ndenumerate(arr):
            cells[idx] = _h5_to_numpy(f, f[ref])
        return cells.T
    arr = np.asarray(arr)
    if arr.ndim >= 2:
        arr = arr.T
    if cls == "char":
        return "".join(map(chr, np.ravel(arr, order="F").astype(np.uint32)))
    return arr


def load_mat(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All variables of a MATLAB v5 or v7.3 ``.mat`` file as numpy arrays (MATLAB axis order)."""
    p = Path(path)
    if not p.exists():
        raise InputFileError("no such file", path=p)
    import scipy.io as sio

    try:
        data = sio.loadmat(p)
    except NotImplementedError:  # v7.3 = HDF5
        import h5py

        try:
            with h5py.File(p, "r") as f:
                return {k: _h5_to_numpy(f, v) for k, v in f.items() if not k.startswith("#")}
        except OSError as exc:
            raise InputFileError(f"cannot read MATLAB v7.3 (HDF5) file, truncated or corrupt ({exc})",
                                 path=p) from exc
    except (ValueError, TypeError, OSError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"cannot read .mat file, truncated or corrupt ({msg})", path=p) from exc
    return {k: v for k, v in data.items() if not k.startswith("__")}


def _scalar(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    a = np.asarray(v).ravel()
    return int(a[0]) if a.size == 1 and a.dtype.kind in "iuf" else None


def _first(d: dict[str, Any], keys: Sequence[str], what: str, path: Path) -> tuple[str, np.ndarray]:
    for k in keys:
        if k in d and isinstance(d[k], np.ndarray) and d[k].dtype.kind in "iufb":
            return k, d[k]
    held = ", ".join(f"{k}{getattr(v, 'shape', '')}" for k, v in d.items()) or "nothing"
    raise FormatError(f"no {what} variable (tried {', '.join(keys)}); the file holds {held}", path=path)


def _get(d: dict[str, Any], variable: str | None, keys: Sequence[str], what: str, path: Path) -> tuple[str, np.ndarray]:
    if variable is None:
        return _first(d, keys, what, path)
    if variable not in d:
        raise FormatError(f"no variable {variable!r}; the file holds {', '.join(d) or 'nothing'}", path=path)
    return variable, np.asarray(d[variable])


def _names(d: dict[str, Any], p: int) -> list[str] | None:
    for k in NAME_KEYS:
        if k in d:
            raw = np.ravel(np.asarray(d[k], dtype=object))
            names = []
            for item in raw:
                while isinstance(item, np.ndarray) and item.size == 1:
                    item = item.ravel()[0]
                s = str(item).strip()
                # Zhu's cood entries are "1-tree", "2-water", ...
                head, _, tail = s.partition("-")
                names.append(tail if head.isdigit() and tail else s)
            if len(names) == p:
                return names
    return None


def benchmark_wavelengths(d: dict[str, Any], n_bands: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Nominal (approximate) band centres and FWHM in nm for a Zhu benchmark file, or None."""
    n_band_total = _scalar(d, "nBand")
    sel = d.get("SlectBands", d.get("SelectBands"))
    if sel is not None:
        idx = np.asarray(sel, dtype=np.float64).ravel()
        if idx.size != n_bands:
            return None
        if n_band_total == 224:  # AVIRIS (Jasper Ridge, Cuprite)
            wl = 380.0 + (idx - 1.0) * 9.46
            return wl, np.full(n_bands, 9.46)
        if n_band_total == 210:  # HYDICE (Urban)
            grid = np.linspace(400.0, 2500.0, 210)
            return grid[(idx - 1).astype(int)], np.full(n_bands, grid[1] - grid[0])
        return None
    if n_bands == 156 and n_band_total in (None, 156):  # Samson
        wl = np.linspace(401.0, 889.0, 156)
        return wl, np.full(156, wl[1] - wl[0])
    return None


def read_mat_cube(
    path: str | os.PathLike[str],
    *,
    variable: str | None = None,
    shape: tuple[int, int] | None = None,
    wavelength: Sequence[float] | np.ndarray | None = None,
    fwhm: Sequence[float] | np.ndarray | None = None,
    chunks: Any = None,
    dtype: Any = np.float32,
) -> xr.DataArray:
    """Read a benchmark ``.mat`` image as a cube ``DataArray`` (y, x, band).

    ``variable`` names the image (default: first of ``V``, ``Y``, ...); a 2-D (bands, pixels)
    matrix is reshaped column-major with ``nRow``/``nCol`` from the file or ``shape=(rows, cols)``,
    a 3-D array is taken as (rows, cols, bands). ``wavelength``/``fwhm`` (nm) override the
    nominal grid of the known benchmarks; for unknown files without them the wavelengths are NaN
    (with a warning). ``chunks`` makes the result a dask array (the file is read whole anyway).
    """
    p = Path(path)
    d = load_mat(p)
    key, arr = _get(d, variable, CUBE_KEYS, "image", p)
    if arr.dtype.kind not in "iuf":
        raise DataError(f"variable {key!r} is not numeric (dtype {arr.dtype})", path=p)
    if arr.ndim == 2:
        n_bands, n_pix = arr.shape
        rows, cols = shape if shape is not None else (_scalar(d, "nRow"), _scalar(d, "nCol"))
        if rows is None or cols is None:
            side = int(round(np.sqrt(n_pix)))
            if side * side != n_pix:
                raise FormatError(f"{key!r} is (bands, pixels) = {arr.shape} but the file has no nRow/nCol; "
                                  "pass shape=(rows, cols)", path=p)
            rows = cols = side
        if rows * cols != n_pix:
            if rows * cols == n_bands:  # stored (pixels, bands)
                arr = arr.T
                n_bands, n_pix = arr.shape
            else:
                raise FormatError(f"{key!r} has {n_pix} pixels but nRow x nCol = {rows} x {cols}", path=p)
        data = arr.T.reshape(rows, cols, n_bands, order="F")
    elif arr.ndim == 3:
        data = arr
        n_bands = arr.shape[2]
    else:
        raise FormatError(f"{key!r} has shape {arr.shape}; expected (bands, pixels) or (rows, cols, bands)", path=p)
    data = np.ascontiguousarray(data, dtype=dtype)
    attrs: dict[str, Any] = {"source_file": str(p), "format": "mat", "mat_variable": key}
    if wavelength is None and "wavelength" in d and np.asarray(d["wavelength"]).size == n_bands:
        # files that carry their band centres (e.g. examples/benchmark_dataset) need no nominal grid
        wavelength = np.asarray(d["wavelength"], dtype=np.float64).ravel()
        if fwhm is None and "fwhm" in d and np.asarray(d["fwhm"]).size == n_bands:
            fwhm = np.asarray(d["fwhm"], dtype=np.float64).ravel()
    if wavelength is not None:
        wl = np.asarray(wavelength, dtype=np.float64)
        fw = None if fwhm is None else np.asarray(fwhm, dtype=np.float64)
        attrs["wavelengths_approximate"] = 0
    else:
        nominal = benchmark_wavelengths(d, n_bands)
        if nominal is None:
            warnings.warn(f"{p}: no wavelengths in the file and not a known benchmark layout; "
                          "wavelengths set to NaN (pass wavelength=...)", stacklevel=2)
            wl, fw = np.full(n_bands, np.nan), None
            attrs["wavelengths_approximate"] = 1
        else:
            wl, fw = nominal
            attrs["wavelengths_approximate"] = 1
            attrs["fwhm_approximate"] = 1
        if fwhm is not None:
            fw = np.asarray(fwhm, dtype=np.float64)
    if "SlectBands" in d:
        attrs["selected_bands_1based"] = np.asarray(d["SlectBands"], dtype=np.int32).ravel()
    if "maxValue" in d:
        attrs["max_value"] = _scalar(d, "maxValue")
    units = "count" if arr.dtype.kind in "iu" else "1"
    cube = make_cube(data, wl, fw, units=units, name="cube", attrs=attrs)
    if chunks is not None:
        cube = cube.chunk(chunks if isinstance(chunks, dict) else {"y": chunks, "x": chunks, "band": -1})
    return cube


def read_mat_endmembers(path: str | os.PathLike[str], *, variable: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Endmember matrix (bands, p) of a ground-truth file (``M`` of end*.mat, ``E`` of MiSiCNet) and names."""
    p = Path(path)
    d = load_mat(p)
    key, arr = _get(d, variable, ENDMEMBER_KEYS, "endmember", p)
    if arr.ndim != 2:
        raise FormatError(f"endmember matrix {key!r} must be 2-D (bands, p); got {arr.shape}", path=p)
    return np.asarray(arr, dtype=np.float64), _names(d, arr.shape[1])


def read_mat_abundances(
    path: str | os.PathLike[str], *, shape: tuple[int, int] | None = None, variable: str | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """Abundances (p, rows, cols) of a ground-truth file and names (or None).

    Accepts (p, pixels) column-major matrices (Zhu's ``A``; ``shape=(rows, cols)`` needed unless
    square or ``nRow``/``nCol`` are in the file) and (rows, cols, p) arrays (MiSiCNet ``A_true``).
    """
    p = Path(path)
    d = load_mat(p)
    key, arr = _get(d, variable, ABUNDANCE_KEYS, "abundance", p)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 3:
        out = np.moveaxis(arr, 2, 0)
    elif arr.ndim == 2:
        n_em, n_pix = arr.shape
        rows, cols = shape if shape is not None else (_scalar(d, "nRow"), _scalar(d, "nCol"))
        if rows is None or cols is None:
            side = int(round(np.sqrt(n_pix)))
            if side * side != n_pix:
                raise FormatError(f"{key!r} is (p, pixels) = {arr.shape}; pass shape=(rows, cols)", path=p)
            rows = cols = side
        if rows * cols != n_pix:
            raise FormatError(f"{key!r} has {n_pix} pixels but shape is {rows} x {cols}", path=p)
        out = np.moveaxis(arr.T.reshape(rows, cols, n_em, order="F"), 2, 0)
    else:
        raise FormatError(f"abundance array {key!r} has shape {arr.shape}", path=p)
    return np.ascontiguousarray(out), _names(d, out.shape[0])


def read_mat_ground_truth(
    endmember_path: str | os.PathLike[str],
    abundance_path: str | os.PathLike[str] | None = None,
    *,
    shape: tuple[int, int] | None = None,
    wavelength: Sequence[float] | np.ndarray | None = None,
    fwhm: Sequence[float] | np.ndarray | None = None,
    names: Sequence[str] | None = None,
    dtype: Any = np.float32,
) -> xr.Dataset:
    """Ground truth as a Dataset: ``endmembers`` (endmember, band) and ``abundances`` (endmember, y, x).

    ``endmember_path`` holds the endmembers (and the abundances for Zhu's end*.mat);
    ``abundance_path`` the abundances when separate (MiSiCNet ``A_true.mat``). Names come from
    ``names=``, else from the file (``cood``), else ``em0, em1, ...``.
    """
    import xarray as xr

    E, names_e = read_mat_endmembers(endmember_path)
    A, names_a = read_mat_abundances(abundance_path or endmember_path, shape=shape)
    if A.shape[0] != E.shape[1]:
        raise DataError(f"{E.shape[1]} endmembers but {A.shape[0]} abundance maps", path=abundance_path)
    names = list(names) if names is not None else (names_e or names_a)
    nb = E.shape[0]
    wl = np.full(nb, np.nan) if wavelength is None else np.asarray(wavelength, dtype=np.float64)
    lib = make_library(E.T.astype(dtype), wl, fwhm, names)
    ab = make_abundances(A.astype(dtype), lib.endmember.values.tolist())
    return xr.Dataset({"endmembers": lib, "abundances": ab})
