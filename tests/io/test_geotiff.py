"""GeoTIFF reader: files written with rioxarray / rasterio, wavelengths from band metadata, CRS kept."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from simhsi.errors import InputFileError
from simhsi.io import detect_format, open_cube
from simhsi.io.geotiff import read_geotiff


def _raster(n_bands=4, h=5, w=6, seed=0) -> xr.DataArray:
    import rioxarray  # noqa: F401

    rng = np.random.default_rng(seed)
    da = xr.DataArray(
        rng.random((n_bands, h, w)).astype(np.float32),
        dims=("band", "y", "x"),
        coords={"band": np.arange(1, n_bands + 1), "y": 5_000_000 - 10.0 * np.arange(h) - 5,
                "x": 400_000 + 10.0 * np.arange(w) + 5},
    )
    return da.rio.write_crs("EPSG:32632").rio.write_transform()


def test_rioxarray_file_with_band_descriptions(tmp_path):
    src = _raster()
    src.attrs["long_name"] = tuple(f"Band {i} ({450 + 10 * i} nm)" for i in range(4))
    path = tmp_path / "cube.tif"
    src.rio.to_raster(path)
    assert detect_format(path) == "geotiff"
    cube = read_geotiff(path, chunks=2)
    assert cube.dims == ("y", "x", "band") and cube.shape == (5, 6, 4)
    assert cube.chunks[2] == (4,)
    np.testing.assert_allclose(cube.wavelength.values, [450, 460, 470, 480])
    np.testing.assert_array_equal(cube.values, src.values.transpose(1, 2, 0))
    assert cube.rio.crs.to_epsg() == 32632
    assert cube.rio.transform() == src.rio.transform()
    np.testing.assert_allclose(cube.x.values, src.x.values)
    assert open_cube(path).attrs["wavelength_source"] == "band descriptions"


def test_band_tags_in_micrometres_and_nodata(tmp_path):
    import rasterio

    src = _raster(n_bands=3)
    data = src.values.copy()
    data[:, 0, 0] = -1.0
    path = tmp_path / "tags.tif"
    profile = {"driver": "GTiff", "height": 5, "width": 6, "count": 3, "dtype": "float32",
               "crs": "EPSG:32632", "transform": src.rio.transform(), "nodata": -1.0}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for b, (wl, fw) in enumerate([(0.5, 0.01), (0.6, 0.01), (0.7, 0.02)], start=1):
            dst.update_tags(b, wavelength=str(wl), wavelength_units="Micrometers", fwhm=str(fw))
        dst.update_tags(ns="ENVI", bbl="{1, 0, 1}")
    cube = read_geotiff(path)
    np.testing.assert_allclose(cube.wavelength.values, [500, 600, 700])
    np.testing.assert_allclose(cube.fwhm.values, [10, 10, 20])
    assert cube.bad_band.values.tolist() == [False, True, False]
    vals = cube.values
    assert np.isnan(vals[0, 0]).all() and np.isfinite(vals[1:]).all()
    assert cube.attrs["nodata"] == -1.0


def test_no_wavelengths_warns_nan_and_errors(tmp_path):
    path = tmp_path / "plain.tif"
    _raster(n_bands=2).rio.to_raster(path)
    with pytest.warns(UserWarning, match="no band wavelengths"):
        cube = read_geotiff(path)
    assert np.isnan(cube.wavelength.values).all() and cube.attrs["wavelengths_missing"] == 1
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputFileError, match="cut.tif"):
        read_geotiff(cut)
    with pytest.raises(InputFileError, match="no such file"):
        read_geotiff(tmp_path / "missing.tif")
