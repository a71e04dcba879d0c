"""ENVI reader/writer: round trip, header units, bbl, ignore value, scale factor, map info, errors."""

from __future__ import annotations

import numpy as np
import pytest

from simhsi.errors import FormatError, InputFileError, OutputError
from simhsi.io.envi import read_envi, write_envi


def _raw_envi(tmp_path, data: np.ndarray, extra: str, name: str = "raw") -> tuple:
    """Write a hand-made BSQ ENVI file (as other software would), return (hdr, img) paths."""
    rows, cols, nb = data.shape
    img = tmp_path / f"{name}.dat"
    np.ascontiguousarray(data.transpose(2, 0, 1)).astype(">i2").tofile(img)
    hdr = tmp_path / f"{name}.hdr"
    hdr.write_text(
        "ENVI\n"
        f"samples = {cols}\nlines = {rows}\nbands = {nb}\nheader offset = 0\nfile type = ENVI Standard\n"
        "data type = 2\ninterleave = bsq\nbyte order = 1\n" + extra
    )
    return hdr, img


def test_round_trip_with_crs_and_bad_bands(tmp_path, mixture):
    import rioxarray  # noqa: F401

    cube, _, _ = mixture(h=6, w=7, n_bands=9)
    cube = cube.assign_coords(
        y=4_000_000 - 15 - 30 * np.arange(6.0),
        x=500_000 + 15 + 30 * np.arange(7.0),
        bad_band=("band", np.arange(9) % 3 == 0),
    ).astype(np.float32)
    cube = cube.rio.write_crs("EPSG:32633").rio.write_transform()
    data, hdr = write_envi(cube.chunk({"y": 2, "x": 3}), tmp_path / "scene.img")
    assert (data.name, hdr.name) == ("scene.img", "scene.hdr")
    assert "wavelength units = Nanometers" in hdr.read_text()
    assert "UTM" in hdr.read_text()
    for p in (hdr, data):
        back = read_envi(p, chunks=4)
        assert back.chunks[2] == (9,)  # all bands in one chunk
        np.testing.assert_array_equal(back.values, cube.values)
        np.testing.assert_allclose(back.wavelength.values, cube.wavelength.values)
        np.testing.assert_allclose(back.fwhm.values, cube.fwhm.values)
        np.testing.assert_array_equal(back.bad_band.values, cube.bad_band.values)
        np.testing.assert_allclose(back.x.values, cube.x.values)
        np.testing.assert_allclose(back.y.values, cube.y.values)
        assert back.rio.crs.to_epsg() == 32633
    with pytest.raises(OutputError, match="already exists"):
        write_envi(cube, tmp_path / "scene.hdr")
    write_envi(2 * cube, tmp_path / "scene.hdr", overwrite=True)
    np.testing.assert_allclose(read_envi(hdr).values, 2 * cube.values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.hdr", "scene.img"]


def test_foreign_header_micrometres_scale_ignore_map_info(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 10000, size=(4, 5, 3)).astype(np.int16)
    raw[0, 0, :] = -9999
    hdr, img = _raw_envi(
        tmp_path,
        raw,
        "wavelength units = Micrometers\nwavelength = {0.45, 0.55, 0.65}\nfwhm = {0.01, 0.01, 0.012}\n"
        "bbl = {1, 0, 1}\ndata ignore value = -9999\nreflectance scale factor = 10000\n"
        "map info = {UTM, 1.000, 1.000, 300000.0, 5000000.0, 2.0, 2.0, 32, North, WGS-84, units=Meters}\n",
    )
    cube = read_envi(img)
    np.testing.assert_allclose(cube.wavelength.values, [450, 550, 650])
    np.testing.assert_allclose(cube.fwhm.values, [10, 10, 12])
    assert cube.bad_band.values.tolist() == [False, True, False]
    vals = cube.values
    assert np.isnan(vals[0, 0]).all()
    np.testing.assert_allclose(vals[1:, 1:], raw[1:, 1:] / 10000.0, rtol=1e-6)
    assert cube.attrs["units"] == "1"
    np.testing.assert_allclose(cube.x.values[:2], [300001.0, 300003.0])
    np.testing.assert_allclose(cube.y.values[:2], [4999999.0, 4999997.0])
    assert cube.rio.crs.to_epsg() == 32632


def test_unitless_micrometres_and_missing_wavelengths(tmp_path):
    raw = np.ones((2, 2, 2), np.int16)
    hdr, _ = _raw_envi(tmp_path, raw, "wavelength = {1.1, 2.2}\n", name="a")
    np.testing.assert_allclose(read_envi(hdr).wavelength.values, [1100, 2200])
    hdr, _ = _raw_envi(tmp_path, raw, "", name="b")
    with pytest.warns(UserWarning, match="no wavelengths"):
        assert np.isnan(read_envi(hdr).wavelength.values).all()
    hdr, _ = _raw_envi(tmp_path, raw, "wavelength = {1, 2, 3}\n", name="c")
    with pytest.raises(FormatError, match="2 bands but 3 values in 'wavelength'"):
        read_envi(hdr)


def test_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_envi(tmp_path / "none.hdr")
    hdr, img = _raw_envi(tmp_path, np.ones((4, 4, 3), np.int16), "wavelength = {1, 2, 3}\n")
    img.write_bytes(img.read_bytes()[:10])
    with pytest.raises(InputFileError, match="truncated"):
        read_envi(hdr)
    img.unlink()
    with pytest.raises(InputFileError, match="data file not found"):
        read_envi(hdr)
    bad = tmp_path / "bad.hdr"
    bad.write_text("not an envi header\n")
    with pytest.raises(FormatError, match="invalid ENVI header"):
        read_envi(bad)
