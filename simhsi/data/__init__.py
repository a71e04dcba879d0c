"""Real data shipped with simhsi: the Samson and Jasper Ridge benchmark scenes with their ground
truth, and the WDC Mall ground-truth abundances (see ``simhsi/data/PROVENANCE.md``).

>>> import simhsi.data
>>> ds = simhsi.data.load("samson")
>>> ds.cube.dims, ds.endmembers.dims, ds.abundances.dims
(('y', 'x', 'band'), ('endmember', 'band'), ('endmember', 'y', 'x'))

The files are the original ``.mat`` files of the benchmarks; nothing is pre-processed.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simhsi.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["available", "load", "data_path", "describe"]

_DATASETS: dict[str, str] = {
    "samson": "Samson (SAMSON sensor, 95 x 95 px, 156 bands 401-889 nm, max-normalised); GT soil/tree/water",
    "jasper_ridge": "Jasper Ridge (AVIRIS, 100 x 100 px, 198 bands, raw counts); GT tree/water/dirt/road",
    "wdc_mall": "Washington DC Mall (HYDICE, 319 x 292 px) ground-truth abundances of 6 endmembers; no cube",
}

_FILES: dict[str, tuple[str, ...]] = {
    "samson": ("samson/samson_1.mat", "samson/misicnet_E.mat", "samson/misicnet_A_true.mat"),
    "jasper_ridge": ("jasper_ridge/jasperRidge2_R198.mat", "jasper_ridge/jasperRidge2_end4.mat"),
    "wdc_mall": ("wdc_mall/wdc_gt.npz",),
}

SAMSON_NAMES = ("soil", "tree", "water")


def available() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(_DATASETS)


def describe(name: str) -> str:
    """One-line description of a bundled dataset."""
    return _DATASETS[_check_name(name)]


def _check_name(name: str) -> str:
    key = str(name).lower().replace("-", "_").replace(" ", "_")
    if key == "jasper":
        key = "jasper_ridge"
    if key not in _DATASETS:
        raise ParameterError(f"unknown bundled dataset {name!r}; choose one of {', '.join(available())}")
    return key


def data_path(*parts: str) -> Path:
    """Path of a file shipped in ``simhsi/data`` (e.g. ``data_path("samson", "samson_1.mat")``)."""
    p = Path(str(resources.files("simhsi.data").joinpath(*parts)))
    if not p.exists():
        from simhsi.errors import InputFileError

        raise InputFileError("bundled data file is missing; reinstall simhsi", path=p)
    return p


def _gt_fit(cube: np.ndarray, E: np.ndarray, A: np.ndarray) -> tuple[float, float]:
    """LS scale k and relative error ||Y - k E A|| / ||Y|| of ground truth (E (B,p), A (p,H,W))."""
    Y = cube.reshape(-1, cube.shape[-1]).T.astype(np.float64)
    R = E.astype(np.float64) @ A.reshape(A.shape[0], -1).astype(np.float64)
    k = float((Y * R).sum() / (R * R).sum())
    return k, float(np.linalg.norm(Y - k * R) / np.linalg.norm(Y))


@functools.lru_cache(maxsize=4)
def _build(name: str, normalize: bool) -> xr.Dataset:
    import xarray as xr

    from simhsi.conventions import make_abundances, make_library, provenance_attrs
    from simhsi.io.mat import read_mat_abundances, read_mat_cube, read_mat_endmembers

    if name == "wdc_mall":
        z = np.load(data_path("wdc_mall", "wdc_gt.npz"))
        E, A = z["endmembers"], z["abundances"]
        nb, p = E.shape
        lib = make_library(E.T, np.full(nb, np.nan), names=[f"em{i}" for i in range(p)],
                           attrs={"wavelengths_unknown": 1})
        ab = make_abundances(A, lib.endmember.values.tolist())
        return xr.Dataset(
            {"endmembers": lib, "abundances": ab},
            attrs={
                "title": "Washington DC Mall (HYDICE) ground truth, MiSiCNet release",
                "source": "github BehnoodRasti/MiSiCNet @ 1bc6afc1, 'HS Data/WDC/' A_true.mat, E.mat (Apache-2.0)",
                "note": "191 HYDICE bands, band centres not stored; endmember names not stored (em0..em5)",
                "bundled_files": ", ".join(_FILES[name]),
            },
        )

    files = [data_path(*f.split("/")) for f in _FILES[name]]
    cube = read_mat_cube(files[0])
    wl, fw = cube.wavelength.values, cube.fwhm.values
    if name == "samson":
        E, _ = read_mat_endmembers(files[1])
        A, _ = read_mat_abundances(files[2])
        names = list(SAMSON_NAMES)
        attrs = {
            "title": "Samson benchmark scene (F. Zhu), ground truth from MiSiCNet",
            "sensor": "SAMSON",
            "source": "samson_1.mat: github ricardoborsoi/MUA_SparseUnmixing @ 089f5d61 real_data/; "
            "E.mat, A_true.mat: github BehnoodRasti/MiSiCNet @ 1bc6afc1 'HS Data/Samson/' (Apache-2.0)",
            "scaling": "cube is max-normalised to [0, 1] in the original file (HySUPP protocol); "
            "endmembers on the same scale",
        }
    else:
        E, names_e = read_mat_endmembers(files[1])
        A, _ = read_mat_abundances(files[1], shape=cube.shape[:2])
        names = names_e or ["tree", "water", "dirt", "road"]
        attrs = {
            "title": "Jasper Ridge benchmark scene (F. Zhu, AVIRIS), Zhu's end4 ground truth",
            "sensor": "AVIRIS",
            "source": "jasperRidge2_R198.mat, jasperRidge2_end4.mat: github shuaikaishi/PGMSU @ a33e6318 dataset/",
            "scaling": "raw counts (0-5437) unless normalize=True; the HySUPP protocol divides the cube by its "
            "maximum; endmembers are on that normalised scale (Y ~= k*E*A with k near the cube maximum)",
        }
    data = cube.values
    if normalize:
        data = data / data.max()
        cube = cube.copy(data=data.astype(np.float32))
        cube.attrs["units"] = "1"
        attrs["normalized"] = "cube divided by its maximum"
    k, rel = _gt_fit(data, E, A)
    lib = make_library(E.T.astype(np.float32), wl, fw, names, units="1")
    ab = make_abundances(A.astype(np.float32), names)
    cube.attrs.pop("source_file", None)
    cube.attrs["sensor"] = attrs["sensor"]
    cube.attrs["processing_level"] = "benchmark"
    attrs.update(
        wavelengths_approximate=1,
        fwhm_approximate=1,
        gt_ls_scale=k,
        gt_relative_error=rel,
        bundled_files=", ".join(_FILES[name]),
    )
    attrs.update(provenance_attrs())
    return xr.Dataset({"cube": cube, "endmembers": lib, "abundances": ab},
                      attrs=attrs)


def load(name: str, *, normalize: bool = False) -> xr.Dataset:
    """Load a bundled dataset as an xarray ``Dataset`` (in memory, a few MB).

    ``"samson"`` / ``"jasper_ridge"``: ``cube`` (y, x, band) with ``wavelength``/``fwhm`` coords in
    nm (nominal grid, ``wavelengths_approximate=1``), ``endmembers`` (endmember, band) and
    ``abundances`` (endmember, y, x) with endmember names. Attrs give the provenance, the scaling,
    and the measured ground-truth fit ``gt_ls_scale`` k and ``gt_relative_error``
    ||Y - k E A|| / ||Y||. ``normalize=True`` divides the cube by its maximum (the HySUPP protocol;
    Samson is already normalised in the file).

    ``"wdc_mall"``: ``abundances`` (6, 319, 292) and ``endmembers`` (6, 191) only (no cube).
    """
    key = _check_name(name)
    if not isinstance(normalize, bool):
        raise ParameterError(f"The 'normalize' parameter of load must be a bool. Got {normalize!r} instead.")
    return _build(key, normalize).copy(deep=True)

