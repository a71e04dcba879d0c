"""Sensors with bands at several GSDs (Sentinel-2's 10 / 20 / 60 m): each group through its own spatial stage."""

import copy

import numpy as np
import pytest

from simhsi.conventions import make_abundances
from simhsi.errors import DataError, SensorError
from simhsi.library import load_library, select_endmembers
from simhsi.render import render_scene, write_scene
from simhsi.render.forward import band_gsd_groups, dn_twin
from simhsi.sensors import load_sensor


@pytest.fixture(scope="module")
def s2():
    return load_sensor("sentinel2a")


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(3), size=(50, 64)).transpose(2, 0, 1).astype(np.float32)
    lib = select_endmembers(load_library("bundled"), 3, seed=0)
    return make_abundances(a, [str(n) for n in lib.endmember.values]), lib


def test_groups_of_sentinel2(s2):
    groups = band_gsd_groups(s2)
    assert [g for g, _ in groups] == [10.0, 20.0, 60.0]
    names = {g: sorted(np.asarray(s2.band_names)[idx]) for g, idx in groups}
    assert names[10.0] == ["B2", "B3", "B4", "B8"] and names[60.0] == ["B1", "B10", "B9"]
    assert band_gsd_groups(load_sensor("prisma")) is None


def test_coarse_bands_are_the_mixture_of_block_means(s2, scene):
    a, lib = scene
    sen = copy.copy(s2)
    sen.psf_sigma_gsd = 0.0  # box integration only: a coarse pixel is the mean of its k x k fine pixels
    ds = render_scene(a, lib, sen, noise=False, quantize=False, chunks=32, out_of_range="warn")
    cube = ds["reflectance"].values.astype(np.float64)
    E = ds["endmembers"].values.astype(np.float64)  # (p, band)
    av = a.values.astype(np.float64)
    H, W = av.shape[1:]
    for b, g in enumerate(ds["gsd_m"].values):
        k = int(round(g / 10))
        hk, wk = H // k, W // k  # full coarse pixels; partial edge pixels repeat the last full one
        means = av[:, :hk * k, :wk * k].reshape(3, hk, k, wk, k).mean(axis=(2, 4))
        expect = np.einsum("p,pyx->yx", E[:, b], means)
        expect = np.pad(expect, ((0, -(-H // k) - hk), (0, -(-W // k) - wk)), mode="edge")
        expect = np.repeat(np.repeat(expect, k, 0), k, 1)[:H, :W]
        np.testing.assert_allclose(cube[:, :, b], expect, atol=2e-6, err_msg=f"band {b} ({g} m)")


def test_noise_is_drawn_on_each_band_grid_and_independent_of_chunks(s2, scene):
    a, lib = scene
    c1 = render_scene(a, lib, s2, seed=4, chunks=32, out_of_range="warn")["reflectance"].values
    c2 = render_scene(a, lib, s2, seed=4, chunks=(17, 45), out_of_range="warn")["reflectance"].values
    np.testing.assert_array_equal(c1, c2)
    gsd = load_sensor("sentinel2a").band_table["gsd_m"]
    for b, g in enumerate(gsd):
        k = int(round(g / 10))
        m = max(k, 2)  # 10 m bands must vary inside 2 x 2 blocks
        blocks = c1[: 48, : 60, b].reshape(48 // m, m, 60 // m, m)
        const = np.all(blocks == blocks[:, :1, :, :1])
        assert const == (k > 1), f"band {b} ({g} m)"


def test_write_reread_identical(s2, scene, tmp_path):
    a, lib = scene
    ds = render_scene(a, lib, s2, seed=2, chunks=32, out_of_range="warn")
    assert dn_twin(ds["reflectance"].data) is not None
    out = tmp_path / "s2.nc"
    write_scene(ds, out, progress=False)
    import xarray as xr

    with xr.open_dataset(out) as f:
        # stored as the sensor's DN (uint16, scale 1e-4): equal to float precision
        np.testing.assert_allclose(f["reflectance"].values, ds["reflectance"].values, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(f["gsd_m"].values, s2.band_table["gsd_m"])


def test_bad_band_gsd_and_nodata(s2, scene):
    a, lib = scene
    sen = copy.copy(s2)
    sen.band_table = dict(s2.band_table, gsd_m=np.where(s2.band_table["gsd_m"] == 20, 25.0, s2.band_table["gsd_m"]))
    with pytest.raises(SensorError, match="integer multiples"):
        render_scene(a, lib, sen, out_of_range="warn")
    holes = a.copy()
    holes[:, 3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        render_scene(holes, lib, s2, out_of_range="warn")


def test_from_a_finer_scene(s2, scene):
    a, lib = scene  # 50 x 64 px of 4 m: 20 x 25 px at 10 m; 60 m bands from 3 x 4 full 60 m pixels + edge
    ds = render_scene(a, lib, s2, scene_pixel_m=4.0, seed=1, chunks=16, out_of_range="warn")
    cube = ds["reflectance"].values
    assert cube.shape == (20, 25, 13) and np.all(np.isfinite(cube))
    b60 = int(np.flatnonzero(ds["gsd_m"].values == 60)[0])
    assert np.unique(cube[:, :, b60]).size <= 4 * 5
    assert "60 m" in ds.attrs["spatial_stage"]


def test_quicklook_rgb_uses_the_finest_bands(s2, scene):
    from simhsi.render.quicklook import rgb_bands

    a, lib = scene
    ds = render_scene(a, lib, s2, noise=False, out_of_range="warn")
    names = [str(ds["band_name"].values[i]) for i in rgb_bands(ds["reflectance"])]
    assert names == ["B4", "B3", "B2"]  # not the 60 m B1 (443 nm), nearer to 460 nm than B2
