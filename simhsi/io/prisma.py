"""PRISMA HDF-EOS5 (``.he5``) products: a lazy reader and a writer of the exact product layout.

Reader: :func:`read_prisma` opens L1 (top-of-atmosphere radiance), L2B (at-surface radiance), L2C and
L2D (surface reflectance) products as a dask-backed ``DataArray`` (y, x, band): VNIR and SWIR merged,
unused slots (centre 0 or flag 0) dropped, bands in ascending wavelength, DN scaled to physical units,
fill (DN 0) and pixels flagged in the error matrices set to NaN. Nothing but the band lists, scale
attributes and geolocation is read when opening; every dask task reopens the file by path and reads only
the hyperslab (rows, bands, columns) it needs, so the cube works with threads, processes and
``dask.distributed`` alike.

Writer: :func:`write_prisma_he5` writes a cube (or raw DN) in the product layout: VNIR/SWIR split on the
real 2020 band lists (66/173 slots in descending wavelength, unused slots with flag 0), uint16 DN with the
real scale attributes, geolocation, error matrices and, for L2D, the corner/EPSG attributes.

Layout facts and conventions: ``docs/prisma-format.md``.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.errors import DataError, FormatError, InputFileError, ParameterError, check_param

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = [
    "DETECTORS",
    "LEVELS",
    "MASKED_ERROR_CODES",
    "WATER_VAPOUR_WINDOWS_NM",
    "default_band_lists",
    "default_scale_attrs",
    "is_prisma",
    "read_prisma",
    "write_prisma_he5",
]

LEVELS = ("L1", "L2B", "L2C", "L2D")
DETECTORS = ("VNIR", "SWIR")
#: Water-vapour windows (nm, inclusive) marked in ``bad_band``: the EMIT L2A good-band windows.
WATER_VAPOUR_WINDOWS_NM = ((1327.52, 1431.84), (1774.14, 1959.83))
#: Error-matrix codes masked by default: 1 defective, 2 saturated, 4 NaN/Inf (3 "lower accuracy" is kept).
MASKED_ERROR_CODES = (1, 2, 4)
#: Nominal ground sampling distance of the VNIR/SWIR cubes (m).
GSD_M = 30.0

_SWATH_RE = re.compile(r"^PRS_(L1|L2B|L2C|L2D)_(HCO|HRC)$")
_OVERLAP = ("drop_swir", "drop_vnir", "keep")
_WATER = ("mark", "drop", "keep")
_CORNER = ("auto", "center", "edge")


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def _swath_path(level: str, product: str = "HCO") -> str:
    return f"HDFEOS/SWATHS/PRS_{level}_{product}"


def _cube_name(det: str) -> str:
    return f"{det}_Cube"


def _err_name(level: str, det: str) -> str:
    return f"{det}_PIXEL_SAT_ERR_MATRIX" if level == "L1" else f"{det}_PIXEL_L2_ERR_MATRIX"


def _geo_names(level: str) -> tuple[tuple[str, str], ...]:
    """Candidate (latitude, longitude) dataset names under ``Geolocation Fields``, best first."""
    if level == "L1":
        return (("Latitude_VNIR", "Longitude_VNIR"), ("Latitude_SWIR", "Longitude_SWIR"), ("Latitude", "Longitude"))
    return (("Latitude", "Longitude"), ("Latitude_VNIR", "Longitude_VNIR"))


def _attr_str(v: Any) -> str:
    if isinstance(v, bytes | np.bytes_):
        return v.decode("ascii", "replace").strip("\x00 ")
    if isinstance(v, np.ndarray) and v.size == 1:
        return _attr_str(v.reshape(-1)[0])
    return str(v).strip()


def _attr_float(attrs: Mapping[str, Any], name: str, path: Path) -> float:
    if name not in attrs:
        raise FormatError(f"root attribute {name!r} is missing; cannot scale DN to physical units", path=path)
    try:
        return float(np.asarray(attrs[name]).reshape(-1)[0])
    except (TypeError, ValueError, IndexError) as exc:
        raise FormatError(f"root attribute {name!r} is not a number: {attrs[name]!r}", path=path) from exc


def _in_windows(wl: np.ndarray, windows: Sequence[tuple[float, float]]) -> np.ndarray:
    bad = np.zeros(wl.shape, dtype=bool)
    for lo, hi in windows:
        bad |= (wl >= lo) & (wl <= hi)
    return bad


def _open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except FileNotFoundError as exc:
        raise InputFileError("no such file", path=path) from exc
    except OSError as exc:
        raise InputFileError(f"cannot open as HDF5 (truncated or corrupt?): {exc}", path=path) from exc


def _find_swath(f, path: Path) -> tuple[str, str]:
    """Return (level, swath group path) of the hyperspectral cube swath; prefer HCO over HRC."""
    swaths = f.get("HDFEOS/SWATHS")
    if swaths is None:
        raise FormatError("no 'HDFEOS/SWATHS' group: not a PRISMA HDF-EOS5 product", path=path)
    found = {}
    for name in swaths:
        m = _SWATH_RE.match(name)
        if m:
            found.setdefault(m.group(1), []).append((m.group(2) != "HCO", name))
    if not found:
        raise FormatError(
            f"no PRS_L1/L2B/L2C/L2D_HCO swath under 'HDFEOS/SWATHS' (found: {', '.join(swaths) or 'nothing'})",
            path=path,
        )
    level = next(lv for lv in ("L2D", "L2C", "L2B", "L1") if lv in found)
    name = sorted(found[level])[0][1]
    return level, f"HDFEOS/SWATHS/{name}"


def is_prisma(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a PRISMA HDF-EOS5 product (``HDFEOS/SWATHS/PRS_*`` group or PRISMA root attrs).

    A file that HDF5 cannot open counts as PRISMA when it is named ``*.he5``, so that reading it reports
    the real problem (truncated/corrupt) instead of "unknown format".
    """
    import h5py

    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            sw = f.get("HDFEOS/SWATHS")
            if sw is not None and any(str(n).startswith("PRS_") for n in sw):
                return True
            return "List_Cw_Vnir" in f.attrs and "Processing_Level" in f.attrs
    except (OSError, ValueError):
        return p.suffix.lower() == ".he5"


# --------------------------------------------------------------------------------------------------
# lazy source
# --------------------------------------------------------------------------------------------------


def _axis_index(k: Any, n: int) -> tuple[np.ndarray, bool]:
    """Index array and squeeze flag for one axis key (int, slice, list/array of ints or bools)."""
    if isinstance(k, int | np.integer):
        i = int(k) + n if k < 0 else int(k)
        if not 0 <= i < n:
            raise IndexError(f"index {k} out of range for axis of size {n}")
        return np.array([i], dtype=np.intp), True
    if isinstance(k, slice):
        return np.arange(n, dtype=np.intp)[k], False
    a = np.asarray(k)
    if a.dtype == bool:
        return np.flatnonzero(a).astype(np.intp), False
    a = a.astype(np.intp).reshape(-1)
    return np.where(a < 0, a + n, a), False


def _as_slice(pos: np.ndarray) -> slice | None:
    """``pos`` as an equivalent slice when it is a run with step +1 or -1 (so indexing gives a view)."""
    if pos.size == 0:
        return None
    p0, p1 = int(pos[0]), int(pos[-1])
    if pos.size == 1:
        return slice(p0, p0 + 1)
    d = np.diff(pos)
    if np.all(d == 1):
        return slice(p0, p1 + 1)
    if np.all(d == -1):
        return slice(p0, p1 - 1 if p1 > 0 else None, -1)
    return None


def _select(a: np.ndarray, pos: np.ndarray, axis: int) -> np.ndarray:
    """``a`` indexed by ``pos`` along ``axis``: a view for runs, a copy otherwise."""
    sl = _as_slice(pos)
    if sl is not None:
        if sl == slice(0, a.shape[axis]):
            return a
        key = [slice(None)] * a.ndim
        key[axis] = sl
        return a[tuple(key)]
    return np.take(a, pos, axis=axis)


def _compact(idx: np.ndarray, fancy_ok: bool) -> tuple[Any, np.ndarray]:
    """An h5py selection covering ``idx`` and the positions of ``idx`` inside what it returns."""
    uniq, inv = np.unique(idx, return_inverse=True)
    lo, hi = int(uniq[0]), int(uniq[-1])
    if not fancy_ok or hi - lo + 1 <= 2 * uniq.size:
        return slice(lo, hi + 1), (idx - lo)
    return uniq.tolist(), inv.reshape(-1)


class _PrismaSource:
    """Array-like view (y, x, band) of the scaled, masked cube of one PRISMA file.

    Holds only the path and small metadata (picklable); each ``__getitem__`` reopens the file and reads
    the hyperslab it needs from each detector, in the file's (rows, bands, columns) order, then scales,
    masks and transposes it.
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(
        self,
        path: Path,
        swath: str,
        level: str,
        det_of_band: np.ndarray,
        slot_of_band: np.ndarray,
        scale: dict[str, tuple[float, float]],
        err: dict[str, str | None],
        mask_codes: tuple[int, ...],
        file_rows_cols: tuple[int, int],
        swap: bool = False,
        flip_y: bool = False,
        flip_x: bool = False,
    ) -> None:
        self.path = path
        self.swath = swath
        self.level = level
        self.det_of_band = det_of_band
        self.slot_of_band = slot_of_band
        self.scale = scale  # det -> (ScaleFactor, Offset) for L1, (Min, Max) for L2
        self.err = err
        self.mask_codes = mask_codes
        self.file_rows_cols = file_rows_cols
        self.swap, self.flip_y, self.flip_x = swap, flip_y, flip_x
        r, c = file_rows_cols
        ny, nx = (c, r) if swap else (r, c)
        self.shape = (ny, nx, int(det_of_band.size))

    def __dask_tokenize__(self):
        st = os.stat(self.path)
        return (
            "simhsi-prisma", str(self.path), st.st_mtime_ns, st.st_size, self.swath,
            self.det_of_band.tobytes(), self.slot_of_band.tobytes(), sorted(self.scale.items()),
            self.mask_codes, self.swap, self.flip_y, self.flip_x,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"_PrismaSource({str(self.path)!r}, {self.level}, shape={self.shape})"

    @staticmethod
    def _read_block(ds, rows: np.ndarray, slots: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``ds[rows, slots, cols]`` (each any int array) reading only the covering hyperslab; may be a view."""
        rsel, rpos = _compact(rows, fancy_ok=False)
        csel, cpos = _compact(cols, fancy_ok=False)
        bsel, bpos = _compact(slots, fancy_ok=True)
        block = ds[rsel, bsel, csel]
        for axis, pos in ((0, rpos), (1, bpos), (2, cpos)):
            block = _select(block, pos, axis)
        return block

    def __getitem__(self, key: Any) -> np.ndarray:
        import h5py

        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (3 - len(key))
        (iy, sq_y), (ix, sq_x), (ib, sq_b) = (_axis_index(k, n) for k, n in zip(key, self.shape, strict=True))
        # Work in the file's (rows, bands, cols) layout and return a transposed *view*: no transposing
        # copy here (consumers that need C order copy once, e.g. dask's concatenation in ``.values``).
        nr, nc = (ix.size, iy.size) if self.swap else (iy.size, ix.size)
        buf = np.empty((nr, ib.size, nc), dtype=np.float32)  # every band is VNIR or SWIR: all filled
        if buf.size:
            ny, nx, _ = self.shape
            fy = ny - 1 - iy if self.flip_y else iy
            fx = nx - 1 - ix if self.flip_x else ix
            rows, cols = (fx, fy) if self.swap else (fy, fx)
            try:
                with h5py.File(self.path, "r") as f:
                    grp = f[self.swath]["Data Fields"]
                    for d, det in enumerate(DETECTORS):
                        sel = np.flatnonzero(self.det_of_band[ib] == d)
                        if sel.size == 0:
                            continue
                        slots = self.slot_of_band[ib[sel]]
                        osl = _as_slice(sel)
                        target = buf[:, osl, :] if osl is not None else np.empty((nr, sel.size, nc), np.float32)
                        dn = self._read_block(grp[_cube_name(det)], rows, slots, cols)
                        _to_physical(dn, self.level, *self.scale[det], out=target)
                        if not dn.all():
                            target[dn == 0] = np.nan  # fill
                        if self.err.get(det):
                            em = self._read_block(grp[self.err[det]], rows, slots, cols)
                            if em.size and em.max() > 0:
                                if em.dtype == np.uint8:
                                    bad_lut = np.zeros(256, dtype=bool)
                                    bad_lut[[c for c in self.mask_codes if 0 <= c < 256]] = True
                                    target[bad_lut[em]] = np.nan
                                else:
                                    target[np.isin(em, self.mask_codes)] = np.nan
                        if osl is None:
                            buf[:, sel, :] = target
            except (OSError, KeyError) as exc:
                raise InputFileError(f"reading the cube failed (file changed or corrupt?): {exc}", path=self.path) from exc
        out = buf.transpose(2, 0, 1) if self.swap else buf.transpose(0, 2, 1)  # (y, x, band) view
        squeeze = tuple(ax for ax, s in enumerate((sq_y, sq_x, sq_b)) if s)
        return out.squeeze(axis=squeeze) if squeeze else out


# --------------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------------


def _band_lists(f, grp, path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per detector: ``cw``, ``fwhm``, ``flag`` in file order, checked against the cube's band axis."""
    out = {}
    for det in DETECTORS:
        name = _cube_name(det)
        if name not in grp:
            raise FormatError(f"dataset '{grp.name}/{name}' is missing: not a complete PRISMA cube product", path=path)
        ds = grp[name]
        if ds.dtype.kind not in "iuf":
            raise FormatError(f"dataset '{ds.name}' has non-numeric dtype {ds.dtype}; expected uint16 DN", path=path)
        if ds.ndim != 3:
            raise FormatError(f"dataset '{ds.name}' is {ds.ndim}-D {ds.shape}; expected (rows, bands, cols)", path=path)
        cap = det.capitalize()
        key = f"List_Cw_{cap}"
        if key not in f.attrs:
            raise FormatError(f"root attribute {key!r} (band centres) is missing", path=path)
        cw = np.asarray(f.attrs[key], dtype=np.float64).reshape(-1)
        nb = ds.shape[1]
        if cw.size != nb:
            raise FormatError(
                f"{key} has {cw.size} entries but '{ds.name}' has {nb} bands (axis 1); the band list does not "
                "match the cube",
                path=path,
            )
        fw = np.asarray(f.attrs.get(f"List_Fwhm_{cap}", np.full(nb, np.nan)), dtype=np.float64).reshape(-1)
        fl = np.asarray(f.attrs.get(f"List_Cw_{cap}_Flags", (cw > 0).astype(np.int8))).reshape(-1)
        for what, arr in ((f"List_Fwhm_{cap}", fw), (f"List_Cw_{cap}_Flags", fl)):
            if arr.size != nb:
                raise FormatError(f"{what} has {arr.size} entries but '{ds.name}' has {nb} bands (axis 1)", path=path)
        out[det] = {"cw": cw, "fwhm": fw, "flag": fl, "shape": ds.shape}
    rv, rs = out["VNIR"]["shape"], out["SWIR"]["shape"]
    if (rv[0], rv[2]) != (rs[0], rs[2]):
        raise FormatError(f"VNIR cube {rv} and SWIR cube {rs} differ in rows/columns", path=path)
    return out


def _to_physical(dn: np.ndarray, level: str, p1: float, p2: float, out: np.ndarray | None = None) -> np.ndarray:
    """DN → physical values, float32: L1 ``DN / ScaleFactor - Offset`` (p1, p2 = ScaleFactor, Offset),
    L2 ``Min + DN * ((Max - Min) / 65535)`` (p1, p2 = Min, Max).

    Evaluated in float32 (within 2 ulp of the exact formula; for the real L1 scaling 100/0 it is the correctly
    rounded value), written into ``out`` when given.
    """
    if out is None:
        out = np.empty(dn.shape, dtype=np.float32)
    if level == "L1":
        np.divide(dn, np.float32(p1), out=out, dtype=np.float32)
        if p2:
            out -= np.float32(p2)
    else:
        np.multiply(dn, np.float32((p2 - p1) / 65535.0), out=out, dtype=np.float32)
        if p1:
            out += np.float32(p1)
    return out


def _scales(f, level: str, path: Path) -> dict[str, tuple[float, float]]:
    """Per detector (ScaleFactor, Offset) for L1 or (Min, Max) for L2, from the root attributes."""
    out = {}
    for det in DETECTORS:
        cap = det.capitalize()
        if level == "L1":
            sf = _attr_float(f.attrs, f"ScaleFactor_{cap}", path)
            off = _attr_float(f.attrs, f"Offset_{cap}", path)
            if sf == 0:
                raise FormatError(f"ScaleFactor_{cap} is 0; cannot scale DN", path=path)
            out[det] = (sf, off)
        else:
            out[det] = (_attr_float(f.attrs, f"L2Scale{cap}Min", path), _attr_float(f.attrs, f"L2Scale{cap}Max", path))
    return out


def _select_bands(
    lists: dict[str, dict[str, np.ndarray]], overlap: str, water_vapour: str
) -> dict[str, np.ndarray]:
    det, slot, cw, fw = [], [], [], []
    for d, name in enumerate(DETECTORS):
        li = lists[name]
        ok = np.flatnonzero((li["flag"] != 0) & (li["cw"] > 0))
        det.append(np.full(ok.size, d))
        slot.append(ok)
        cw.append(li["cw"][ok])
        fw.append(li["fwhm"][ok])
    det_a, slot_a, cw_a, fw_a = (np.concatenate(v) for v in (det, slot, cw, fw))
    keep = np.ones(cw_a.size, dtype=bool)
    vn, sw = det_a == 0, det_a == 1
    if vn.any() and sw.any():
        if overlap == "drop_swir":
            keep &= ~(sw & (cw_a <= cw_a[vn].max()))
        elif overlap == "drop_vnir":
            keep &= ~(vn & (cw_a >= cw_a[sw].min()))
    wv = _in_windows(cw_a, WATER_VAPOUR_WINDOWS_NM)
    if water_vapour == "drop":
        keep &= ~wv
    bad = wv if water_vapour == "mark" else np.zeros_like(wv)
    order = np.flatnonzero(keep)
    order = order[np.argsort(cw_a[order], kind="stable")]
    return {
        "det": det_a[order].astype(np.int8),
        "slot": slot_a[order].astype(np.intp),
        "cw": cw_a[order],
        "fwhm": fw_a[order],
        "bad": bad[order],
    }


def _orientation(lat: np.ndarray | None, lon: np.ndarray | None) -> tuple[bool, bool, bool]:
    """(swap, flip_y, flip_x) making a geocoded grid north-up: y along decreasing latitude, x increasing lon.

    The file axis along which latitude changes most is taken as the northing axis.
    """
    if lat is None or lon is None or lat.ndim != 2 or min(lat.shape) < 2:
        return False, False, False
    la, lo = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    r, c = la.shape
    d_lat0 = np.nanmedian(la[-1, :] - la[0, :]) / (r - 1)
    d_lat1 = np.nanmedian(la[:, -1] - la[:, 0]) / (c - 1)
    swap = bool(abs(d_lat1) > abs(d_lat0))
    if not swap:
        d_lat, d_lon = d_lat0, np.nanmedian(lo[:, -1] - lo[:, 0])
    else:
        d_lat, d_lon = d_lat1, np.nanmedian(lo[-1, :] - lo[0, :])
    return swap, bool(d_lat > 0), bool(d_lon < 0)


def _orient(a: np.ndarray, swap: bool, flip_y: bool, flip_x: bool) -> np.ndarray:
    a = a.T if swap else a
    if flip_y:
        a = a[::-1, :]
    if flip_x:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


def _georef_l2d(
    attrs: Mapping[str, Any],
    lat: np.ndarray | None,
    lon: np.ndarray | None,
    shape_yx: tuple[int, int],
    corner: str,
    path: Path,
) -> dict[str, Any] | None:
    """CRS + affine transform (pixel-edge origin) of an L2D grid from its corner attributes."""
    needed = ("Epsg_Code", "Product_ULcorner_easting", "Product_ULcorner_northing")
    missing = [k for k in needed if k not in attrs]
    if missing:
        warnings.warn(
            f"{path}: L2D product without {', '.join(missing)}; returned without CRS/transform", stacklevel=3
        )
        return None
    epsg = int(_attr_float(attrs, "Epsg_Code", path))
    ul_e = _attr_float(attrs, "Product_ULcorner_easting", path)
    ul_n = _attr_float(attrs, "Product_ULcorner_northing", path)
    ny, nx = shape_yx

    def spacing(conv: str) -> tuple[float, float]:
        n_x = nx - 1 if conv == "center" else nx
        n_y = ny - 1 if conv == "center" else ny
        px = py = GSD_M
        if "Product_URcorner_easting" in attrs and n_x > 0:
            px = abs(_attr_float(attrs, "Product_URcorner_easting", path) - ul_e) / n_x or GSD_M
        if "Product_LLcorner_northing" in attrs and n_y > 0:
            py = abs(ul_n - _attr_float(attrs, "Product_LLcorner_northing", path)) / n_y or GSD_M
        return px, py

    source = "user"
    if corner == "auto":
        corner, source = "center", "default (prismaread convention)"
        if lat is not None and lon is not None and np.isfinite(lat[0, 0]) and np.isfinite(lon[0, 0]):
            from pyproj import Transformer

            tr = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
            e0, n0 = tr.transform(float(lon[0, 0]), float(lat[0, 0]))
            d = {}
            for conv in ("center", "edge"):
                px, py = spacing(conv)
                ce, cn = (ul_e, ul_n) if conv == "center" else (ul_e + px / 2, ul_n - py / 2)
                d[conv] = float(np.hypot(e0 - ce, n0 - cn))
            corner = min(d, key=d.get)
            source = f"geolocation (first pixel {d[corner]:.1f} m from the '{corner}' reading)"
    px, py = spacing(corner)
    x0, y0 = (ul_e - px / 2, ul_n + py / 2) if corner == "center" else (ul_e, ul_n)
    return {"epsg": epsg, "px": px, "py": py, "x0": x0, "y0": y0, "corner": corner, "corner_source": source}


def _normalise_chunks(chunks: Any, shape: tuple[int, int, int]) -> tuple:
    from dask.array.core import normalize_chunks

    if chunks is None:
        spec: tuple = ("auto", -1, -1)
        limit: int | None = 64 * 2**20
    elif chunks == "auto":
        spec, limit = ("auto", "auto", -1), None
    elif isinstance(chunks, Mapping):
        bad = set(chunks) - {"y", "x", "band"}
        check_param("chunks", dict(chunks), not bad, "a dict with keys among 'y', 'x', 'band'", "read_prisma")
        spec = tuple(chunks.get(d, dflt) for d, dflt in zip(("y", "x", "band"), ("auto", -1, -1), strict=True))
        limit = 64 * 2**20
    else:
        raise ParameterError(
            f"The 'chunks' parameter of read_prisma must be None, 'auto' or a dict like {{'y': 256}}. Got {chunks!r} instead."
        )
    return normalize_chunks(spec, shape, limit=limit, dtype=np.float32)


def read_prisma(
    path: str | os.PathLike[str],
    *,
    overlap: str = "drop_swir",
    water_vapour: str = "mark",
    chunks: None | str | Mapping[str, int] = None,
    apply_error_matrix: bool = True,
    mask_codes: Iterable[int] = MASKED_ERROR_CODES,
    corner: str = "auto",
) -> xr.DataArray:
    """Open a PRISMA ``.he5`` product (L1, L2B, L2C, L2D) as a lazy ``DataArray`` (y, x, band).

    Parameters
    ----------
    path:
        The ``PRS_L*_STD_*.he5`` file.
    overlap:
        VNIR/SWIR overlap (VNIR ends at ~972.7 nm, SWIR starts at ~943.0 nm): ``"drop_swir"`` (default) drops
        the SWIR bands at or below the longest VNIR centre (4 bands in 2020 products → 230 bands),
        ``"drop_vnir"`` drops the VNIR bands at or above the shortest SWIR centre (3 bands → 231),
        ``"keep"`` keeps all valid bands (234), interleaved by wavelength.
    water_vapour:
        Bands in :data:`WATER_VAPOUR_WINDOWS_NM`: ``"mark"`` (default) keeps them with ``bad_band=True``,
        ``"drop"`` removes them, ``"keep"`` keeps them unmarked.
    chunks:
        dask chunks: ``None`` = blocks of rows of at most 64 MiB with all columns and bands (rows are
        contiguous in the file); ``"auto"`` = dask's ``array.chunk-size`` over rows and columns, all bands;
        a dict ``{"y": .., "x": .., "band": ..}`` (missing dims: y auto, x and band whole).
    apply_error_matrix:
        Set to NaN the pixels whose ``*_PIXEL_SAT_ERR_MATRIX`` (L1) / ``*_PIXEL_L2_ERR_MATRIX`` (L2) code is
        in ``mask_codes`` (default 1 defective, 2 saturated, 4 NaN/Inf; 3 "lower accuracy" kept).
    corner:
        L2D corner attributes: ``"center"`` (UL corner = centre of the first pixel, as prismaread),
        ``"edge"`` (outer corner, as prismatools) or ``"auto"`` (default): whichever puts the first pixel
        closest to the file's own Latitude/Longitude, ``"center"`` when they are absent.

    Returns
    -------
    DataArray (y, x, band), float32, units ``W m-2 sr-1 um-1`` (L1, L2B radiance) or ``1`` (L2C/L2D
    reflectance); coords ``wavelength``/``fwhm`` (nm), ``bad_band``, ``detector``, ``slot`` on band; 2-D
    ``lat``/``lon`` when present; L2D: projected ``y``/``x`` (pixel centres, m) with CRS and transform.
    """
    import dask.array as da

    from simhsi.conventions import BAD_BAND, UNITS_RADIANCE, UNITS_REFLECTANCE, make_cube, netcdf_safe

    check_param("overlap", overlap, overlap in _OVERLAP, f"one of {_OVERLAP}", "read_prisma")
    check_param("water_vapour", water_vapour, water_vapour in _WATER, f"one of {_WATER}", "read_prisma")
    check_param("corner", corner, corner in _CORNER, f"one of {_CORNER}", "read_prisma")
    codes = tuple(int(c) for c in mask_codes)
    p = Path(path)
    if not p.exists():
        raise InputFileError("no such file", path=p)
    if p.is_dir():
        raise InputFileError("is a directory, not a PRISMA .he5 file", path=p)

    with _open_h5(p) as f:
        try:
            level, swath = _find_swath(f, p)
            grp = f[swath].get("Data Fields")
            if grp is None:
                raise FormatError(f"group '{swath}/Data Fields' is missing", path=p)
            lists = _band_lists(f, grp, p)
            scale = _scales(f, level, p)
            err = {}
            for det in DETECTORS:
                name = _err_name(level, det)
                err[det] = name if (apply_error_matrix and name in grp) else None
                if err[det] and grp[name].shape != grp[_cube_name(det)].shape:
                    raise FormatError(
                        f"'{grp[name].name}' has shape {grp[name].shape} but the cube has {grp[_cube_name(det)].shape}",
                        path=p,
                    )
            lat = lon = None
            geo = f[swath].get("Geolocation Fields")
            rows, _, cols = lists["VNIR"]["shape"]
            if geo is not None:
                for la_n, lo_n in _geo_names(level):
                    if la_n in geo and lo_n in geo and geo[la_n].shape == (rows, cols) == geo[lo_n].shape:
                        lat, lon = geo[la_n][()], geo[lo_n][()]
                        break
            root = {k: f.attrs[k] for k in f.attrs}
            geom = f[swath].get("Geometric Fields")
            sza_field = None
            if geom is not None and "Solar_Zenith_Angle" in geom:
                sza_field = float(np.nanmean(geom["Solar_Zenith_Angle"][()]))
        except OSError as exc:
            raise InputFileError(f"cannot read the product metadata (truncated or corrupt?): {exc}", path=p) from exc

    bands = _select_bands(lists, overlap, water_vapour)
    if bands["cw"].size == 0:
        raise FormatError("no valid band (every slot has flag 0 or centre 0)", path=p)
    swap = flip_y = flip_x = False
    if level == "L2D":
        swap, flip_y, flip_x = _orientation(lat, lon)
    src = _PrismaSource(
        p, swath, level, bands["det"], bands["slot"], scale, err, codes, (rows, cols), swap, flip_y, flip_x
    )
    from dask.base import tokenize

    data = da.from_array(
        src,
        chunks=_normalise_chunks(chunks, src.shape),
        name=f"prisma-{tokenize(src)}",
        meta=np.empty((0, 0, 0), dtype=np.float32),
        asarray=False,
    )

    coords: dict[str, Any] = {
        BAD_BAND: ("band", bands["bad"].astype(bool), {"long_name": "water-vapour band (not used downstream)"}),
        "detector": ("band", np.array([DETECTORS[d] for d in bands["det"]])),
        "slot": ("band", bands["slot"].astype(np.int32), {"long_name": "0-based index in the file's band list"}),
    }
    if lat is not None:
        lat_o, lon_o = _orient(lat, swap, flip_y, flip_x), _orient(lon, swap, flip_y, flip_x)
        coords["lat"] = (("y", "x"), lat_o, {"units": "degrees_north", "standard_name": "latitude"})
        coords["lon"] = (("y", "x"), lon_o, {"units": "degrees_east", "standard_name": "longitude"})
    else:
        lat_o = lon_o = None
    grid = _georef_l2d(root, lat_o, lon_o, src.shape[:2], corner, p) if level == "L2D" else None
    if grid is not None:
        ny, nx = src.shape[:2]
        coords["x"] = ("x", grid["x0"] + (np.arange(nx) + 0.5) * grid["px"], {"units": "m"})
        coords["y"] = ("y", grid["y0"] - (np.arange(ny) + 0.5) * grid["py"], {"units": "m"})

    radiance = level in ("L1", "L2B")
    attrs: dict[str, Any] = {
        "sensor": "PRISMA",
        "processing_level": level,
        "source_file": str(p),
        "long_name": {
            "L1": "top-of-atmosphere radiance",
            "L2B": "at-surface radiance",
            "L2C": "surface reflectance",
            "L2D": "surface reflectance (geocoded)",
        }[level],
        "overlap": overlap,
        "water_vapour": water_vapour,
        "masked_error_codes": np.array(codes if any(err.values()) else (), dtype=np.int16),
        "prisma_orientation": f"swap_axes={int(swap)} flip_y={int(flip_y)} flip_x={int(flip_x)}",
    }
    for src_key, dst in (("Sun_zenith_angle", "sun_zenith_deg"), ("Sun_azimuth_angle", "sun_azimuth_deg")):
        if src_key in root:
            attrs[dst] = float(np.asarray(root[src_key]).reshape(-1)[0])
    if "sun_zenith_deg" not in attrs and sza_field is not None:
        attrs["sun_zenith_deg"] = sza_field
    for k, v in root.items():
        if k.startswith("List_"):
            continue
        arr = np.asarray(v)
        if arr.dtype.kind in "SUO":
            attrs[f"prisma_{k}"] = _attr_str(v)
        elif arr.size == 1 and arr.dtype.kind in "iuf":
            attrs[f"prisma_{k}"] = arr.reshape(-1)[0].item()
    if grid is not None:
        attrs["corner_convention"] = grid["corner"]
        attrs["corner_convention_source"] = grid["corner_source"]
    attrs = {k: netcdf_safe(v) for k, v in attrs.items()}
    cube = make_cube(
        data,
        bands["cw"],
        bands["fwhm"],
        units=UNITS_RADIANCE if radiance else UNITS_REFLECTANCE,
        name="radiance" if radiance else "reflectance",
        attrs=attrs,
        coords=coords,
    )
    if grid is not None:
        import rioxarray  # noqa: F401  (registers the .rio accessor)
        from affine import Affine

        cube = cube.rio.set_spatial_dims(x_dim="x", y_dim="y", inplace=False)
        cube = cube.rio.write_crs(f"EPSG:{grid['epsg']}")
        cube = cube.rio.write_transform(Affine(grid["px"], 0.0, grid["x0"], 0.0, -grid["py"], grid["y0"]))
    return cube


# --------------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------------


def _bundled(name: str) -> Any:
    return resources.files("simhsi.data").joinpath("prisma", name)


def default_band_lists() -> dict[str, dict[str, np.ndarray]]:
    """The real 2020 band lists, per detector: ``cw``, ``fwhm`` (nm), ``flag``, in file (descending) order."""
    meta = json.loads(_bundled("prisma_root_attrs_2020.json").read_text())["L1_root_attributes"]
    out = {}
    for det in DETECTORS:
        cap = det.capitalize()
        out[det] = {
            "cw": np.asarray(meta[f"List_Cw_{cap}"], dtype=np.float32),
            "fwhm": np.asarray(meta[f"List_Fwhm_{cap}"], dtype=np.float32),
            "flag": np.asarray(meta[f"List_Cw_{cap}_Flags"], dtype=np.int8),
        }
    return out


def default_scale_attrs(level: str) -> dict[str, float]:
    """The real 2020 scale attributes: ``ScaleFactor_*``/``Offset_*`` (L1) or ``L2Scale*{Min,Max}`` (L2)."""
    check_param("level", level, level in LEVELS, f"one of {LEVELS}", "default_scale_attrs")
    meta = json.loads(_bundled("prisma_root_attrs_2020.json").read_text())
    if level == "L1":
        blk = meta["L1_root_attributes"]
        keys = [f"{w}_{d}" for d in ("Vnir", "Swir") for w in ("ScaleFactor", "Offset")]
    else:
        blk = meta["L2C_root_attributes" if level in ("L2B", "L2C") else "L2D_root_attributes"]
        keys = [k for k in blk if k.startswith("L2Scale")]
    return {k: float(blk[k]) for k in keys}


def _has_crs(cube: xr.DataArray) -> bool:
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    return cube.rio.crs is not None


def _quantise(values: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Physical values → uint16 DN with value = a + b*DN; NaN → 0 (fill). Returns (dn, error code)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        x = np.where(finite, np.rint((v - a) / b), 0.0)
    code = np.zeros(v.shape, dtype=np.uint8)
    code[~finite] = 4
    code[finite & (x > 65535)] = 2
    dn = np.clip(x, 1, 65535)
    dn[~finite] = 0
    return dn.astype(np.uint16), code


def _match_bands(
    wl: np.ndarray, det_coord: np.ndarray | None, lists: dict[str, dict[str, np.ndarray]], tol: float
) -> dict[str, np.ndarray]:
    """For each detector, the cube band written in each slot (-1 = no band: written as fill)."""
    used = np.zeros(wl.size, dtype=bool)
    out = {}
    for det in DETECTORS:
        li = lists[det]
        slot_band = np.full(li["cw"].size, -1, dtype=np.intp)
        cand = np.arange(wl.size) if det_coord is None else np.flatnonzero(det_coord == det)
        for s in np.flatnonzero((li["flag"] != 0) & (li["cw"] > 0)):
            free = cand[~used[cand]]
            if free.size == 0:
                break
            j = free[np.argmin(np.abs(wl[free] - li["cw"][s]))]
            if abs(wl[j] - li["cw"][s]) <= tol:
                slot_band[s] = j
                used[j] = True
        out[det] = slot_band
    if not used.all():
        extra = ", ".join(f"{w:.1f}" for w in wl[~used][:8])
        raise DataError(
            f"{int((~used).sum())} cube band(s) match no PRISMA slot within {tol} nm (e.g. {extra} nm); "
            "resample the cube to the PRISMA bands first or pass band_lists="
        )
    return out


def _write_cube_blocks(
    cube: xr.DataArray,
    targets: dict[str, tuple[Any, Any, np.ndarray | None]],
    slot_band: dict[str, np.ndarray],
    ab: dict[str, tuple[float, float]],
    swap_axes: bool,
    block_rows: int,
) -> None:
    """Quantise ``cube`` into the DN (and error-matrix) datasets, ``block_rows`` file rows at a time.

    A dask-backed cube is computed once per dask chunk along the file's row axis (all bands at once, for
    both detectors); a numpy cube is only sliced (views).
    """
    ax = "x" if swap_axes else "y"
    n = cube.sizes[ax]
    if cube.chunks is not None:
        edges = np.concatenate([[0], np.cumsum(cube.chunksizes[ax])]).astype(int)
    else:
        edges = np.array([0, n])
    order = (1, 2, 0) if swap_axes else (0, 2, 1)  # (y, x, k) -> (rows, k, cols)
    for c0, c1 in zip(edges[:-1], edges[1:], strict=True):
        vals = cube.isel({ax: slice(c0, c1)}).data
        vals = np.asarray(vals.compute() if hasattr(vals, "compute") else vals)
        for r0 in range(c0, c1, block_rows):
            r1 = min(r0 + block_rows, c1)
            sub = vals[r0 - c0 : r1 - c0] if not swap_axes else vals[:, r0 - c0 : r1 - c0]
            for d, (ds, ecube, extra) in targets.items():
                sb = slot_band[d]
                have = np.flatnonzero(sb >= 0)
                q, e = _quantise(sub[:, :, sb[have]], *ab[d])
                out = np.zeros((r1 - r0, ds.shape[1], ds.shape[2]), dtype=np.uint16)
                out[:, have, :] = q.transpose(order)
                ds[r0:r1] = out
                if ecube is not None:
                    code = np.zeros(out.shape, dtype=np.uint8)
                    code[:, have, :] = e.transpose(order)
                    if extra is not None:
                        code = np.maximum(code, extra[r0:r1])
                    ecube[r0:r1] = code


def write_prisma_he5(
    cube: xr.DataArray | None,
    path: str | os.PathLike[str],
    *,
    level: str = "L1",
    overwrite: bool = False,
    dn: Mapping[str, np.ndarray] | None = None,
    error_matrix: Mapping[str, np.ndarray] | None = None,
    band_lists: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    scale: Mapping[str, float] | None = None,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    epsg: int | None = None,
    transform: Any = None,
    corner: str = "center",
    swap_axes: bool = False,
    sun_zenith: float | None = None,
    sun_azimuth: float | None = None,
    start_time: str | None = None,
    wavelength_tol_nm: float = 1.0,
    attrs: Mapping[str, Any] | None = None,
    omit: Iterable[str] = (),
    block_rows: int = 32,
) -> Path:
    """Write a PRISMA HDF-EOS5 product (``level`` L1, L2B, L2C or L2D) in the exact product layout.

    Give either ``cube``, a ``DataArray`` (y, x, band) in physical units (L1/L2B radiance in
    W m-2 sr-1 um-1, L2C/L2D reflectance) whose ``wavelength`` coord matches PRISMA band centres within
    ``wavelength_tol_nm`` (any subset: slots without a band are written as fill, DN 0), or raw ``dn``:
    ``{"VNIR": (rows, slots, cols), "SWIR": ...}`` uint16 arrays in file order (no quantisation).

    Parameters
    ----------
    band_lists:
        ``{"VNIR": {"cw":, "fwhm":, "flag":}, "SWIR": ...}`` in file (descending) order; default the real
        2020 lists (66/173 slots). With a cube, matched slots get the cube's own ``wavelength``/``fwhm``.
    scale:
        Root scale attributes overriding the defaults: L1 ``ScaleFactor_Vnir``/``Offset_Vnir`` (+ Swir),
        default the real 100/0; L2 ``L2ScaleVnirMin``/``Max`` (+ Swir), default Min 0 and Max = the
        detector's largest finite value (full DN resolution).
        Values are quantised as ``DN = rint((value - a) / b)`` clipped to 1..65535 (0 is fill; clipped-high
        pixels get error code 2, NaN inputs DN 0 and code 4).
    error_matrix:
        Per detector uint8 arrays shaped like the cubes, added on top of the codes above.
    lat, lon:
        2-D (y, x) geolocation in degrees (default: the cube's ``lat``/``lon`` coords; for L2D computed
        from ``epsg`` + ``transform`` at pixel centres). Omitted from the file when unknown.
    epsg, transform:
        L2D map grid (default: the cube's rioxarray CRS/transform): north-up ``affine.Affine`` or GDAL
        6-tuple with the pixel-edge origin.
    corner:
        How the L2D ``Product_*corner_*`` attributes are written: ``"center"`` (centres of the corner
        pixels; :func:`read_prisma`'s default reading) or ``"edge"`` (outer corners).
    swap_axes:
        L2D only: store axis 0 as easting instead of northing (the layout some readers assume), for tests.
    omit:
        Dataset or root-attribute names to leave out (e.g. ``"SWIR_Cube"``, ``"List_Fwhm_Vnir"``), for tests.
    block_rows:
        File rows quantised per step (bounds the float64 temporaries; a dask-backed cube is computed once
        per chunk along the row axis).

    Returns the path written (atomically, via a temporary file).
    """
    import h5py

    from simhsi._atomic import atomic_path

    check_param("level", level, level in LEVELS, f"one of {LEVELS}", "write_prisma_he5")
    check_param("corner", corner, corner in ("center", "edge"), "'center' or 'edge'", "write_prisma_he5")
    if (cube is None) == (dn is None):
        raise ParameterError("write_prisma_he5 needs exactly one of 'cube' (physical values) or 'dn' (raw DN)")
    omit = set(omit)
    src_lists = default_band_lists() if band_lists is None else band_lists
    lists = {d: {k: np.array(v) for k, v in src_lists[d].items()} for d in DETECTORS}
    for d in DETECTORS:
        li = lists[d]
        li.setdefault("fwhm", np.zeros_like(li["cw"]))
        li.setdefault("flag", (li["cw"] > 0).astype(np.int8))
    sattrs = default_scale_attrs(level)

    slot_band: dict[str, np.ndarray] = {}
    if cube is not None:
        from simhsi.conventions import check_cube

        cube = check_cube(cube)
        wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
        det_coord = np.asarray(cube["detector"].values).astype(str) if "detector" in cube.coords else None
        slot_band = _match_bands(wl, det_coord, lists, wavelength_tol_nm)
        fw = np.asarray(cube["fwhm"].values, dtype=np.float64) if "fwhm" in cube.coords else None
        for d in DETECTORS:
            s = slot_band[d] >= 0
            lists[d]["cw"] = lists[d]["cw"].astype(np.float32)
            lists[d]["cw"][s] = wl[slot_band[d][s]]
            if fw is not None and np.isfinite(fw[slot_band[d][s]]).all():
                lists[d]["fwhm"] = lists[d]["fwhm"].astype(np.float32)
                lists[d]["fwhm"][s] = fw[slot_band[d][s]]
        ny, nx = cube.sizes["y"], cube.sizes["x"]
        if level != "L1" and not (scale and all(f"L2Scale{d.capitalize()}Max" in scale for d in DETECTORS)):
            for d in DETECTORS:
                idx = np.unique(slot_band[d][slot_band[d] >= 0])
                mx = float(cube.isel(band=idx).max(skipna=True).values) if idx.size else 1.0
                lo = sattrs[f"L2Scale{d.capitalize()}Min"]
                sattrs[f"L2Scale{d.capitalize()}Max"] = mx if np.isfinite(mx) and mx > lo else lo + 1.0
        if epsg is None and transform is None and level == "L2D" and _has_crs(cube):
            epsg = cube.rio.crs.to_epsg()
            transform = cube.rio.transform()
        if lat is None and "lat" in cube.coords and "lon" in cube.coords:
            lat, lon = np.asarray(cube["lat"].values), np.asarray(cube["lon"].values)
    else:
        assert dn is not None
        for d in DETECTORS:
            if d not in dn and _cube_name(d) not in omit:
                raise ParameterError(f"dn must have a {d!r} array (rows, slots, cols)")
        shp = np.shape(dn["VNIR"] if "VNIR" in dn else dn["SWIR"])
        ny, nx = (shp[2], shp[0]) if swap_axes else (shp[0], shp[2])
    if scale:
        sattrs.update({k: float(v) for k, v in scale.items()})

    sattrs = {k: float(np.float32(v)) for k, v in sattrs.items()}  # as stored (float32 attributes)
    ab: dict[str, tuple[float, float]] = {}  # value = a + b * DN
    for d in DETECTORS:
        c = d.capitalize()
        if level == "L1":
            ab[d] = (-sattrs[f"Offset_{c}"], 1.0 / sattrs[f"ScaleFactor_{c}"])
        else:
            lo, hi = sattrs[f"L2Scale{c}Min"], sattrs[f"L2Scale{c}Max"]
            if not hi > lo:
                raise ParameterError(f"L2Scale{c}Max ({hi}) must be greater than L2Scale{c}Min ({lo})")
            ab[d] = (lo, (hi - lo) / 65535.0)

    # geolocation
    grid_attrs: dict[str, Any] = {}
    if level == "L2D" and epsg is not None and transform is not None:
        from affine import Affine

        t = transform if isinstance(transform, Affine) else Affine.from_gdal(*transform)
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise ParameterError(f"transform must be north-up without rotation; got {tuple(t)[:6]}")
        px, py = t.a, -t.e
        xs, ys = t.c + (np.arange(nx) + 0.5) * px, t.f - (np.arange(ny) + 0.5) * py
        if lat is None or lon is None:
            from pyproj import Transformer

            tr = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
            xx, yy = np.meshgrid(xs, ys)
            lon, lat = tr.transform(xx, yy)
        if corner == "center":
            cx, cy = (xs[0], xs[-1]), (ys[0], ys[-1])
        else:
            cx, cy = (t.c, t.c + nx * px), (t.f, t.f - ny * py)
        from pyproj import CRS

        crs = CRS.from_epsg(int(epsg))
        zone = crs.utm_zone or ""
        grid_attrs = {
            "Epsg_Code": np.int32(epsg),
            "Projection_Id": np.bytes_(zone.rstrip("NS") if zone else str(epsg)),
            "Projection_Name": np.bytes_("UTM" if zone else crs.name),
            "Product_ULcorner_easting": cx[0], "Product_ULcorner_northing": cy[0],
            "Product_URcorner_easting": cx[1], "Product_URcorner_northing": cy[0],
            "Product_LLcorner_easting": cx[0], "Product_LLcorner_northing": cy[1],
            "Product_LRcorner_easting": cx[1], "Product_LRcorner_northing": cy[1],
        }  # fmt: skip
    for name, arr in (("lat", lat), ("lon", lon)):
        if arr is not None and np.shape(arr) != (ny, nx):
            raise ParameterError(f"{name} must have shape (y, x) = {(ny, nx)}; got {np.shape(arr)}")

    def to_file(a2: np.ndarray) -> np.ndarray:  # (y, x) -> (rows, cols)
        return np.asarray(a2).T if swap_axes else np.asarray(a2)

    rows, cols = (nx, ny) if swap_axes else (ny, nx)
    swath_l = _swath_path(level)
    fields = f"{swath_l}/Data Fields"
    with atomic_path(path, overwrite) as tmp, h5py.File(tmp, "w") as f:
        info = f.create_group("HDFEOS INFORMATION")
        info.attrs["HDFEOSVersion"] = np.bytes_("HDFEOS_5.1.15")
        info.create_dataset(
            "StructMetadata.0",
            data=np.bytes_(f'GROUP=SwathStructure\n\tGROUP=SWATH_1\n\t\tSwathName="PRS_{level}_HCO"\n'
                           "\tEND_GROUP=SWATH_1\nEND_GROUP=SwathStructure\nEND\n"),
        )  # fmt: skip
        f.create_group(fields)
        root = {
            "Processing_Level": np.bytes_(level[1:]),
            "Product_ID": np.bytes_(f"PRS_{level}_STD"),
            "Product_StartTime": np.bytes_(start_time or "1970-01-01T00:00:00.000000"),
        }
        if sun_zenith is not None:
            root["Sun_zenith_angle"] = np.float32(sun_zenith)
        if sun_azimuth is not None:
            root["Sun_azimuth_angle"] = np.float32(sun_azimuth)
        for d in DETECTORS:
            c, li = d.capitalize(), lists[d]
            root[f"List_Cw_{c}"] = li["cw"].astype(np.float32)
            root[f"List_Cw_{c}_Flags"] = li["flag"].astype(np.int8)
            root[f"List_Fwhm_{c}"] = li["fwhm"].astype(np.float32)
            root[f"Start_index_EO_{d}"] = np.int32(0)
            root[f"Stop_index_EO_{d}"] = np.int32(cols - 1)
        root.update({k: np.float32(v) for k, v in sattrs.items()})
        if level == "L2D":
            root.update(grid_attrs)
        if attrs:
            root.update(attrs)
        for k, v in root.items():
            if k not in omit:
                f.attrs[k] = v

        targets = {}
        for d in DETECTORS:
            name, ename = _cube_name(d), _err_name(level, d)
            if name in omit:
                continue
            if dn is not None:
                arr = np.asarray(dn[d])
                f[fields].create_dataset(name, data=arr)
                shape = arr.shape
            else:
                shape = (rows, lists[d]["cw"].size, cols)
            extra = None
            if error_matrix is not None and d in error_matrix:
                extra = np.asarray(error_matrix[d], dtype=np.uint8)
                if extra.shape != shape:
                    raise ParameterError(f"error_matrix[{d!r}] must have shape {shape}; got {extra.shape}")
            ecube = None
            if ename not in omit and len(shape) == 3:
                ecube = f[fields].create_dataset(ename, shape=shape, dtype=np.uint8)
            if dn is not None:
                if ecube is not None:
                    ecube[...] = np.zeros(shape, dtype=np.uint8) if extra is None else extra
                continue
            ds = f[fields].create_dataset(name, shape=shape, dtype=np.uint16)
            targets[d] = (ds, ecube, extra)
        if targets:
            _write_cube_blocks(cube, targets, slot_band, ab, swap_axes, block_rows)

        geo = f.create_group(f"{swath_l}/Geolocation Fields")
        if lat is not None and lon is not None:
            names = ("Latitude_VNIR", "Longitude_VNIR") if level == "L1" else ("Latitude", "Longitude")
            for nm, arr in zip(names, (lat, lon), strict=True):
                if nm not in omit:
                    geo.create_dataset(nm, data=to_file(arr).astype(np.float32))
            if level == "L1":
                for nm, arr in zip(("Latitude_SWIR", "Longitude_SWIR"), (lat, lon), strict=True):
                    if nm not in omit:
                        geo.create_dataset(nm, data=to_file(arr).astype(np.float32))
        if level != "L1" and sun_zenith is not None and "Solar_Zenith_Angle" not in omit:
            gf = f.create_group(f"{swath_l}/Geometric Fields")
            gf.create_dataset("Solar_Zenith_Angle", data=np.full((rows, cols), sun_zenith, dtype=np.float32))
    return Path(path)
