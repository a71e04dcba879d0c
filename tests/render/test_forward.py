"""Forward model: SRF flatness, exact E·A, noise statistics, chunk-invariant noise, bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from simhsi.conventions import make_abundances, make_library
from simhsi.errors import DataError, ParameterError, SensorError
from simhsi.render import block_normal, earth_sun_distance_au, render_scene
from simhsi.render.forward import reflectance_to_radiance_gain
from simhsi.sensors.noise import NoiseModel
from simhsi.sensors.quantize import LevelQuantization, Quantization
from simhsi.sensors.srf import gaussian_srf_matrix


class FakeSensor:
    """A small sensor built from the real simhsi.sensors parts (noise, quantisation, Gaussian SRF)."""

    def __init__(self, wavelength, fwhm, noise: NoiseModel | None = None, name: str = "fake"):
        self.name = name
        self.wavelength = np.asarray(wavelength, dtype=np.float64)
        self.fwhm = np.asarray(fwhm, dtype=np.float64)
        nb = self.wavelength.size
        self.band_names = [f"b{i}" for i in range(nb)]
        self.bad_band = np.zeros(nb, dtype=bool)
        self.gsd_m = 30.0
        self.psf_sigma_gsd = 0.5
        # PRISMA-like parametric noise: sigma = |a sqrt(b + L) + c| (uW cm-2 sr-1 nm-1)
        self.noise = noise or NoiseModel("parametric", {"a": np.full(nb, 0.017), "b": np.full(nb, 2.4),
                                                         "c": np.zeros(nb)})
        self.quantization = Quantization({
            "L1": LevelQuantization("L1", "radiance", "W m-2 sr-1 um-1", scale=100.0, offset=0.0, bits=16),
            "L2": LevelQuantization("L2", "reflectance", "1", scale=65535.0, offset=0.0, bits=16, fill_value=0),
        })

    def srf_matrix(self, src_wavelength_nm, src_fwhm_nm=None, *, out_of_range="error"):
        return gaussian_srf_matrix(self.wavelength, self.fwhm, src_wavelength_nm, src_fwhm_nm,
                                   out_of_range=out_of_range)


def fine_library(values: np.ndarray, wl=None) -> xr.DataArray:
    wl = np.arange(400.0, 2501.0, 1.0) if wl is None else wl
    return make_library(values, wl, names=[f"em{i}" for i in range(values.shape[0])])


def sensor_50() -> FakeSensor:
    return FakeSensor(np.linspace(450, 2400, 50), np.full(50, 10.0))


def test_flat_spectrum_stays_flat_through_gaussian_srf():
    wl = np.arange(400.0, 2501.0, 1.0)
    lib = fine_library(np.full((2, wl.size), 0.3))
    a = make_abundances(np.stack([np.full((8, 8), 0.25), np.full((8, 8), 0.75)]).astype(np.float32))
    ds = render_scene(a, lib, sensor_50(), noise=False, quantize=False)
    cube = ds["reflectance"].values
    np.testing.assert_allclose(cube, 0.3, atol=1e-6)
    np.testing.assert_allclose(ds["endmembers"].values, 0.3, atol=1e-6)
    assert ds["reflectance"].dims == ("y", "x", "band")


def test_identity_srf_reproduces_EA_exactly(mixture):
    cube, E, A = mixture(h=12, w=10, n_bands=40, p=3, seed=1)
    wl, fw = cube["wavelength"].values, cube["fwhm"].values
    lib = make_library(E.T, wl, fw)
    sensor = FakeSensor(wl, fw)
    ds = render_scene(make_abundances(A.astype(np.float32)), lib, sensor, noise=False, quantize=False, chunks=16)
    expected = (E @ A.reshape(3, -1)).T.reshape(12, 10, 40)
    np.testing.assert_allclose(ds["reflectance"].values, expected, rtol=1e-5, atol=1e-6)
    assert ds.attrs["spectral_stage"].startswith("identity")


def test_jasper_ridge_ground_truth_at_its_own_bands():
    import simhsi.data

    gt = simhsi.data.load("jasper_ridge")
    E = gt["endmembers"]
    A = gt["abundances"].transpose("endmember", "y", "x")
    sensor = FakeSensor(E["wavelength"].values, E["fwhm"].values)
    ds = render_scene(A, E, sensor, noise=False, quantize=False, chunks=32)
    expected = np.einsum("pb,pyx->yxb", E.values.astype(np.float64), A.values.astype(np.float64))
    np.testing.assert_allclose(ds["reflectance"].values, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds["abundances"].values, A.values)


def _uniform_scene(n=128, refl=0.4):
    wl = np.arange(400.0, 2501.0, 1.0)
    lib = fine_library(np.full((2, wl.size), refl))
    a = make_abundances(np.full((2, n, n), 0.5, dtype=np.float32))
    return a, lib


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_empirical_snr_matches_noise_model(level):
    a, lib = _uniform_scene()
    sen = sensor_50()
    kw = dict(level=level, quantize=False, sun_zenith_deg=30.0, day_of_year=172, seed=3, chunks=64)
    noisy = render_scene(a, lib, sen, keep_clean=True, **kw)
    var = "radiance" if level == "L1" else "reflectance"
    y = noisy[var].values.reshape(-1, 50).astype(np.float64)
    clean = noisy["clean"].values[0, 0].astype(np.float64)
    gain = reflectance_to_radiance_gain(sen.wavelength, 30.0, 172, sen.fwhm)
    L = 0.4 * gain  # W m-2 sr-1 um-1
    sigma_L = sen.noise.sigma(L * 0.1, band_axis=-1) * 10.0
    sigma = sigma_L if level == "L1" else sigma_L / gain
    np.testing.assert_allclose(clean, L if level == "L1" else 0.4, rtol=1e-5)
    emp_snr = y.mean(axis=0) / y.std(axis=0, ddof=1)
    model_snr = clean / sigma
    np.testing.assert_allclose(emp_snr, model_snr, rtol=0.03)
    # snr_scale multiplies the SNR
    noisy2 = render_scene(a, lib, sen, snr_scale=2.0, **kw)
    y2 = noisy2[var].values.reshape(-1, 50).astype(np.float64)
    np.testing.assert_allclose(y2.std(axis=0, ddof=1), sigma / 2, rtol=0.03)


def test_noise_identical_whatever_the_chunking(mixture):
    _, E, A = mixture(h=70, w=90, n_bands=30, p=3, seed=2)
    wl = np.linspace(420, 2300, 30)
    lib = make_library(E.T, wl, np.full(30, 10.0))
    sensor = FakeSensor(wl, np.full(30, 10.0))
    abund = make_abundances(A.astype(np.float32))
    ref = render_scene(abund, lib, sensor, seed=7, chunks=(70, 90))["reflectance"].values
    for chunks in (16, (33, 50), (64, 17)):
        ds = render_scene(abund, lib, sensor, seed=7, chunks=chunks)
        assert ds["reflectance"].data.chunks[0][0] == (chunks if isinstance(chunks, int) else chunks[0])
        np.testing.assert_array_equal(ds["reflectance"].values, ref)
    other = render_scene(abund, lib, sensor, seed=8, chunks=16)["reflectance"].values
    assert not np.array_equal(other, ref)
    # the values were quantised to the L2 DN step
    dn = ref / (1.0 / 65535.0)
    np.testing.assert_allclose(dn, np.rint(dn), atol=1e-2)


def test_block_normal_does_not_depend_on_the_window():
    full = block_normal(5, 0, 300, 0, 260, 3, block=128)
    part = block_normal(5, 100, 231, 57, 199, 3, block=128)
    np.testing.assert_array_equal(part, full[100:231, 57:199])
    assert full.dtype == np.float32
    assert abs(float(full.std()) - 1.0) < 0.01


def test_l1_radiance_formula():
    a, lib = _uniform_scene(n=8, refl=0.5)
    sen = sensor_50()
    ds = render_scene(a, lib, sen, level="L1", noise=False, quantize=False, sun_zenith_deg=40.0, day_of_year=3)
    from simhsi.sensors.solar import solar_irradiance

    d = earth_sun_distance_au(3)
    assert 0.9832 < d < 0.9834  # perihelion
    e0 = solar_irradiance(sen.wavelength, sen.fwhm)
    expected = 0.5 * e0 * np.cos(np.radians(40.0)) / (np.pi * d * d)
    np.testing.assert_allclose(ds["radiance"].values[3, 4], expected, rtol=1e-5)
    assert ds["radiance"].attrs["units"] == "W m-2 sr-1 um-1"
    assert "no transmittance" in ds.attrs["atmosphere"]


def test_spatial_stage_runs_on_abundances():
    wl = np.arange(400.0, 2501.0, 1.0)
    rng = np.random.default_rng(0)
    lib = fine_library(rng.uniform(0.1, 0.6, (3, 1)) * np.ones((3, wl.size)))
    a = rng.dirichlet(np.ones(3), size=(60, 45)).transpose(2, 0, 1).astype(np.float32)
    ds = render_scene(make_abundances(a), lib, sensor_50(), scene_pixel_m=10.0, noise=False, quantize=False)
    assert ds["reflectance"].shape == (20, 15, 50)
    s = ds["abundances"].values.sum(axis=0)
    np.testing.assert_allclose(s, 1.0, atol=1e-5)
    assert "PSF" in ds.attrs["spatial_stage"]


def test_off_simplex_abundances_error_or_repair():
    a, lib = _uniform_scene(n=8)
    bad = a.copy(data=a.values * 1.3)
    with pytest.raises(DataError, match="not on the simplex.*repair"):
        render_scene(bad, lib, sensor_50())
    ds = render_scene(bad, lib, sensor_50(), repair=True, noise=False, quantize=False)
    np.testing.assert_allclose(ds["abundances"].values.sum(axis=0), 1.0, atol=1e-6)


def test_mismatched_endmember_counts():
    a, _ = _uniform_scene(n=8)
    lib3 = fine_library(np.full((3, 2101), 0.2))
    with pytest.raises(DataError, match="2 endmembers but the library has 3"):
        render_scene(a, lib3, sensor_50())


def test_library_not_covering_the_bands():
    a, _ = _uniform_scene(n=8)
    wl = np.arange(400.0, 1001.0, 1.0)
    lib = fine_library(np.full((2, wl.size), 0.2), wl)
    with pytest.raises(SensorError):
        render_scene(a, lib, sensor_50())
    with pytest.raises(SensorError, match="entirely outside"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bands with no support at all: refused even with "warn"
        render_scene(a, lib, sensor_50(), out_of_range="warn")
    wl = np.arange(400.0, 2406.0, 1.0)  # the last band (2400 ± 15 nm) is only truncated
    lib = fine_library(np.full((2, wl.size), 0.2), wl)
    with pytest.warns(UserWarning, match="truncated"):
        ds = render_scene(a, lib, sensor_50(), out_of_range="warn")
    assert np.isfinite(ds["reflectance"].values).all()


def test_bad_parameters():
    a, lib = _uniform_scene(n=8)
    with pytest.raises(ParameterError, match="level"):
        render_scene(a, lib, sensor_50(), level="L3")
    with pytest.raises(ParameterError, match="snr_scale"):
        render_scene(a, lib, sensor_50(), snr_scale=0)
    with pytest.raises(ParameterError, match="chunks"):
        render_scene(a, lib, sensor_50(), chunks=2)
    with pytest.raises(DataError, match="dims"):
        render_scene(a.rename(endmember="m"), lib, sensor_50())


def test_unknown_sensor_name():
    pytest.importorskip("simhsi.sensors.definition")
    a, lib = _uniform_scene(n=8)
    with pytest.raises(SensorError, match="prisma"):
        render_scene(a, lib, "no_such_sensor")


def test_names_match_library_order():
    wl = np.arange(400.0, 2501.0, 1.0)
    lib = make_library(np.stack([np.full(wl.size, 0.1), np.full(wl.size, 0.5)]), wl, names=["dark", "bright"])
    a = make_abundances(np.stack([np.ones((4, 4)), np.zeros((4, 4))]).astype(np.float32), ["bright", "dark"])
    ds = render_scene(a, lib, sensor_50(), noise=False, quantize=False)
    np.testing.assert_allclose(ds["reflectance"].values, 0.5, atol=1e-6)
    assert list(ds["endmember"].values) == ["bright", "dark"]


def test_prisma_snr_matches_its_noise_model():
    from simhsi.sensors import load_sensor

    sen = load_sensor("prisma")
    a, _ = _uniform_scene(n=128)
    wl = np.arange(350.0, 2551.0, 5.0)
    lib = fine_library(np.full((2, wl.size), 0.3), wl)
    ds = render_scene(a, lib, sen, level="L1", seed=11, chunks=128, keep_clean=True)
    y = ds["radiance"].values.reshape(-1, sen.wavelength.size).astype(np.float64)
    clean = ds["clean"].values[0, 0].astype(np.float64)  # W m-2 sr-1 um-1
    model_snr = sen.noise.snr(clean * 0.1)  # the model works in uW cm-2 sr-1 nm-1
    emp_snr = y.mean(axis=0) / y.std(axis=0, ddof=1)
    np.testing.assert_allclose(emp_snr, model_snr, rtol=0.03)
    assert ds.attrs["noise_model"].startswith("parametric")


def test_quantisation_follows_the_sensor_convention():
    from simhsi.render.forward import _Quant

    sen = sensor_50()
    rng = np.random.default_rng(0)
    v = rng.uniform(0.001, 0.9, (7, 50)).astype(np.float32)
    q = _Quant(sen, "L2")
    lq = sen.quantization["L2"]
    ref = lq.dequantize(lq.quantize(v.astype(np.float64)))
    np.testing.assert_array_equal(q.apply(v), ref)
    assert np.max(np.abs(q.apply(v) - v)) <= 0.5 / 65535 + 1e-7
    # dark pixels never get the fill DN 0; NaN stays NaN
    out = q.apply(np.array([[-0.01, 0.0, np.nan]], dtype=np.float32))
    assert out[0, 0] == out[0, 1] == np.float32(1 / 65535) and np.isnan(out[0, 2])
    q1 = _Quant(sen, "L1")
    np.testing.assert_array_equal(q1.apply(np.array([12.344, 12.346], np.float32)), np.float32([12.34, 12.35]))


def test_nodata_pixels_stay_nan_and_are_stored_as_float(tmp_path):
    from simhsi.render import write_scene

    a, lib = _uniform_scene(n=8)
    data = a.values.copy()
    data[:, 2, 3] = np.nan
    ds = render_scene(a.copy(data=data), lib, sensor_50(), seed=1)
    cube = ds["reflectance"].values
    assert np.isnan(cube[2, 3]).all() and np.isfinite(cube[0, 0]).all()
    assert ds.attrs["has_nodata"] == 1
    path = write_scene(ds, tmp_path / "s.nc")
    with xr.open_dataset(path) as f:
        assert f["reflectance"].encoding["dtype"] == np.dtype("float32")
        np.testing.assert_array_equal(f["reflectance"].values, cube)
    with pytest.raises(DataError, match="NaN"):
        render_scene(a.copy(data=data), lib, sensor_50(), scene_pixel_m=10.0)


def test_band_entirely_outside_library_is_a_clear_error():
    """With out_of_range='warn' a truncated band is fine, but a band with no library support at all
    would be written as garbage DN: it is refused with the band named."""
    wl = np.arange(400.0, 1001.0, 5.0)
    lib = make_library(np.full((2, wl.size), 0.3), wl, names=["a", "b"])
    a = make_abundances(np.full((2, 4, 4), 0.5, dtype=np.float32), ["a", "b"])
    with pytest.raises(SensorError, match="entirely outside.*VNIR|entirely outside.*SWIR"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        render_scene(a, lib, "prisma", out_of_range="warn")
