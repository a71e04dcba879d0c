"""NetCDF writer/readers: round trips (numpy and dask), CF attrs, chunking, atomicity, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from simhsi.conventions import make_abundances
from simhsi.errors import DataError, FormatError, InputFileError, OutputError
from simhsi.io import detect_format, open_cube
from simhsi.io.netcdf import open_dataset, read_netcdf_cube, write_netcdf


def _leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".part"))


def test_cube_round_trip_with_attrs_bool_and_crs(tmp_path, mixture):
    import rioxarray  # noqa: F401  (registers .rio)

    cube, _, _ = mixture(h=6, w=7, n_bands=9)
    cube = cube.assign_coords(
        y=100.0 - 30.0 * np.arange(6), x=500.0 + 30.0 * np.arange(7), bad_band=("band", np.arange(9) % 4 == 0)
    )
    cube = cube.rio.write_crs("EPSG:32633").rio.write_transform()
    cube.attrs.update(flag=True, nothing=None, params={"a": 1}, names=["soil", "tree"], level="L2D")
    before = dict(cube.attrs)
    out = write_netcdf(cube, tmp_path / "c.nc")
    assert out == tmp_path / "c.nc"
    assert cube.attrs == before  # input not modified
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask  # usual permissions, not mkstemp's 0600
    back = read_netcdf_cube(out)
    assert back.dims == ("y", "x", "band")
    np.testing.assert_array_equal(back.values, cube.values)
    np.testing.assert_array_equal(back.wavelength.values, cube.wavelength.values)
    assert back.bad_band.dtype == bool
    np.testing.assert_array_equal(back.bad_band.values, cube.bad_band.values)
    assert back.rio.crs.to_epsg() == 32633
    assert back.rio.transform() == cube.rio.transform()
    assert back.attrs["flag"] == 1 and back.attrs["nothing"] == "none" and back.attrs["names"] == "soil, tree"
    assert back.attrs["Conventions"] == "CF-1.8"
    assert back.attrs["source_file"] == str(out)
    assert back.wavelength.attrs["units"] == "nm"
    assert open_cube(out).shape == cube.shape
    assert detect_format(out) == "netcdf"


def test_dask_written_chunk_by_chunk_with_matching_nc_chunks(tmp_path):
    import dask.array as da

    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(3), size=(20, 24)).transpose(2, 0, 1)
    ab = make_abundances(da.from_array(a, chunks=(3, 8, 12)), ["soil", "tree", "water"])
    mask = xr.DataArray(rng.random((20, 24)) > 0.5, dims=("y", "x"))
    ds = xr.Dataset({"abundances": ab, "mask": mask}, attrs={"method": "test", "seed": 0})
    out = write_netcdf(ds, tmp_path / "a.nc", progress=True)
    back = open_dataset(out, chunks=None)
    enc = back.abundances.encoding
    assert enc["zlib"] and enc["complevel"] == 4
    assert tuple(enc["chunksizes"]) == (3, 8, 12)
    np.testing.assert_allclose(back.abundances.values, a)
    assert list(back.endmember.values) == ["soil", "tree", "water"]
    assert back.mask.dtype == bool and (back.mask.values == mask.values).all()
    # re-chunk on write: band/endmember are kept whole
    out2 = write_netcdf(ds.compute(), tmp_path / "b.nc", chunks={"y": 5, "x": 6, "endmember": 1})
    assert tuple(open_dataset(out2, chunks=None).abundances.encoding["chunksizes"]) == (3, 5, 6)


def test_no_overwrite_and_nothing_left_on_failure(tmp_path, mixture):
    cube, _, _ = mixture(h=4, w=4, n_bands=5)
    path = tmp_path / "c.nc"
    write_netcdf(cube, path)
    size = path.stat().st_size
    with pytest.raises(OutputError, match="already exists"):
        write_netcdf(cube * 2, path)
    assert path.stat().st_size == size
    write_netcdf(cube * 2, path, overwrite=True)
    np.testing.assert_allclose(read_netcdf_cube(path).values, 2 * cube.values)
    # A variable netCDF cannot store: error, old file untouched, no temporary file left behind.
    bad = cube.to_dataset().assign(obj=("band", np.array([object()] * 5, dtype=object)))
    with pytest.raises(OutputError, match="obj"):
        write_netcdf(bad, path, overwrite=True)
    np.testing.assert_allclose(read_netcdf_cube(path).values, 2 * cube.values)
    # A failure while dask computes the chunks.
    import dask.array as da

    def boom(block):
        raise RuntimeError("disk full")

    lazy = cube.chunk({"y": 2}).copy(data=da.map_blocks(boom, cube.chunk({"y": 2}).data, dtype=float))
    with pytest.raises(OutputError, match="disk full"):
        write_netcdf(lazy, tmp_path / "new.nc")
    assert not (tmp_path / "new.nc").exists()
    assert _leftovers(tmp_path) == []
    with pytest.raises(OutputError, match="does not exist"):
        write_netcdf(cube, tmp_path / "nofolder" / "c.nc")


def test_read_errors(tmp_path, mixture):
    with pytest.raises(InputFileError, match="no such file"):
        open_dataset(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"hello world, not netcdf")
    with pytest.raises(FormatError, match="not a NetCDF"):
        open_dataset(junk)
    cube, _, _ = mixture(h=8, w=8, n_bands=6)
    good = write_netcdf(cube, tmp_path / "good.nc")
    cut = tmp_path / "cut.nc"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputFileError, match="truncated or corrupt"):
        open_dataset(cut)
    ab = write_netcdf(make_abundances(np.full((2, 3, 3), 0.5)), tmp_path / "ab.nc")
    with pytest.raises(FormatError, match=r"no cube variable.*abundances"):
        read_netcdf_cube(ab)
    strings = xr.DataArray(np.full((2, 2, 2), "a", dtype=object), dims=("y", "x", "band"), name="cube")
    s = write_netcdf(strings.assign_coords(wavelength=("band", [1.0, 2.0])), tmp_path / "s.nc")
    with pytest.raises(DataError, match="not numeric"):
        read_netcdf_cube(s)
    with pytest.raises(FormatError, match="no variable 'radiance'"):
        read_netcdf_cube(good, variable="radiance")


@settings(max_examples=12, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4)),
    dtype=st.sampled_from(["float32", "float64", "int16", "uint8", "bool"]),
    chunk=st.one_of(st.none(), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(shape, dtype, chunk, seed):
    """Any small cube of a NetCDF-storable dtype comes back identical, dask-chunked or not."""
    import tempfile
    from pathlib import Path

    rng = np.random.default_rng(seed)
    raw = rng.normal(size=shape) * 50
    data = raw > 0 if dtype == "bool" else raw.astype(dtype)
    if dtype.startswith("float"):
        data[rng.random(shape) < 0.2] = np.nan
    cube = xr.DataArray(data, dims=("y", "x", "band"), name="cube",
                        coords={"wavelength": ("band", np.linspace(400, 900, shape[2]))})
    with tempfile.TemporaryDirectory() as d:
        path = write_netcdf(cube if chunk is None else cube.chunk({"y": chunk}), Path(d) / "p.nc", chunks=chunk)
        back = open_dataset(path, chunks=None)
        assert back.cube.dtype == cube.dtype
        np.testing.assert_array_equal(back.cube.values, cube.values)
        back.close()
        assert os.listdir(d) == ["p.nc"]
