"""Endmember spectral libraries: the bundled curated real library, ENVI ``.sli``, CSV, unmix results.

A library is a ``DataArray`` (endmember, band) of reflectance (0-1) with ``wavelength``/``fwhm`` coords in
nm and, for the bundled library, ``class``/``subclass``/``source``/``record`` coords on ``endmember``.

The bundled library (``simhsi/data/library/curated.npz``, see its README.md) holds 43 MEASURED spectra
on a 1 nm grid 350-2500 nm: 20 USGS splib07a spectra (vegetation, snow, water, dry vegetation, minerals;
350-2500 nm) and 23 earthlib ASD/ICRAF spectra (soils, urban materials, NPV, char; 400-2450 nm, measured
at 10 nm, stored linearly interpolated). Wavelengths where a spectrum was not measured are NaN;
:func:`select_endmembers` (and :func:`load_library` with a selection) trims the result to the range where
every chosen spectrum is finite.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simhsi.errors import DataError, FormatError, InputFileError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

BUNDLED = ("bundled", "curated", "default")
BUNDLED_FILE = "library/curated.npz"
CLASSES = ("vegetation", "npv", "soil", "water", "snow", "urban", "mineral", "char")


def _bundled() -> xr.DataArray:
    from importlib.resources import files

    from simhsi.conventions import make_library

    with files("simhsi.data").joinpath(BUNDLED_FILE).open("rb") as fh:
        z = np.load(fh, allow_pickle=False)
        d = {k: z[k] for k in z.files}
    lib = make_library(
        d["spectra"].astype(np.float64),
        d["wavelength_nm"],
        None,  # native resolutions differ (ASD 3-10 nm, Beckman, Nicolet; earthlib 10 nm): unknown
        names=[str(n) for n in d["names"]],
        attrs={"source": "simhsi bundled curated library (USGS splib07a + earthlib measured spectra)",
               "long_name": "reflectance"},
    )
    return lib.assign_coords(
        {"class": ("endmember", d["classes"].astype(str)),
         "subclass": ("endmember", d["subclasses"].astype(str)),
         "source": ("endmember", d["sources"].astype(str)),
         "record": ("endmember", d["records"].astype(str)),
         "native_sampling": ("endmember", d["native"].astype(str))}
    )


def _wavelength_to_nm(wl: np.ndarray, units: str | None) -> np.ndarray:
    u = (units or "").lower()
    if u.startswith(("micro", "um", "µm")) or (not u and np.nanmax(wl) < 100):
        return wl * 1000.0
    return wl


def _from_sli(path: Path) -> xr.DataArray:
    import spectral.io.envi as envi

    from simhsi.conventions import make_library

    hdr = path if path.suffix.lower() == ".hdr" else Path(str(path) + ".hdr")
    if not hdr.exists():
        alt = path.with_suffix(".hdr")
        hdr = alt if alt.exists() else hdr
    data = path if path.suffix.lower() != ".hdr" else path.with_suffix("")
    if not data.exists() and path.suffix.lower() == ".hdr":
        data = path.with_suffix(".sli")
    if not hdr.exists() or not data.exists():
        raise InputFileError(f"ENVI spectral library needs both the data file and its .hdr ({hdr.name})", path=path)
    try:
        sli = envi.open(str(hdr), str(data))
    except Exception as exc:  # spectral raises various errors for bad headers
        raise FormatError(f"not a readable ENVI spectral library ({exc})", path=path) from exc
    spectra = np.asarray(getattr(sli, "spectra", None))
    if spectra.ndim != 2:
        raise FormatError("ENVI file is not a spectral library (file type ENVI Spectral Library)", path=path)
    centers = getattr(sli.bands, "centers", None)
    if not centers:
        raise FormatError("the .hdr has no 'wavelength' entry; simhsi needs band wavelengths", path=path)
    wl = _wavelength_to_nm(np.asarray(centers, float), getattr(sli.bands, "band_unit", None))
    bw = getattr(sli.bands, "bandwidths", None)
    fw = _wavelength_to_nm(np.asarray(bw, float), getattr(sli.bands, "band_unit", None)) if bw else None
    names = list(getattr(sli, "names", None) or [f"spectrum{i}" for i in range(spectra.shape[0])])
    names = _unique(names)
    scale = float(sli.metadata.get("reflectance scale factor", 1.0) or 1.0)
    return make_library(spectra.astype(np.float64) / scale, wl, fw, names=names, attrs={"source": str(path)})


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        n = str(n).strip() or "spectrum"
        if n in seen:
            seen[n] += 1
            out.append(f"{n}_{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def _from_csv(path: Path) -> xr.DataArray:
    import csv

    from simhsi.conventions import make_library

    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
    except OSError as exc:
        raise InputFileError(f"cannot read ({exc.strerror})", path=path) from exc
    if len(rows) < 3 or len(rows[0]) < 2:
        raise FormatError("a library CSV needs a header (wavelength, name1, name2, ...) and >= 2 rows", path=path)
    head = [h.strip() for h in rows[0]]
    try:
        arr = np.array([[float(v) if v.strip() else np.nan for v in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise FormatError(f"non-numeric value in the spectra ({exc})", path=path) from exc
    if arr.shape[1] != len(head):
        raise FormatError(f"rows have {arr.shape[1]} values but the header {len(head)} names", path=path)
    wl_name = head[0].lower()
    wl = arr[:, 0]
    if not np.all(np.isfinite(wl)):
        raise FormatError(f"column {head[0]!r} (wavelengths) has empty values", path=path)
    units = "um" if ("um" in wl_name or "micro" in wl_name) else ("nm" if "nm" in wl_name else None)
    wl = _wavelength_to_nm(wl, units)
    cols = list(range(1, len(head)))
    fw = None
    fcols = [i for i in cols if head[i].lower().startswith("fwhm")]
    if fcols:
        fw = _wavelength_to_nm(arr[:, fcols[0]], units)
        cols = [i for i in cols if i not in fcols]
    return make_library(arr[:, cols].T, wl, fw, names=_unique([head[i] for i in cols]), attrs={"source": str(path)})


def _from_unmix(path: Path, run: int) -> xr.DataArray:
    from simhsi.conventions import make_library
    from simhsi.unmixing.results import read_unmix_results

    runs = read_unmix_results(path)
    if not 0 <= run < len(runs):
        raise ParameterError(f"run={run} but {path} holds {len(runs)} unmixing run(s) (0..{len(runs) - 1})")
    r = runs[run]
    E = r["endmembers"].transpose("endmember", "band")
    fw = E["fwhm"].values if "fwhm" in E.coords else None
    lib = make_library(np.asarray(E.values, np.float64), E["wavelength"].values, fw,
                       names=[str(n) for n in E["endmember"].values],
                       attrs={"source": f"{path} run {run} ({r.attrs.get('method', '?')}, "
                                        f"p={r.attrs.get('n_endmembers', E.sizes['endmember'])})"})
    return lib


def load_library(
    source: str | os.PathLike[str] | None = "bundled",
    *,
    names: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    n: int | None = None,
    seed: int = 0,
    run: int = 0,
    wavelength_range: tuple[float, float] | None = None,
) -> xr.DataArray:
    """Load an endmember library as a DataArray (endmember, band), wavelengths in nm.

    ``source``: ``"bundled"`` (the curated real library), an ENVI spectral library (``.sli`` + ``.hdr``),
    a CSV (first column wavelength — nm, or µm if its name says so or values < 100 —, one column per
    spectrum, optional ``fwhm`` column), or a ``simhsi unmix`` result file (``.nc``; ``run`` picks the run).
    With ``names``/``classes``/``n``/``wavelength_range`` the spectra are chosen by
    :func:`select_endmembers` (``n`` random ones with ``seed``; all matching ones when ``n`` is None).
    """
    if source is None or (isinstance(source, str) and source.lower() in BUNDLED):
        lib = _bundled()
    else:
        path = Path(source)
        if not path.exists():
            raise InputFileError(
                "library file not found; give an existing .sli/.csv/.nc file or 'bundled'", path=path
            )
        suf = path.suffix.lower()
        if suf in (".sli", ".hdr"):
            lib = _from_sli(path)
        elif suf in (".csv", ".txt"):
            lib = _from_csv(path)
        elif suf in (".nc", ".nc4", ".h5"):
            lib = _from_unmix(path, run)
        else:
            raise FormatError(f"unknown library format {suf!r}; use .sli (ENVI), .csv or a simhsi unmix .nc",
                              path=path)
    if names is None and classes is None and n is None and wavelength_range is None:
        return lib
    if n is None:
        if names is not None:
            n = 1 if isinstance(names, str) else len(names)
        else:
            n = len(_candidates(lib, classes=classes, wavelength_range=wavelength_range))
    return select_endmembers(lib, n, names=names, classes=classes, seed=seed, wavelength_range=wavelength_range)


def _candidates(lib: xr.DataArray, *, classes=None, wavelength_range=None) -> list[int]:
    all_names = [str(x) for x in lib["endmember"].values]
    idx = list(range(len(all_names)))
    if classes is not None:
        classes = [classes] if isinstance(classes, str) else list(classes)
        if "class" not in lib.coords:
            raise ParameterError("this library has no 'class' coordinate; select by names or at random")
        cl = [str(c) for c in lib["class"].values]
        unknown = sorted(set(classes) - set(cl))
        if unknown:
            raise ParameterError(f"unknown class(es) {unknown}; this library has {sorted(set(cl))}")
        idx = [i for i in idx if cl[i] in classes]
    if wavelength_range is not None:
        lo, hi = (float(v) for v in wavelength_range)
        wl = np.asarray(lib["wavelength"].values, float)
        inside = (wl >= lo) & (wl <= hi)
        vals = np.asarray(lib.values, float)
        idx = [i for i in idx if wl.min() <= lo and wl.max() >= hi and np.all(np.isfinite(vals[i, inside]))]
    return idx


def select_endmembers(
    library: xr.DataArray,
    p: int,
    *,
    names: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    wavelength_range: tuple[float, float] | None = None,
) -> xr.DataArray:
    """Choose ``p`` spectra: by ``names`` (in that order; p must equal their number), else at random
    (``seed``) among those of ``classes`` (or all), optionally only spectra measured over
    ``wavelength_range`` (nm). Trims the bands to where every chosen spectrum is finite.
    """
    from simhsi.conventions import ENDMEMBER

    if not isinstance(p, int | np.integer) or p < 1:
        raise ParameterError(f"p (number of endmembers) must be an int >= 1; got {p!r}")
    all_names = [str(x) for x in library[ENDMEMBER].values]
    if names is not None:
        names = [names] if isinstance(names, str) else [str(x) for x in names]
        missing = [x for x in names if x not in all_names]
        if missing:
            raise ParameterError(
                f"spectra {missing} are not in the library; available: {', '.join(all_names[:60])}"
                + (" ..." if len(all_names) > 60 else "")
            )
        if len(names) != p:
            raise ParameterError(f"{len(names)} names given for p={p} endmembers; give exactly p names")
        chosen = [all_names.index(x) for x in names]
    else:
        cand = _candidates(library, classes=classes, wavelength_range=wavelength_range)
        if len(cand) < p:
            raise ParameterError(
                f"p={p} endmembers requested but only {len(cand)} library spectra match "
                f"(classes={classes}, wavelength_range={wavelength_range})"
            )
        rng = np.random.default_rng(seed)
        chosen = [cand[i] for i in sorted(rng.choice(len(cand), size=p, replace=False))]
    sub = library.isel({ENDMEMBER: chosen})
    vals = np.asarray(sub.values, dtype=np.float64)
    ok = np.all(np.isfinite(vals), axis=0)
    if not ok.any():
        raise DataError("the chosen spectra share no wavelength where all are finite")
    first, last = np.flatnonzero(ok)[[0, -1]]
    band_dim = next(d for d in sub.dims if d != ENDMEMBER)
    sub = sub.isel({band_dim: slice(first, last + 1)})
    if np.isnan(np.asarray(sub.values)).any():  # interior gaps: interpolate along wavelength
        wl = np.asarray(sub["wavelength"].values, float)
        v = np.asarray(sub.values, float).copy()
        for i in range(v.shape[0]):
            f = np.isfinite(v[i])
            v[i] = np.interp(wl, wl[f], v[i, f])
        sub = sub.copy(data=v)
    return sub
