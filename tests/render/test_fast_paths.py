"""The fast paths of the forward model and its NetCDF export: Box-Muller noise, fused parametric noise,
slabbed computation, DN twin, compression choices — each checked against the plain formulas."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from test_forward import FakeSensor  # tests/render is on sys.path (rootdir-less test folder)

import simhsi.render.forward as fwd
from simhsi.conventions import make_abundances, make_library
from simhsi.errors import ParameterError
from simhsi.io.netcdf import write_netcdf
from simhsi.render import render_scene, write_scene
from simhsi.render.export import _to_dn
from simhsi.render.forward import _table_normal, dn_twin, gauss_table, tile_normal
from simhsi.sensors.noise import NoiseModel


def _scene(h=40, w=50, nb=30, p=3, seed=0):
    rng = np.random.default_rng(seed)
    wl = np.linspace(450, 2300, nb)
    lib = make_library(rng.uniform(0.05, 0.7, (p, nb)), wl, np.full(nb, 10.0))
    a = rng.dirichlet(np.ones(p), size=(h, w)).transpose(2, 0, 1).astype(np.float32)
    return make_abundances(a), lib, FakeSensor(wl, np.full(nb, 10.0))


def test_gauss_table_is_the_quantised_standard_normal():
    t = gauss_table().astype(np.float64)
    assert t.size == 65536 and np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t, -t[::-1])  # symmetric: mean exactly 0
    assert abs(np.mean(t**2) - 1) < 1e-6 and 4.3 < t[-1] < 4.5
    # level i lies inside its equiprobable bin: the quantised CDF is within 1/65536 of the normal CDF
    cdf = stats.norm.cdf(t)
    i = np.arange(t.size)
    assert np.all(cdf > i / t.size) and np.all(cdf < (i + 1) / t.size)


def test_table_normal_is_standard_normal():
    z = np.empty(1_000_003, dtype=np.float32)  # not a multiple of 4: the last raw word is partly used
    _table_normal(np.random.SFC64(3), z)
    zd = z.astype(np.float64)
    assert np.all(np.isfinite(zd)) and np.max(np.abs(zd)) <= 4.39
    assert abs(zd.mean()) < 4 / 1000 and abs(zd.std() - 1) < 4e-3
    assert abs(stats.skew(zd)) < 0.01 and abs(stats.kurtosis(zd)) < 0.03
    assert stats.kstest(zd[:200_000], "norm").pvalue > 1e-3
    # the four 16-bit draws of one 64-bit word are independent, also in their squares
    w = zd[: 4 * 200_000].reshape(-1, 4)
    for j in (1, 2, 3):
        assert abs(np.corrcoef(w[:, 0], w[:, j])[0, 1]) < 0.01
        assert abs(np.corrcoef(w[:, 0] ** 2, w[:, j] ** 2)[0, 1]) < 0.01
    # same generator state -> same values; different seed -> different values
    z2 = np.empty_like(z)
    _table_normal(np.random.SFC64(3), z2)
    np.testing.assert_array_equal(z, z2)
    _table_normal(np.random.SFC64(4), z2)
    assert not np.array_equal(z, z2)


def test_tiles_are_seeded_by_position():
    t00 = tile_normal(1, 0, 0, 4, block=16)
    assert t00.shape == (16, 16, 4) and t00.dtype == np.float32
    np.testing.assert_array_equal(t00, tile_normal(1, 0, 0, 4, block=16))
    for other in (tile_normal(1, 0, 1, 4, block=16), tile_normal(1, 1, 0, 4, block=16), tile_normal(2, 0, 0, 4, block=16)):
        assert not np.array_equal(t00, other)


@pytest.mark.parametrize("level,coeffs", [("L1", None), ("L2", None), ("L2", (0.02, 0.0, -0.05))])
def test_fused_parametric_noise_equals_the_model(monkeypatch, level, coeffs):
    a, lib, sen = _scene()
    if coeffs is not None:  # b = 0 and c < 0: the fused path needs its floor and |.| (skipped when they are no-ops)
        nb = sen.wavelength.size
        sen.noise = NoiseModel("parametric", {k: np.full(nb, v) for k, v in zip("abc", coeffs, strict=True)})
    kw = dict(level=level, seed=5, quantize=False, chunks=(32, 24))
    fast = render_scene(a, lib, sen, **kw)[("radiance" if level == "L1" else "reflectance")].values
    monkeypatch.setattr(fwd, "_parametric_coeffs", lambda *args: None)  # generic path: noise_model.sigma
    slow = render_scene(a, lib, sen, **kw)[("radiance" if level == "L1" else "reflectance")].values
    np.testing.assert_allclose(fast, slow, rtol=2e-6, atol=1e-7 if level == "L2" else 1e-4)
    clean = render_scene(a, lib, sen, level=level, noise=False, quantize=False)
    assert np.std(fast - clean[("radiance" if level == "L1" else "reflectance")].values) > 0


def test_slab_size_does_not_change_the_cube(monkeypatch):
    a, lib, sen = _scene(h=37, w=45)
    ref = render_scene(a, lib, sen, seed=2, chunks=(37, 45))["reflectance"].values
    monkeypatch.setattr(fwd, "SLAB_ELEMENTS", 7 * 30)  # 7 pixels per slab, slabs across tile borders
    small = render_scene(a, lib, sen, seed=2, chunks=(20, 16))["reflectance"].values
    np.testing.assert_array_equal(ref, small)


def test_dn_twin_gives_the_cubes_dn_and_is_used_by_write_scene(tmp_path, monkeypatch):
    a, lib, sen = _scene()
    ds = render_scene(a, lib, sen, seed=9, chunks=24)
    cube = ds["reflectance"].data
    twin = dn_twin(cube)
    assert twin is not None and twin.dtype == np.uint16 and twin.chunks == cube.chunks
    vals = cube.compute()
    attrs = ds["reflectance"].attrs
    np.testing.assert_array_equal(twin.compute(), _to_dn(vals, attrs["dn_scale"], attrs["dn_offset"], "uint16"))
    # a derived array has no twin
    assert dn_twin(cube[:10]) is None and dn_twin(cube.rechunk(10)) is None and dn_twin(vals) is None
    import simhsi.render.export as export

    def no_requantise(*args):
        raise AssertionError("the DN were re-derived from the float cube")

    monkeypatch.setattr(export, "_to_dn", no_requantise)
    path = write_scene(ds, tmp_path / "s.nc")
    with xr.open_dataset(path) as f:
        assert f["reflectance"].encoding["dtype"] == np.dtype("uint16")
        np.testing.assert_array_equal(f["reflectance"].values.astype(np.float32), vals)
    with pytest.raises(AssertionError, match="re-derived"):  # a derived cube goes the float -> DN way
        write_scene(ds.isel(y=slice(0, 10)), tmp_path / "s2.nc")
    # no twin for scenes that are not quantised to integer DN
    assert dn_twin(render_scene(a, lib, sen, quantize=False)["reflectance"].data) is None


def test_quantised_l1_values_match_the_sensor_formulas():
    a, lib, sen = _scene()
    ds = render_scene(a, lib, sen, level="L1", seed=1, chunks=32, keep_clean=True)
    v = ds["radiance"].values
    lq = sen.quantization["L1"]
    np.testing.assert_array_equal(v, lq.dequantize(lq.quantize(v.astype(np.float64))))
    noise = v.astype(np.float64) - ds["clean"].values
    assert 0 < np.std(noise) < 5.0


@pytest.mark.parametrize("compression", ["szip", "zlib", "zstd", "none"])
def test_compression_choices_round_trip(tmp_path, compression):
    a, lib, sen = _scene(h=20, w=24)
    ds = render_scene(a, lib, sen, seed=3, chunks=16)
    path = write_scene(ds, tmp_path / f"{compression}.nc", compression=compression)
    with xr.open_dataset(path) as f:
        np.testing.assert_array_equal(f["reflectance"].values.astype(np.float32), ds["reflectance"].values)
        np.testing.assert_array_equal(f["abundances"].values, ds["abundances"].values)
        filters = f["reflectance"].encoding
    if compression == "zlib":
        assert filters.get("zlib")
    elif compression == "none":
        assert not filters.get("zlib") and not filters.get("szip") and not filters.get("zstd")
    else:
        assert filters.get(compression)


def test_bad_compression_is_a_clear_error(tmp_path):
    with pytest.raises(ParameterError, match="compression.*szip"):
        write_netcdf(xr.DataArray(np.zeros((3, 3)), dims=("y", "x")), tmp_path / "x.nc", compression="lzma")
    assert not (tmp_path / "x.nc").exists()


def test_quantisation_in_other_units_is_float64():
    from simhsi.render.forward import _Quant
    from simhsi.sensors.quantize import LevelQuantization, Quantization

    sen = FakeSensor(np.linspace(450, 2400, 5), np.full(5, 10.0))
    sen.quantization = Quantization({"L1": LevelQuantization("L1", "radiance", "uW cm-2 sr-1 nm-1", scale=3000.0,
                                                             offset=0.5, bits=16)})
    q = _Quant(sen, "L1")
    assert q.factor == pytest.approx(0.1)
    v = np.random.default_rng(0).uniform(1.0, 200.0, (2000, 5)).astype(np.float32)  # W m-2 sr-1 um-1
    # float64 all the way (a float32 product v * factor rounds 4 of these 10000 values differently)
    dn = np.clip(np.rint((v.astype(np.float64) * q.factor + 0.5) * 3000.0), 0, 65535)
    np.testing.assert_array_equal(q.to_dn(v, np.empty(v.shape)), dn)
    np.testing.assert_array_equal(q.apply(v), ((dn / 3000.0 - 0.5) / q.factor).astype(np.float32))
