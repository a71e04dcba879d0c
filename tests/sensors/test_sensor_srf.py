"""SRF resampling: rows sum to one, flat stays flat, Gaussian vs analytic, out-of-range errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.integrate import trapezoid

from simhsi.errors import SensorError
from simhsi.sensors import load_sensor
from simhsi.sensors.solar import solar_irradiance, solar_table, toa_radiance
from simhsi.sensors.srf import FWHM_TO_SIGMA, gaussian_srf_matrix, tabulated_srf_matrix

GRID = np.arange(350.0, 2520.0, 1.0)


@pytest.mark.parametrize("name", ["prisma", "enmap", "sentinel2a", "desis"])
def test_rows_sum_to_one_and_flat_stays_flat(name):
    s = load_sensor(name)
    R = s.srf_matrix(GRID)
    assert R.shape == (s.n_bands, GRID.size)
    assert np.all(R >= 0)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, atol=1e-12)
    flat = np.full(GRID.size, 0.37)
    np.testing.assert_allclose(R @ flat, 0.37, rtol=1e-12)


def test_gaussian_weights_integrate_a_gaussian_band_like_the_analytic_convolution():
    # source spectrum: a Gaussian line; sensor band value = normalised convolution of two Gaussians
    wl = np.arange(400.0, 700.0, 0.05)
    mu, w = 550.0, 3.0
    spec = np.exp(-0.5 * ((wl - mu) / w) ** 2)
    centres = np.array([540.0, 548.0, 550.0, 556.0])
    fwhm = np.array([10.0, 8.0, 12.0, 6.0])
    R = gaussian_srf_matrix(centres, fwhm, wl)
    s = fwhm * FWHM_TO_SIGMA
    tot = np.sqrt(s**2 + w**2)
    analytic = w / tot * np.exp(-0.5 * ((centres - mu) / tot) ** 2)
    np.testing.assert_allclose(R @ spec, analytic, rtol=1e-4)  # piecewise-linear source: O(h^2)


def test_gaussian_is_exact_for_piecewise_linear_and_quadratic_moments():
    wl = np.array([400.0, 437.0, 451.0, 480.0, 530.0, 600.0])  # coarse, irregular, unsorted below
    R = gaussian_srf_matrix([470.0], [10.0], wl)
    lin = 2.0 * wl - 100.0
    assert (R @ lin)[0] == pytest.approx(2 * 470.0 - 100.0, rel=1e-9)  # linear: value at the centre
    # order of the source wavelengths does not matter
    perm = np.array([3, 0, 5, 1, 4, 2])
    Rp = gaussian_srf_matrix([470.0], [10.0], wl[perm])
    np.testing.assert_allclose(Rp @ lin[perm], R @ lin, rtol=1e-12)
    # second moment: E[(λ-c)^2] = σ^2, plus h^2/6 from the linear interpolation of the quadratic between
    # samples h apart (the integration is exact for the piecewise-linear source)
    h = 0.5
    fine = np.arange(300.0, 700.0, h)
    Rf = gaussian_srf_matrix([500.0], [20.0], fine)
    assert (Rf @ (fine - 500.0) ** 2)[0] == pytest.approx((20.0 * FWHM_TO_SIGMA) ** 2 + h**2 / 6, rel=1e-9)


def test_source_fwhm_is_removed_in_quadrature():
    # a source sampled at 2 nm with its own 6 nm Gaussian bands, resampled to a 10 nm band, equals the
    # 10 nm band applied to the underlying high-resolution spectrum
    hi = np.arange(400.0, 800.0, 0.05)
    spec = 1 + np.sin(hi / 7.0)
    src = np.arange(450.0, 750.0, 2.0)
    src_vals = gaussian_srf_matrix(src, np.full(src.size, 6.0), hi) @ spec
    target = gaussian_srf_matrix([600.0], [10.0], hi) @ spec
    naive = gaussian_srf_matrix([600.0], [10.0], src) @ src_vals
    deconv = gaussian_srf_matrix([600.0], [10.0], src, np.full(src.size, 6.0)) @ src_vals
    assert abs(deconv[0] - target[0]) < 0.2 * abs(naive[0] - target[0])


def test_out_of_range_error_warn_ignore():
    s = load_sensor("prisma")
    lib_wl = np.arange(400.0, 2451.0, 10.0)
    with pytest.raises(SensorError, match=r"reach outside the source wavelength range 400.0-2450.0 nm"):
        s.srf_matrix(lib_wl)
    with pytest.warns(UserWarning, match="reach outside"):
        R = s.srf_matrix(lib_wl, out_of_range="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R2 = s.srf_matrix(lib_wl, out_of_range="ignore")
    np.testing.assert_array_equal(R, R2)
    assert np.all(np.isfinite(R)) and np.allclose(R.sum(1), 1.0)
    with pytest.raises(SensorError, match="out_of_range must be"):
        s.srf_matrix(lib_wl, out_of_range="maybe")


def test_tabulated_srf_outside_support_and_exact_linear():
    s = load_sensor("sentinel2a")
    with pytest.raises(SensorError, match="B12"):
        s.srf_matrix(np.arange(400.0, 2000.0, 5.0))
    # a linear spectrum gives the SRF centroid (how center_nm was computed)
    R = s.srf_matrix(GRID)
    np.testing.assert_allclose(R @ GRID, s.wavelength, atol=0.06)


def test_tabulated_box_response_is_a_mean():
    g = np.arange(0.0, 101.0)
    r = ((g >= 40) & (g <= 60)).astype(float)[None, :]
    src = np.linspace(0.0, 100.0, 11)
    R = tabulated_srf_matrix(g, r, src, out_of_range="ignore")
    val = R @ src**2
    # ∫ λ² over the trapezoid-shaped (linear-interpolated) box 39..61 / its area, vs a fine reference
    fine = np.linspace(0, 100, 100001)
    rf = np.interp(fine, g, r[0])
    ref = trapezoid(rf * np.interp(fine, src, src**2), fine) / trapezoid(rf, fine)
    assert val[0] == pytest.approx(ref, rel=1e-3)


def test_solar_irradiance_band_average_and_toa_radiance():
    tw, te = solar_table()
    assert tw[0] == 350.0 and tw[-1] == pytest.approx(2499.9) and te.size == 21500
    # integral of E0 over 350-2500 nm: ~92 % of the 1361 W m-2 total solar irradiance
    total = trapezoid(te, tw / 1000.0)
    assert 1200 < total < 1300
    e = solar_irradiance([550.0, 1000.0, 2200.0], [10.0, 10.0, 10.0])
    assert 1750 < e[0] < 2000 and 650 < e[1] < 800 and 60 < e[2] < 100
    # PRISMA lref (0.3 * E0 cos30 / pi / 10) from the reference table is reproduced
    s = load_sensor("prisma")
    e0 = solar_irradiance(s.wavelength[:50], s.fwhm[:50])
    lref = toa_radiance(0.3, e0, 30.0) / 10.0
    np.testing.assert_allclose(lref, np.asarray(s.band_table["lref_uW_cm2_sr_nm"][:50], float), rtol=2e-3)
    np.testing.assert_allclose(s.solar_irradiance()[:50], e0, rtol=1e-9)


def test_solar_irradiance_for_every_sensor_and_range_error():
    from simhsi.errors import ParameterError
    from simhsi.sensors import list_sensors

    for name in list_sensors():
        s = load_sensor(name)
        e0 = s.solar_irradiance()
        assert e0.shape == (s.n_bands,) and np.all((e0 > 40) & (e0 < 2300)), name
    with pytest.raises(ParameterError, match="solar irradiance table covers"):
        solar_irradiance([2600.0], [10.0])


def test_solar_irradiance_default_width_and_nan_fwhm():
    s2 = load_sensor("sentinel2a")
    e_nan = solar_irradiance(s2.wavelength, s2.fwhm)  # NaN FWHM (tabulated SRF): default width
    np.testing.assert_allclose(e_nan, solar_irradiance(s2.wavelength), rtol=1e-12)
    # close to the real-SRF value where bands are narrow relative to the solar spectrum's structure
    np.testing.assert_allclose(e_nan[4:8], s2.solar_irradiance()[4:8], rtol=0.05)
    one = solar_irradiance([700.0])
    assert one.shape == (1,) and 1300 < one[0] < 1600
