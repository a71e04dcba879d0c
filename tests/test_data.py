"""Bundled real data: shapes, names, simplex, and the ground truth reproducing the cube."""

from __future__ import annotations

import numpy as np
import pytest

import simhsi.data
from simhsi.conventions import check_abundances, check_cube
from simhsi.errors import ParameterError

# Relative reconstruction errors ||Y - k E A|| / ||Y|| stated in simhsi/data/PROVENANCE.md.
STATED = {"samson": 0.09, "jasper_ridge": 0.16}


def _rel_error(cube, E, A) -> tuple[float, float]:
    """LS scale k and relative error of the GT, computed independently of simhsi.data."""
    h, w, b = cube.shape
    Y = np.asarray(cube, dtype=np.float64).reshape(h * w, b).T
    R = np.asarray(E, dtype=np.float64) @ np.asarray(A, dtype=np.float64).reshape(A.shape[0], h * w)
    k = float(np.vdot(Y, R) / np.vdot(R, R))
    return k, float(np.linalg.norm(Y - k * R) / np.linalg.norm(Y))


def test_available():
    assert simhsi.data.available() == ["jasper_ridge", "samson", "wdc_mall"]
    with pytest.raises(ParameterError, match="unknown bundled dataset 'urban'"):
        simhsi.data.load("urban")


@pytest.mark.parametrize(
    ("name", "shape", "names", "wl_range"),
    [
        ("samson", (95, 95, 156), ["soil", "tree", "water"], (401.0, 889.0)),
        ("jasper_ridge", (100, 100, 198), ["tree", "water", "dirt", "road"], (380 + 3 * 9.46, 380 + 218 * 9.46)),
    ],
)
def test_scene_ground_truth_reproduces_cube(name, shape, names, wl_range):
    ds = simhsi.data.load(name)
    cube = check_cube(ds.cube)
    assert cube.shape == shape
    np.testing.assert_allclose([cube.wavelength[0], cube.wavelength[-1]], wl_range)
    assert np.all(np.diff(cube.wavelength.values) > 0)
    assert np.isfinite(cube.fwhm.values).all()
    assert list(ds.endmember.values) == names
    assert ds.endmembers.dims == ("endmember", "band") and ds.endmembers.shape == (len(names), shape[2])
    check_abundances(ds.abundances, atol=1e-4)
    assert ds.attrs["wavelengths_approximate"] == 1
    k, rel = _rel_error(cube.values, ds.endmembers.values.T, ds.abundances.values)
    assert rel == pytest.approx(STATED[name], abs=0.01)
    assert ds.attrs["gt_relative_error"] == pytest.approx(rel, rel=1e-6)
    # Tree has the higher NIR reflectance, water the lowest reflectance overall.
    nir = cube.wavelength.values > 800
    e = ds.endmembers.sel(band=nir).mean("band")
    assert float(e.sel(endmember="tree")) > float(e.sel(endmember="water"))
    assert int(np.argmin(e.values)) == names.index("water")
    if name == "jasper_ridge":
        assert cube.attrs["units"] == "count" and float(cube.max()) == 5437.0
        assert k == pytest.approx(5367, rel=0.01)
        norm = simhsi.data.load(name, normalize=True)
        assert float(norm.cube.max()) == 1.0
        k_n, rel_n = _rel_error(norm.cube.values, norm.endmembers.values.T, norm.abundances.values)
        assert rel_n == pytest.approx(rel, rel=1e-4) and k_n == pytest.approx(k / 5437.0, rel=1e-4)
    else:
        assert float(cube.max()) <= 1.0 and k == pytest.approx(1.0, abs=0.05)


def test_load_returns_independent_copies():
    a = simhsi.data.load("samson")
    a.cube[:] = 0
    assert float(simhsi.data.load("samson").cube.max()) > 0


def test_wdc_mall_ground_truth():
    ds = simhsi.data.load("wdc_mall")
    assert "cube" not in ds
    assert ds.abundances.shape == (6, 319, 292)
    assert ds.endmembers.shape == (6, 191)
    check_abundances(ds.abundances, atol=1e-3)
