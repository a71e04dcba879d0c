"""Cube metrics: identical cubes, known offsets, band matching, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from simhsi.conventions import make_cube
from simhsi.errors import DataError
from simhsi.metrics.cube import cube_metrics, match_bands


def _cube(seed=0, h=16, w=20, nb=12, wl=None):
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.1, 0.6, (h, w, nb)).astype(np.float32)
    wl = np.linspace(450, 2300, nb) if wl is None else wl
    return make_cube(data, wl)


def test_identical_cubes():
    c = _cube()
    m = cube_metrics(c, c.copy())
    assert m["sad_deg"] == 0.0
    assert m["rmse"] == 0.0
    assert m["psnr_db"] == float("inf")
    assert m["ssim"] == pytest.approx(1.0)
    assert m["ergas"] == 0.0
    assert m["n_bands_matched"] == 12


def test_known_differences():
    c = _cube()
    scaled = c.copy(data=c.values * 1.5)
    m = cube_metrics(c, scaled, ssim=False)
    assert m["sad_deg"] == pytest.approx(0.0, abs=1e-3)  # same direction: angle 0
    assert m["rmse"] == pytest.approx(float(np.sqrt(np.mean((0.5 * c.values.astype(np.float64)) ** 2))), rel=1e-6)
    r = c.values.reshape(-1, 12).astype(np.float64)
    psnr = np.mean(10 * np.log10(r.max(0) ** 2 / np.mean((0.5 * r) ** 2, axis=0)))
    assert m["psnr_db"] == pytest.approx(psnr, rel=1e-6)
    ergas = 100 * np.sqrt(np.mean((np.sqrt(np.mean((0.5 * r) ** 2, axis=0)) / r.mean(0)) ** 2))
    assert m["ergas"] == pytest.approx(ergas, rel=1e-6)
    assert np.isnan(m["ssim"])
    # orthogonal 2-band spectra: 90 degrees
    a = make_cube(np.tile(np.array([1.0, 0.0], np.float32), (8, 8, 1)), [500.0, 600.0])
    b = make_cube(np.tile(np.array([0.0, 1.0], np.float32), (8, 8, 1)), [500.0, 600.0])
    assert cube_metrics(a, b, ssim=False)["sad_deg"] == pytest.approx(90.0)


def test_noise_lowers_ssim_and_psnr():
    c = _cube(h=32, w=32)
    rng = np.random.default_rng(1)
    noisy = c.copy(data=c.values + rng.normal(0, 0.05, c.shape).astype(np.float32))
    m = cube_metrics(c, noisy)
    assert 0 < m["ssim"] < 0.99
    assert 10 < m["psnr_db"] < 30


def test_band_matching_by_wavelength():
    ref = _cube(nb=10, wl=np.arange(500.0, 600.0, 10.0))
    # candidate: bands shifted 0.4 nm, in reverse order, plus one extra band far away
    cw = np.concatenate([np.arange(500.0, 600.0, 10.0)[::-1] + 0.4, [2000.0]])
    data = np.concatenate([ref.values[..., ::-1], np.zeros((16, 20, 1), np.float32)], axis=2)
    cand = make_cube(data, cw)
    m = cube_metrics(ref, cand, ssim=False)
    assert m["n_bands_matched"] == 10
    assert m["rmse"] == 0.0
    assert m["max_wavelength_offset_nm"] == pytest.approx(0.4)
    i_ref, i_cand = match_bands(np.array([500.0, 500.5, 700.0]), np.array([500.2, 900.0]))
    assert i_ref.tolist() == [0] and i_cand.tolist() == [0]  # one-to-one: the nearest keeps it


def test_errors():
    ref = _cube()
    with pytest.raises(DataError, match="within 1 nm"):
        cube_metrics(ref, _cube(wl=np.linspace(450, 2300, 12) + 5.0))
    with pytest.raises(DataError, match="differ in size"):
        cube_metrics(ref, _cube(h=10))
    rad = ref.copy()
    rad.attrs["units"] = "W m-2 sr-1 um-1"
    with pytest.raises(DataError, match="different units"):
        cube_metrics(ref, rad)
    nan = ref.copy(data=np.full(ref.shape, np.nan, np.float32))
    with pytest.raises(DataError, match="no pixel"):
        cube_metrics(ref, nan)


def test_nan_pixels_are_ignored():
    ref = _cube()
    data = ref.values.copy()
    data[3, 4, :] = np.nan
    m = cube_metrics(ref, ref.copy(data=data))
    assert m["n_pixels"] == 16 * 20 - 1
    assert m["rmse"] == 0.0


def test_ssim_needs_11_pixels():
    small = _cube(h=10, w=30)
    with pytest.raises(DataError, match="at least 11x11"):
        cube_metrics(small, small)
    assert cube_metrics(small, small, ssim=False)["rmse"] == 0.0
