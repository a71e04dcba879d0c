"""Noise formulas, quantisation round trips, PSF + resampling."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from simhsi.errors import ParameterError
from simhsi.sensors import load_sensor
from simhsi.sensors.noise import NoiseModel
from simhsi.sensors.psf import apply_psf_and_resample, area_weights, psf_kernel
from simhsi.sensors.units import convert_radiance, radiance_factor


def test_parametric_sigma_matches_isofit_formula():
    s = load_sensor("emit")
    rng = np.random.default_rng(0)
    L = rng.uniform(0.0, 20.0, size=(4, 3, s.n_bands))
    a, b, c = (np.asarray(s.band_table[k], float) for k in ("nedl_a", "nedl_b", "nedl_c"))
    want = np.abs(a * np.sqrt(np.maximum(b + L, 1e-5)) + c)
    np.testing.assert_allclose(s.noise.sigma(L), want, rtol=1e-12)
    # bands on another axis, dask input, pixel averaging
    Lb = np.moveaxis(L, -1, 0)
    np.testing.assert_allclose(s.noise.sigma(Lb, band_axis=0), np.moveaxis(want, -1, 0), rtol=1e-12)
    np.testing.assert_allclose(s.noise.sigma(da.from_array(L, chunks=(2, 3, 100))).compute(), want, rtol=1e-12)
    np.testing.assert_allclose(s.noise.sigma(L, n_average=4), want / 2, rtol=1e-12)
    with pytest.raises(ParameterError, match="bands"):
        s.noise.sigma(L[..., :10])


def test_other_noise_kinds_and_scaling():
    m = NoiseModel("snr_reference", {"snr": [100.0, 50.0], "lref": [10.0, 5.0], "read_fraction": [0.0, 0.25]})
    L = np.array([[10.0, 5.0], [2.5, 1.25]])
    s = m.sigma(L)
    np.testing.assert_allclose(s[0], [0.1, 0.1])  # SNR_ref at L_ref
    np.testing.assert_allclose(s[1, 0], 0.1 * np.sqrt(0.25))  # shot-limited
    np.testing.assert_allclose(s[1, 1], 0.1 * np.sqrt(0.25 + 0.75 * 0.25))
    c = NoiseModel("constant_snr", {"snr": [200.0]})
    np.testing.assert_allclose(c.snr(np.array([[3.0], [7.0]])), 200.0)
    e = load_sensor("emit").noise
    L = np.full(e.n_bands, 8.0)
    np.testing.assert_allclose(e.scaled(2.0).snr(L), 2 * e.snr(L), rtol=1e-12)
    with pytest.raises(ParameterError):
        e.scaled(0)
    with pytest.raises(ParameterError):
        NoiseModel("gaussian", {"snr": [1.0]})


def test_snr_polynomial_uses_its_units_and_gain_switch():
    m = NoiseModel("snr_polynomial", {"p0": [100.0], "p1": [1.0], "p2": [0.0], "lowgain_p0": [50.0],
                                      "lowgain_p1": [0.5], "lowgain_p2": [0.0], "gain_threshold": [100.0]},
                   poly_units="W m-2 sr-1 um-1")
    # 5 uW cm-2 sr-1 nm-1 = 50 W m-2 sr-1 um-1 < threshold: high gain SNR = 150
    assert m.snr(np.array([5.0]))[0] == pytest.approx(150.0)
    # 20 uW = 200 W m-2 sr-1 um-1 >= threshold: low gain SNR = 50 + 100
    assert m.snr(np.array([20.0]))[0] == pytest.approx(150.0)
    assert m.snr(np.array([12.0]))[0] == pytest.approx(50 + 60.0)


def test_units():
    assert radiance_factor("uW cm-2 sr-1 nm-1", "W m-2 sr-1 um-1") == 10.0
    assert radiance_factor("W m-2 sr-1 um-1", "µW cm-2 sr-1 nm-1") == pytest.approx(0.1)
    np.testing.assert_allclose(convert_radiance(np.array([2.0]), "mW cm-2 sr-1 um-1", "W m-2 sr-1 um-1"), [20.0])
    with pytest.raises(ParameterError, match="unknown radiance unit"):
        radiance_factor("furlongs", "W m-2 sr-1 um-1")


@pytest.mark.parametrize(("name", "level"), [("prisma", "L1"), ("prisma", "L2"), ("sentinel2a", "L2")])
def test_quantize_round_trip_within_half_a_step(name, level):
    q = load_sensor(name).quantization[level]
    rng = np.random.default_rng(1)
    hi = 60.0 if level == "L1" else 0.9
    v = rng.uniform(0.0, hi, size=(5, 7, 3))
    dn = q.quantize(v)
    assert dn.dtype == np.dtype(q.dtype)
    back = q.dequantize(dn)
    assert np.max(np.abs(back - v)) <= 0.5 * q.step * (1 + 1e-6) + 1e-6
    # dask gives the same DNs
    np.testing.assert_array_equal(q.quantize(da.from_array(v, chunks=2)).compute(), dn)


def test_quantize_clips_and_fills():
    q = load_sensor("prisma").quantization["L2"]
    dn = q.quantize(np.array([-0.2, 0.5, 1.7, np.nan]))
    assert dn.tolist() == [0, 32768, 65535, 0]
    s2 = load_sensor("sentinel2a").quantization["L2"]
    assert s2.quantize(np.array([0.0, 0.25])).tolist() == [1000, 3500]
    f = load_sensor("emit").quantization["L1"]
    assert f.is_float and f.quantize(np.array([1.25])).dtype == np.float32


def test_psf_kernel_sums_to_one_and_has_sigma():
    k = psf_kernel(5.0, 30.0, 0.5)  # sigma = 3 scene px
    assert k.sum() == pytest.approx(1.0)
    x = np.arange(k.shape[0]) - k.shape[0] // 2
    var = (k.sum(0) * x**2).sum()
    assert np.sqrt(var) == pytest.approx(3.0, rel=0.01)
    assert load_sensor("prisma").psf_kernel(10.0).shape == psf_kernel(10.0, 30.0, 0.5).shape


def test_resample_keeps_simplex_block_mean_and_dask_matches_numpy():
    rng = np.random.default_rng(3)
    a = rng.dirichlet(np.ones(3), size=(36, 30)).transpose(2, 0, 1)
    out = apply_psf_and_resample(a, 5.0, 15.0, 0.0)  # no blur: exact 3x3 block mean
    assert out.shape == (3, 12, 10)
    np.testing.assert_allclose(out[:, 0, 0], a[:, :3, :3].mean(axis=(1, 2)))
    for f in (15.0, 12.5):  # integer and non-integer ratio
        ref = apply_psf_and_resample(a, 5.0, f, 0.5)
        np.testing.assert_allclose(ref.sum(0), 1.0, atol=1e-9)
        lazy = apply_psf_and_resample(da.from_array(a, chunks=(3, 12, 10)), 5.0, f, 0.5)
        np.testing.assert_allclose(lazy.compute(), ref, atol=1e-9)
    assert apply_psf_and_resample(a, 5.0, 12.5, 0.5).shape == (3, 14, 12)
    with pytest.raises(ParameterError, match="smaller than one sensor pixel"):
        apply_psf_and_resample(a, 5.0, 500.0, 0.5)


def test_area_weights_rows_sum_to_one():
    w = area_weights(10, 2.5)
    assert w.shape == (4, 10)
    np.testing.assert_allclose(w.sum(1), 1.0)
    np.testing.assert_allclose(w[0, :3], [0.4, 0.4, 0.2])


def test_with_min_max_per_product_range():
    q = load_sensor("prisma").quantization["L2"].with_min_max(0.0, 0.285101)
    assert q.scale == pytest.approx(65535 / 0.285101) and q.offset == 0.0
    v = np.array([0.0, 0.1, 0.285101])
    np.testing.assert_allclose(q.dequantize(q.quantize(v)), v, atol=0.5 / q.scale + 1e-7)
    with pytest.raises(ParameterError):
        q.with_min_max(1.0, 0.5)
