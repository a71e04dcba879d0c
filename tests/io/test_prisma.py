"""PRISMA HDF-EOS5 reader/writer: layout, scaling, masks, band options, georeferencing, laziness, errors."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from affine import Affine
from prisma_fixtures import COLS, EPSG, ORIGIN, ROWS, random_dn, valid_wavelengths, write_dn_file

from simhsi.conventions import make_cube
from simhsi.errors import FormatError, InputFileError, OutputError, ParameterError
from simhsi.io import detect_format, open_cube
from simhsi.io.prisma import (
    WATER_VAPOUR_WINDOWS_NM,
    _PrismaSource,
    default_band_lists,
    default_scale_attrs,
    is_prisma,
    read_prisma,
    write_prisma_he5,
)

LISTS = default_band_lists()
F32 = 2.5e-7  # values are evaluated in float32: about 2 ulp of the exact formula
DATA = "HDFEOS/SWATHS/PRS_L1_HCO/Data Fields"


def _slot(det: str, wl: float) -> int:
    return int(np.argmin(np.abs(LISTS[det]["cw"] - wl)))


# ------------------------------------------------------------------ layout, bands


def test_written_layout_is_the_product_layout(tmp_path):
    p, _ = write_dn_file(tmp_path, "L1")
    with h5py.File(p, "r") as f:
        assert f[f"{DATA}/VNIR_Cube"].shape == (ROWS, 66, COLS)
        assert f[f"{DATA}/SWIR_Cube"].shape == (ROWS, 173, COLS)
        assert f[f"{DATA}/VNIR_Cube"].dtype == np.uint16
        assert f[f"{DATA}/VNIR_PIXEL_SAT_ERR_MATRIX"].dtype == np.uint8
        assert "HDFEOS/SWATHS/PRS_L1_HCO/Geolocation Fields" in f
        cw = f.attrs["List_Cw_Vnir"]
        assert cw[0] == 0 and list(f.attrs["List_Cw_Vnir_Flags"][:4]) == [0, 0, 0, 1]
        assert np.all(np.diff(cw[3:]) < 0)  # descending in the file
        assert list(f.attrs["List_Cw_Swir_Flags"][-3:]) == [1, 0, 0]
        assert float(f.attrs["ScaleFactor_Vnir"]) == 100.0
    assert is_prisma(p) and detect_format(p) == "prisma"


@pytest.mark.parametrize(("overlap", "n"), [("keep", 234), ("drop_swir", 230), ("drop_vnir", 231)])
def test_valid_bands_ascending_and_overlap(tmp_path, overlap, n):
    p, _ = write_dn_file(tmp_path, "L1")
    c = read_prisma(p, overlap=overlap)
    assert c.dims == ("y", "x", "band") and c.shape == (ROWS, COLS, n)
    wl = c["wavelength"].values
    assert np.all(np.diff(wl) >= 0)
    vn, sw = wl[c["detector"].values == "VNIR"], wl[c["detector"].values == "SWIR"]
    if overlap == "keep":
        np.testing.assert_allclose(wl, valid_wavelengths(), rtol=0, atol=1e-4)
    if overlap == "drop_swir":
        assert vn.size == 63 and sw.size == 167 and sw.min() > vn.max()
    if overlap == "drop_vnir":
        assert vn.size == 60 and sw.size == 171 and vn.max() < sw.min()
    # FWHM comes from the file's List_Fwhm_* for the same slot
    for det in ("VNIR", "SWIR"):
        m = c["detector"].values == det
        np.testing.assert_allclose(c["fwhm"].values[m], LISTS[det]["fwhm"][c["slot"].values[m]], rtol=1e-6)
    assert c.attrs["units"] == "W m-2 sr-1 um-1" and c.attrs["processing_level"] == "L1"
    assert c.attrs["sensor"] == "PRISMA" and c.attrs["source_file"] == str(p)


def test_water_vapour_options(tmp_path):
    p, _ = write_dn_file(tmp_path, "L1")
    marked = read_prisma(p, overlap="keep", water_vapour="mark")
    wl, bad = marked["wavelength"].values, marked["bad_band"].values
    in_win = np.zeros(wl.size, bool)
    for lo, hi in WATER_VAPOUR_WINDOWS_NM:
        in_win |= (wl >= lo) & (wl <= hi)
    assert bad.dtype == bool and np.array_equal(bad, in_win) and 20 < bad.sum() < 40
    dropped = read_prisma(p, overlap="keep", water_vapour="drop")
    assert dropped.sizes["band"] == 234 - bad.sum() and not dropped["bad_band"].values.any()
    assert not np.isin(dropped["wavelength"].values, wl[bad]).any()
    kept = read_prisma(p, overlap="keep", water_vapour="keep")
    assert kept.sizes["band"] == 234 and not kept["bad_band"].values.any()


# ------------------------------------------------------------------ values


def test_l1_exact_values_fill_and_error_matrix(tmp_path):
    dn = random_dn(1)
    vs, ss = _slot("VNIR", 550.0), _slot("SWIR", 2200.0)
    dn["VNIR"][3, vs, 4] = 0  # fill
    err = {d: np.zeros_like(dn[d], dtype=np.uint8) for d in dn}
    err["VNIR"][5, vs, 6] = 2  # saturated -> masked
    err["VNIR"][5, vs, 7] = 3  # lower accuracy -> kept
    err["SWIR"][7, ss, 8] = 1  # defective -> masked
    err["SWIR"][7, ss, 9] = 4  # NaN/Inf -> masked
    scale = {"ScaleFactor_Vnir": 50.0, "Offset_Vnir": 0.25, "ScaleFactor_Swir": 200.0, "Offset_Swir": 0.0}
    p, _ = write_dn_file(tmp_path, "L1", dn=dn, error_matrix=err, scale=scale)
    c = read_prisma(p)
    bv = int(np.flatnonzero((c["detector"].values == "VNIR") & (c["slot"].values == vs))[0])
    bs = int(np.flatnonzero((c["detector"].values == "SWIR") & (c["slot"].values == ss))[0])
    v = c.isel(band=[bv, bs]).values
    pts = [(0, 0), (10, 17), (19, 29), (5, 7)]
    want = [dn["VNIR"][y, vs, x] / 50.0 - 0.25 for y, x in pts]  # DN / ScaleFactor - Offset
    np.testing.assert_allclose([v[y, x, 0] for y, x in pts], want, rtol=F32, atol=0)
    assert v[2, 3, 1] == np.float32(dn["SWIR"][2, ss, 3] / 200.0)  # one float32 division: correctly rounded
    assert np.isnan(v[3, 4, 0]) and np.isnan(v[5, 6, 0]) and np.isfinite(v[5, 7, 0])
    assert np.isnan(v[7, 8, 1]) and np.isnan(v[7, 9, 1]) and np.isfinite(v[7, 10, 1])
    assert np.isnan(v).sum() == 4
    raw = read_prisma(p, apply_error_matrix=False).isel(band=[bv, bs]).values
    assert np.isfinite(raw[5, 6, 0]) and np.isnan(raw[3, 4, 0])  # fill stays NaN
    only3 = read_prisma(p, mask_codes=(3,)).isel(band=[bv, bs]).values
    assert np.isnan(only3[5, 7, 0]) and np.isfinite(only3[5, 6, 0])


def test_l2d_exact_values_min_max_scaling(tmp_path):
    scale = {"L2ScaleVnirMin": 0.01, "L2ScaleVnirMax": 0.285101, "L2ScaleSwirMin": 0.0, "L2ScaleSwirMax": 0.958448}
    p, dn = write_dn_file(tmp_path, "L2D", seed=2, scale=scale)
    c = read_prisma(p, overlap="keep")
    assert c.attrs["units"] == "1" and c.name == "reflectance"
    vs, ss = _slot("VNIR", 800.0), _slot("SWIR", 1600.0)
    bv = int(np.flatnonzero((c["detector"].values == "VNIR") & (c["slot"].values == vs))[0])
    bs = int(np.flatnonzero((c["detector"].values == "SWIR") & (c["slot"].values == ss))[0])
    v = c.isel(band=[bv, bs]).values
    lo, hi = np.float32(0.01), np.float32(0.285101)  # stored as float32 attributes, like the products
    smax = np.float32(0.958448)
    for y, x in [(0, 0), (11, 13), (19, 29)]:  # Min + DN / 65535 * (Max - Min)
        want = float(lo) + dn["VNIR"][y, vs, x] / 65535.0 * (float(hi) - float(lo))
        assert v[y, x, 0] == pytest.approx(want, rel=F32, abs=0)
        assert v[y, x, 1] == pytest.approx(dn["SWIR"][y, ss, x] / 65535.0 * float(smax), rel=F32, abs=0)


def test_default_scale_attrs_are_the_real_ones():
    assert default_scale_attrs("L1") == {
        "ScaleFactor_Vnir": 100.0, "Offset_Vnir": 0.0, "ScaleFactor_Swir": 100.0, "Offset_Swir": 0.0
    }  # fmt: skip
    l2 = default_scale_attrs("L2D")
    assert l2["L2ScaleVnirMax"] == pytest.approx(0.285101) and l2["L2ScaleSwirMax"] == pytest.approx(0.958448)


@pytest.mark.parametrize("level", ["L1", "L2C"])
def test_cube_round_trip_to_quantisation(tmp_path, level):
    rng = np.random.default_rng(3)
    wl = valid_wavelengths()
    vals = rng.uniform(0.02, 0.7, (ROWS, COLS, wl.size)) * (300.0 if level == "L1" else 1.0)
    vals[2, 3, 10] = np.nan
    fw = np.full(wl.size, 11.0)
    cube = make_cube(vals.astype(np.float32), wl, fw, units="W m-2 sr-1 um-1" if level == "L1" else "1")
    p = tmp_path / "rt.he5"
    write_prisma_he5(cube, p, level=level, sun_zenith=35.5, sun_azimuth=140.0)
    back = read_prisma(p, overlap="keep")
    np.testing.assert_allclose(back["wavelength"].values, wl, atol=1e-4)
    np.testing.assert_allclose(back["fwhm"].values, fw)
    step = 0.01 if level == "L1" else 0.7 / 65535  # one DN
    got = back.values
    assert np.isnan(got[2, 3, 10]) and np.isnan(got).sum() == 1
    err = np.nanmax(np.abs(got - cube.values))
    assert err <= step / 2 * 1.0001 + 3e-5 and err > step / 4  # half a DN, plus float32 rounding
    assert back.attrs["sun_zenith_deg"] == pytest.approx(35.5)
    assert back.attrs["sun_azimuth_deg"] == pytest.approx(140.0)


def test_writer_fills_missing_slots_and_rejects_foreign_bands(tmp_path):
    p, _ = write_dn_file(tmp_path, "L1")
    c230 = read_prisma(p)  # drop_swir: 4 SWIR slots have no band in this cube
    q = tmp_path / "again.he5"
    write_prisma_he5(c230, q, level="L1")
    back = read_prisma(q, overlap="keep")
    assert back.sizes["band"] == 234
    miss = back.isel(band=~np.isin(back["wavelength"].values, c230["wavelength"].values))
    assert miss.sizes["band"] == 4 and np.isnan(miss.values).all()
    np.testing.assert_array_equal(read_prisma(q).values, c230.values)  # identical DN -> identical values
    foreign = make_cube(np.ones((2, 2, 3), np.float32), [500.3, 1000.0, 3000.0])
    with pytest.raises(ValueError, match="match no PRISMA slot"):
        write_prisma_he5(foreign, tmp_path / "bad.he5", level="L1")
    assert not (tmp_path / "bad.he5").exists()
    with pytest.raises(OutputError, match="already exists"):
        write_prisma_he5(c230, q, level="L1")


# ------------------------------------------------------------------ georeferencing


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("corner", ["center", "edge"])
def test_l2d_georeferencing(tmp_path, swap, corner):
    from pyproj import Transformer

    p, dn = write_dn_file(tmp_path, "L2D", seed=4, swap_axes=swap, corner=corner)
    c = read_prisma(p, overlap="keep")
    assert c.shape == ((COLS, ROWS) if swap else (ROWS, COLS)) + (234,)
    assert c.rio.crs.to_epsg() == EPSG
    t = c.rio.transform()
    assert (t.a, t.b, t.c, t.d, t.e, t.f) == pytest.approx((30.0, 0, ORIGIN[0], 0, -30.0, ORIGIN[1]))
    assert c.attrs["corner_convention"] == corner
    assert c["x"].values[0] == pytest.approx(ORIGIN[0] + 15) and c["y"].values[0] == pytest.approx(ORIGIN[1] - 15)
    # lat/lon coords agree with the projected pixel centres
    tr = Transformer.from_crs(f"EPSG:{EPSG}", "EPSG:4326", always_xy=True)
    xx, yy = np.meshgrid(c["x"].values, c["y"].values)
    lon, lat = tr.transform(xx, yy)
    np.testing.assert_allclose(c["lat"].values, lat, atol=1e-5)
    np.testing.assert_allclose(c["lon"].values, lon, atol=1e-5)
    assert np.all(np.diff(c["lat"].values[:, 0]) < 0)  # north-up
    # the data follow the grid: pixel (y=i, x=j) is file (row i, col j), or (row j, col i) when swapped
    vs = _slot("VNIR", 650.0)
    b = int(np.flatnonzero((c["detector"].values == "VNIR") & (c["slot"].values == vs))[0])
    img = c.isel(band=b).values
    f_img = dn["VNIR"][:, vs, :].astype(np.float64) / 65535.0 * float(np.float32(0.285101))
    np.testing.assert_allclose(img, f_img.T if swap else f_img, rtol=F32, atol=0)


def test_l2d_rows_stored_south_first_are_flipped_north_up(tmp_path):
    p, _ = write_dn_file(tmp_path, "L2D", seed=5)
    ref = read_prisma(p, overlap="keep").load()  # load now: the file is changed below
    swath = "HDFEOS/SWATHS/PRS_L2D_HCO"
    with h5py.File(p, "r+") as f:  # the same product with axis 0 running south -> north
        for name in ("Data Fields/VNIR_Cube", "Data Fields/SWIR_Cube", "Data Fields/VNIR_PIXEL_L2_ERR_MATRIX",
                     "Data Fields/SWIR_PIXEL_L2_ERR_MATRIX", "Geolocation Fields/Latitude",
                     "Geolocation Fields/Longitude"):
            ds = f[f"{swath}/{name}"]
            ds[...] = ds[()][::-1]
    flipped = read_prisma(p, overlap="keep")
    assert "flip_y=1" in flipped.attrs["prisma_orientation"]
    np.testing.assert_array_equal(flipped.values, ref.values)
    np.testing.assert_array_equal(flipped["lat"].values, ref["lat"].values)
    assert flipped.rio.transform() == ref.rio.transform()


def test_l2d_forced_corner_convention_shifts_half_a_pixel(tmp_path):
    p, _ = write_dn_file(tmp_path, "L2D", corner="edge")
    auto, forced = read_prisma(p), read_prisma(p, corner="center")
    assert forced.attrs["corner_convention"] == "center" and auto.attrs["corner_convention"] == "edge"
    # the file's UL corner is the outer corner; reading it as a pixel centre moves the grid half a pixel NW
    assert forced["x"].values[0] - auto["x"].values[0] == pytest.approx(-15.0)
    assert forced["y"].values[0] - auto["y"].values[0] == pytest.approx(15.0)


def test_l2d_writer_uses_cube_crs(tmp_path):
    p, _ = write_dn_file(tmp_path, "L2D")
    c = read_prisma(p, overlap="keep")
    q = tmp_path / "copy.he5"
    write_prisma_he5(c, q, level="L2D")
    d = read_prisma(q, overlap="keep")
    assert d.rio.crs == c.rio.crs and d.rio.transform() == pytest.approx(c.rio.transform())
    np.testing.assert_allclose(d.values, c.values, atol=float(np.nanmax(c.values)) / 65535)


# ------------------------------------------------------------------ laziness


def test_lazy_and_one_band_reads_one_band(tmp_path, monkeypatch):
    import dask.array as da

    p, _ = write_dn_file(tmp_path, "L1")
    reads = []
    orig = _PrismaSource._read_block

    def spy(ds, rows, slots, cols):
        reads.append((ds.name.rsplit("/", 1)[-1], np.unique(slots).tolist()))
        return orig(ds, rows, slots, cols)

    monkeypatch.setattr(_PrismaSource, "_read_block", staticmethod(spy))
    c = read_prisma(p, chunks={"y": 8})
    assert isinstance(c.data, da.Array) and reads == []  # opening reads no pixel
    assert c.data.chunks[0] == (8, 8, 4) and c.data.chunks[2] == (230,)
    assert read_prisma(p).data.chunks == ((ROWS,), (COLS,), (230,))  # small file: one chunk, all bands
    assert read_prisma(p, chunks="auto").data.chunks[2] == (230,)
    b = int(np.flatnonzero(c["wavelength"].values > 1000)[0])
    img = c.isel(band=b).compute()
    assert img.shape == (ROWS, COLS)
    slot = int(c["slot"].values[b])
    # 3 row chunks x (cube + error matrix), SWIR only, that one slot only
    expected = [("SWIR_Cube", [slot])] * 3 + [("SWIR_PIXEL_SAT_ERR_MATRIX", [slot])] * 3
    assert sorted(reads) == sorted(expected)


def test_pickled_cube_computes_and_open_cube_dispatches(tmp_path):
    p, _ = write_dn_file(tmp_path, "L2D")
    c = open_cube(p, overlap="keep")
    c2 = pickle.loads(pickle.dumps(c))
    np.testing.assert_array_equal(c2.isel(band=5).values, c.isel(band=5).values)
    sub = c.isel(y=slice(2, 9, 3), x=[7, 1], band=[200, 3, 100]).values
    np.testing.assert_array_equal(sub, c.values[2:9:3][:, [7, 1]][:, :, [200, 3, 100]])


# ------------------------------------------------------------------ bad inputs


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_prisma(tmp_path / "nope.he5")
    p, _ = write_dn_file(tmp_path, "L1")
    bad = tmp_path / "PRS_truncated.he5"
    bad.write_bytes(p.read_bytes()[:3000])
    assert is_prisma(bad)  # by name, so that reading reports the real problem
    with pytest.raises(InputFileError, match="PRS_truncated.he5"):
        open_cube(bad)


def test_missing_cube_dataset(tmp_path):
    p, _ = write_dn_file(tmp_path, "L1", omit={"SWIR_Cube"})
    with pytest.raises(FormatError, match="Data Fields/SWIR_Cube' is missing"):
        read_prisma(p)


def test_band_list_length_mismatch(tmp_path):
    dn = random_dn(0)
    dn["VNIR"] = dn["VNIR"][:, :60, :]
    p, _ = write_dn_file(tmp_path, "L1", dn=dn)
    with pytest.raises(FormatError, match="List_Cw_Vnir has 66 entries but .* has 60 bands"):
        read_prisma(p)


def test_non_numeric_cube(tmp_path):
    dn = random_dn(0)
    dn["SWIR"] = np.full(dn["SWIR"].shape, b"x", dtype="S1")
    p, _ = write_dn_file(tmp_path, "L1", dn=dn)
    with pytest.raises(FormatError, match="non-numeric dtype"):
        read_prisma(p)


def test_missing_scale_attribute_and_not_prisma(tmp_path):
    p, _ = write_dn_file(tmp_path, "L2C", omit={"L2ScaleSwirMax"})
    with pytest.raises(FormatError, match="L2ScaleSwirMax"):
        read_prisma(p)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(3)
    assert not is_prisma(other)
    with pytest.raises(FormatError, match="HDFEOS/SWATHS"):
        read_prisma(other)


def test_bad_parameters(tmp_path):
    p, _ = write_dn_file(tmp_path, "L1")
    with pytest.raises(ParameterError, match="'overlap'"):
        read_prisma(p, overlap="both")
    with pytest.raises(ParameterError, match="'chunks'"):
        read_prisma(p, chunks={"band_": 3})
    with pytest.raises(ParameterError, match="exactly one"):
        write_prisma_he5(None, tmp_path / "x.he5")
    with pytest.raises(ParameterError, match="'level'"):
        write_prisma_he5(None, tmp_path / "x.he5", dn=random_dn(), level="L3")


def test_transform_and_geometry_checks(tmp_path):
    with pytest.raises(ParameterError, match="north-up"):
        write_dn_file(tmp_path, "L2D", transform=Affine(30.0, 0.0, 0.0, 0.0, 30.0, 0.0))
    with pytest.raises(ParameterError, match="lat must have shape"):
        write_dn_file(tmp_path, "L1", lat=np.zeros((3, 3)), lon=np.zeros((3, 3)))
