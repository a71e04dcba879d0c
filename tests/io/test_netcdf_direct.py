"""Parallel direct-chunk NetCDF writes (big dask variables): same file content as xarray's own writer."""

from __future__ import annotations

import os

import dask.array as da
import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

import simhsi.io.netcdf as nc
from simhsi.io.netcdf import write_netcdf


def _scene(h: int = 37, w: int = 29, nb: int = 6, chunk: int = 16) -> xr.Dataset:
    rng = np.random.default_rng(0)
    dn = rng.integers(0, 60000, size=(h, w, nb), dtype=np.uint16)
    fl = rng.random((h, w, nb), dtype=np.float32)
    fl[3, 4, :] = np.nan  # nodata pixel: NaN fill value kept
    ab = rng.dirichlet(np.ones(3), size=(h, w)).transpose(2, 0, 1).astype(np.float32)
    ds = xr.Dataset(
        {
            "reflectance": (("y", "x", "band"), da.from_array(dn, chunks=(chunk, chunk, nb)),
                            {"scale_factor": 1e-4, "add_offset": 0.0, "units": "1"}),
            "clean": (("y", "x", "band"), da.from_array(fl, chunks=(chunk, chunk, nb)), {"units": "1"}),
            "abundances": (("endmember", "y", "x"), da.from_array(ab, chunks=(3, chunk, chunk))),
        },
        coords={"wavelength": ("band", 400.0 + 10 * np.arange(nb), {"units": "nm"}),
                "fwhm": ("band", np.full(nb, 9.0)), "endmember": ["a", "b", "c"]},
        attrs={"title": "t"},
    )
    return ds


@pytest.mark.parametrize("compression", ["zlib", "none"])
def test_direct_write_matches_xarray_writer(tmp_path, monkeypatch, compression):
    ds = _scene()
    monkeypatch.setattr(nc, "DIRECT_MIN_BYTES", 1)
    direct = write_netcdf(ds, tmp_path / "direct.nc", compression=compression, complevel=1)
    assert nc._direct_candidates(nc._prepare(ds.copy(), 1, compression)[0],
                                 nc._prepare(ds.copy(), 1, compression)[1], compression) == [
        "reflectance", "clean", "abundances"]
    monkeypatch.setattr(nc, "DIRECT_MIN_BYTES", 10**15)
    plain = write_netcdf(ds, tmp_path / "plain.nc", compression=compression, complevel=1)
    with xr.open_dataset(direct, decode_coords="all") as a, xr.open_dataset(plain, decode_coords="all") as b:
        assert a.identical(b)
        for v in ("reflectance", "clean", "abundances"):
            assert a[v].encoding["chunksizes"] == b[v].encoding["chunksizes"]
            assert a[v].encoding.get("zlib", False) == b[v].encoding.get("zlib", False) == (compression == "zlib")
            assert a[v].encoding.get("shuffle", False) == b[v].encoding.get("shuffle", False)
        np.testing.assert_array_equal(a["reflectance"].values, ds["reflectance"].values * 1e-4)
    with xr.open_dataset(direct, decode_cf=False) as raw:  # stored as uint16 DN, NaN fill for floats
        assert raw["reflectance"].dtype == np.uint16
        assert np.isnan(raw["clean"].attrs["_FillValue"])
        assert raw["reflectance"].attrs["coordinates"] == "fwhm wavelength"
        assert "coordinates" not in raw.attrs
    with netCDF4.Dataset(direct) as f:  # the C library reads the hand-written chunks too
        np.testing.assert_array_equal(f["clean"][:].filled(np.nan), ds["clean"].values)
    with h5py.File(direct) as f:
        filters = f["reflectance"]._filters
        assert ("gzip" in filters and "shuffle" in filters) == (compression == "zlib")
    assert sorted(os.listdir(tmp_path)) == ["direct.nc", "plain.nc"]


def test_direct_write_rechunks_irregular_dask_chunks(tmp_path, monkeypatch):
    clean = _scene(h=40, w=20, chunk=16)["clean"].chunk({"y": (10, 20, 10), "x": 20})
    monkeypatch.setattr(nc, "DIRECT_MIN_BYTES", 1)
    out = write_netcdf(clean, tmp_path / "r.nc")
    with xr.open_dataset(out) as f:
        assert f["clean"].encoding["chunksizes"] == (10, 20, 6)
        np.testing.assert_array_equal(f["clean"].values, clean.values)


def test_direct_write_failure_leaves_nothing(tmp_path, monkeypatch):
    ds = _scene()
    monkeypatch.setattr(nc, "DIRECT_MIN_BYTES", 1)

    def fail_last_row(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise OSError("disk full")
        return block

    ds["clean"] = ds["clean"].copy(data=ds["clean"].data.map_blocks(fail_last_row,
                                                                    meta=np.array((), dtype=np.float32)))
    with pytest.raises(OSError, match="disk full"):
        write_netcdf(ds, tmp_path / "x.nc")
    assert os.listdir(tmp_path) == []


def test_direct_write_level_zero_is_uncompressed(tmp_path, monkeypatch):
    clean = _scene()["clean"]
    monkeypatch.setattr(nc, "DIRECT_MIN_BYTES", 1)
    out = write_netcdf(clean, tmp_path / "z0.nc", compression="zlib", complevel=0)
    with h5py.File(out) as f:
        assert "gzip" not in f["clean"]._filters and "shuffle" not in f["clean"]._filters
    with xr.open_dataset(out) as f:
        np.testing.assert_array_equal(f["clean"].values, clean.values)
