"""Collections of unmixing runs and the unmix output file (what ``simhsi train`` reads).

File layout (NetCDF-4, one file for all runs of ``simhsi unmix``):

* ``abundances`` (run, endmember, y, x): each run's maps, NaN beyond its own p (``endmember`` has the
  size of the largest p, names ``em0, em1, ...``) and at masked pixels;
* ``endmembers`` (run, endmember, band): spectra in the cube's units, NaN beyond p;
* ``mask`` (y, x): True where every run used the pixel;
* coords on ``run``: ``method`` (str), ``family`` (str), ``n_endmembers`` (int), ``seed`` (int),
  ``runtime_s``, ``rmse`` (reconstruction RMSE, cube units), ``hyperparameters`` (JSON str), and
  ``sad``/``armse`` (HySUPP scores, NaN where not computed) when any run was scored against a reference;
* coords on ``band``: ``wavelength``, ``fwhm`` (nm), the bands the methods kept;
* attrs: ``source_file`` (input), ``reference`` (when given), simhsi provenance, metric definitions.

:func:`read_unmix_results` gives back one result Dataset per run, unpadded (as ``Unmixer.fit`` made it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.errors import DataError, FormatError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

RUN = "run"
_RUN_COORDS = ("method", "family", "n_endmembers", "seed", "runtime_s", "rmse", "hyperparameters")
_SCORE_ATTRS = {"sad": "sad_deg", "armse": "armse"}


def stack_results(results: Sequence[xr.Dataset], *, source_file: str | os.PathLike[str] | None = None,
                  reference: str | None = None) -> xr.Dataset:
    """Stack result Datasets of one cube (any methods, p, seeds) along a new ``run`` dim (see module docs).

    Runs must share the spatial grid and the kept bands. A run's HySUPP scores are taken from its
    attrs ``sad_deg``/``armse`` when present (the CLI sets them with ``--reference``).
    """
    import xarray as xr

    from simhsi.conventions import FWHM, WAVELENGTH, default_endmember_names, provenance_attrs
    from simhsi.metrics.unmixing import DEFINITIONS

    results = list(results)
    if not results:
        raise DataError("no unmixing result to stack")
    first = results[0]
    h, w = first.sizes["y"], first.sizes["x"]
    nb = first.sizes["band"]
    wl = np.asarray(first[WAVELENGTH].values, dtype=np.float64)
    for k, r in enumerate(results):
        if (r.sizes["y"], r.sizes["x"]) != (h, w):
            raise DataError(f"run {k} is {r.sizes['y']}x{r.sizes['x']} pixels, run 0 {h}x{w}; stack runs of one cube")
        if r.sizes["band"] != nb or not np.allclose(np.asarray(r[WAVELENGTH].values, dtype=np.float64), wl,
                                                    equal_nan=True):
            raise DataError(f"run {k} kept other bands than run 0; stack runs of one cube")
    pmax = max(int(r.sizes["endmember"]) for r in results)
    n = len(results)
    ab = np.full((n, pmax, h, w), np.nan, dtype=np.float32)
    em = np.full((n, pmax, nb), np.nan, dtype=np.float64)
    mask = np.ones((h, w), dtype=bool)
    run_coords: dict[str, list[Any]] = {k: [] for k in _RUN_COORDS}
    scores: dict[str, list[float]] = {k: [] for k in _SCORE_ATTRS}
    for k, r in enumerate(results):
        p = int(r.sizes["endmember"])
        ab[k, :p] = r["abundances"].transpose("endmember", "y", "x").values
        em[k, :p] = r["endmembers"].transpose("endmember", "band").values
        mask &= np.asarray(r["mask"].values, dtype=bool)
        a = r.attrs
        run_coords["method"].append(str(a.get("method", "")))
        run_coords["family"].append(str(a.get("family", "")))
        run_coords["n_endmembers"].append(p)
        run_coords["seed"].append(int(a.get("seed", 0)))
        run_coords["runtime_s"].append(float(a.get("runtime_s", np.nan)))
        run_coords["rmse"].append(float(a.get("rmse", np.nan)))
        hp = a.get("hyperparameters", "{}")
        run_coords["hyperparameters"].append(hp if isinstance(hp, str) else json.dumps(hp, default=str))
        for key, attr in _SCORE_ATTRS.items():
            scores[key].append(float(a.get(attr, np.nan)))
    coords: dict[str, Any] = {
        "endmember": default_endmember_names(pmax),
        WAVELENGTH: ("band", wl, {"units": "nm"}),
    }
    if FWHM in first.coords:
        coords[FWHM] = ("band", np.asarray(first[FWHM].values, dtype=np.float64), {"units": "nm"})
    for dim in ("y", "x"):
        if dim in first.coords:
            coords[dim] = first[dim].values
    dtypes = {"n_endmembers": np.int32, "seed": np.int64, "runtime_s": np.float64, "rmse": np.float64}
    for k, vals in run_coords.items():
        coords[k] = (RUN, np.asarray(vals, dtype=dtypes.get(k, object)).astype(dtypes.get(k, str)))
    if any(np.isfinite(v).any() for v in scores.values()):
        for k, vals in scores.items():
            coords[k] = (RUN, np.asarray(vals, dtype=np.float64),
                         {"definition": DEFINITIONS["sad_deg" if k == "sad" else "armse"]})
    units = first["endmembers"].attrs.get("units", "1")
    ds = xr.Dataset(
        {
            "abundances": ((RUN, "endmember", "y", "x"), ab, {"units": "1",
                                                               "note": "NaN beyond each run's n_endmembers"}),
            "endmembers": ((RUN, "endmember", "band"), em, {"units": units}),
            "mask": (("y", "x"), mask),
        },
        coords=coords,
    )
    extra: dict[str, Any] = {"title": "simhsi unmixing runs", "n_runs": n}
    if source_file is not None:
        extra["source_file"] = str(source_file)
    if reference is not None:
        extra["reference"] = str(reference)
    extra.update({f"definition_{k}": v for k, v in DEFINITIONS.items()})
    ds.attrs.update(provenance_attrs(**extra))
    return ds


def unstack_results(ds: xr.Dataset) -> list[xr.Dataset]:
    """Split a stacked Dataset (from :func:`stack_results`) into one unpadded result per run."""
    import xarray as xr

    for var in ("abundances", "endmembers"):
        if var not in ds.data_vars:
            raise FormatError(f"not an unmix results file: no {var!r} variable")
    if RUN not in ds.dims or "n_endmembers" not in ds.coords or "method" not in ds.coords:
        raise FormatError("not an unmix results file: no 'run' dim with 'method'/'n_endmembers' coords")
    from simhsi.conventions import default_endmember_names

    out = []
    for k in range(ds.sizes[RUN]):
        run = ds.isel({RUN: k})
        p = int(run["n_endmembers"].values)
        names = default_endmember_names(p)
        sub = run.isel(endmember=slice(0, p))
        coords = {c: sub.coords[c].variable for c in sub.coords if RUN not in sub.coords[c].dims and c not in
                  (*_RUN_COORDS, *_SCORE_ATTRS, RUN, "endmember")}
        r = xr.Dataset(
            {
                "endmembers": sub["endmembers"].transpose("endmember", "band").astype(np.float64).load().variable,
                "abundances": sub["abundances"].transpose("endmember", "y", "x").astype(np.float64).load().variable,
                "mask": sub["mask"].load().variable,
            },
            coords={**coords, "endmember": names},
        )
        attrs: dict[str, Any] = {}
        for c in _RUN_COORDS:
            if c in run.coords:
                v = run[c].values.item()
                attrs[c] = v.decode() if isinstance(v, bytes) else v
        for c, attr in _SCORE_ATTRS.items():
            if c in run.coords:
                attrs[attr] = float(run[c].values)
        attrs["n_endmembers"] = p
        for key in ("source_file", "simhsi_version", "created_utc"):
            if key in ds.attrs:
                attrs[key] = ds.attrs[key]
        r.attrs.update(attrs)
        out.append(r)
    return out


def write_unmix_results(results: Sequence[xr.Dataset] | xr.Dataset, path: str | os.PathLike[str], *,
                        overwrite: bool = False, source_file: str | None = None,
                        reference: str | None = None) -> Path:
    """Write runs (a list of results, or an already stacked Dataset) to ``path`` (NetCDF-4, atomic)."""
    import xarray as xr

    from simhsi.io.netcdf import write_netcdf

    ds = results if isinstance(results, xr.Dataset) else stack_results(results, source_file=source_file,
                                                                         reference=reference)
    return write_netcdf(ds, path, overwrite=overwrite)


def read_unmix_results(path: str | os.PathLike[str]) -> list[xr.Dataset]:
    """Read an unmix output file; one result Dataset (endmember, band / endmember, y, x) per run."""
    from simhsi.io.netcdf import open_dataset

    ds = open_dataset(path, chunks=None)
    try:
        try:
            return unstack_results(ds)
        except FormatError as exc:
            raise FormatError(exc.message, path=path) from None
    finally:
        ds.close()
