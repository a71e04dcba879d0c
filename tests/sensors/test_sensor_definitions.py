"""Sensor definitions: every shipped sensor loads; bad YAML lists all bad fields; user YAML paths work."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from simhsi.errors import SensorError
from simhsi.sensors import list_sensors, load_sensor

SHIPPED = ["aviris_c", "aviris_ng", "desis", "emit", "enmap", "prisma", "sentinel2a", "sentinel2b"]


def test_list_sensors_ships_all_eight():
    assert list_sensors() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_sensor_loads_consistently(name):
    s = load_sensor(name)
    n = s.n_bands
    assert n >= 13
    assert np.all(np.diff(s.wavelength) >= 0), "centres must be ascending"
    assert s.fwhm.shape == (n,) and s.bad_band.shape == (n,) and s.bad_band.dtype == bool
    assert len(s.band_names) == len(set(s.band_names)) == n
    assert len(s.bad_band_reason) == n
    assert all(r for r, b in zip(s.bad_band_reason, s.bad_band, strict=True) if b), "bad bands need a reason"
    assert s.gsd_m > 0 and s.swath_km > 0 and s.bit_depth > 0 and s.psf_sigma_gsd >= 0
    assert s.noise.n_bands == n
    assert {"L1", "L2"} <= set(s.quantization.levels)
    assert {"bands", "gsd_m"} <= set(s.provenance)
    if s.has_tabulated_srf:
        assert np.all(np.isnan(s.fwhm)) and s.srf_values.shape[0] == n
    else:
        assert np.all(s.fwhm > 0)
    # the noise model reproduces the SNR recorded next to the coefficients at the reference radiance
    lref = np.asarray(s.band_table["lref_uW_cm2_sr_nm"], dtype=float)
    snr_ref = np.asarray(s.band_table["snr_ref"], dtype=float)
    np.testing.assert_allclose(s.noise.snr(lref), snr_ref, rtol=0.01)


def test_prisma_facts():
    s = load_sensor("prisma")
    assert s.n_bands == 234
    assert s.wavelength[0] == pytest.approx(402.5) and s.wavelength[-1] == pytest.approx(2496.9)
    assert int(s.bad_band.sum()) == 35
    overlap = s.wavelength[[("overlap" in r) for r in s.bad_band_reason]]
    np.testing.assert_allclose(sorted(overlap), [943.0, 951.0, 959.5, 969.4])
    assert s.noise.kind == "parametric" and s.noise.placeholder
    assert s.quantization["L1"].scale == 100 and s.quantization["L1"].dtype == "uint16"
    assert s.quantization["l2"].scale == pytest.approx(65535.0)
    # native layout kept for the PRISMA-HE5 writer
    det = s.band_table["detector"]
    assert (det == "VNIR").sum() == 63 and (det == "SWIR").sum() == 171


def test_enmap_alternative_l1b_snr_polynomial_matches_enpt_table():
    s = load_sensor("enmap")
    m = s.noise_alternatives["l1b_snr_polynomial"]
    lref = np.asarray(s.band_table["lref_uW_cm2_sr_nm"], dtype=float)
    want = np.asarray(s.band_table["snr_l1b_at_lref"], dtype=float)
    got = m.snr(lref)
    fit = want > 1  # some SWIR absorption-band fits give SNR < 0 at this (no-atmosphere) L_ref: floored at 1
    assert (~fit).sum() < 20
    np.testing.assert_allclose(got[fit], want[fit], rtol=0.01)
    assert np.all(got[~fit] == 1.0)


def test_unknown_sensor_lists_known_names():
    with pytest.raises(SensorError, match="shipped sensors are aviris_c, .*prisma"):
        load_sensor("landsat9")


def _write(tmp_path, doc, table="band,name,center_nm,fwhm_nm,snr\n1,a,500,10,100\n2,b,600,10,120\n"):
    (tmp_path / "bands.csv").write_text(table)
    p = tmp_path / "mysensor.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


GOOD = {
    "name": "toy",
    "description": "two-band toy sensor",
    "band_table": "bands.csv",
    "gsd_m": 20,
    "swath_km": 10,
    "bit_depth": 12,
    "psf_sigma_gsd": 0.5,
    "noise": {"kind": "constant_snr", "params": {"snr": "snr"}},
    "quantization": {"L2": {"min": 0.0, "max": 1.0, "bits": 12}},
}


def test_user_yaml_path_works(tmp_path):
    s = load_sensor(_write(tmp_path, GOOD))
    assert s.name == "toy" and s.n_bands == 2
    np.testing.assert_allclose(s.noise.sigma(np.array([10.0, 12.0])), [0.1, 0.1])
    assert s.quantization["L2"].scale == pytest.approx(4095.0)
    assert s.quantization["L2"].dn_range == (0, 4095)


def test_bad_yaml_lists_all_bad_fields(tmp_path):
    doc = dict(GOOD)
    doc.update(gsd_m=-5, bit_depth="twelve", noise={"kind": "magic"}, swath_km=None)
    doc["quantization"] = {"L1": {"scale": 0}}
    doc["colour"] = "blue"
    with pytest.raises(SensorError) as ei:
        load_sensor(_write(tmp_path, doc))
    msg = str(ei.value)
    assert str(tmp_path / "mysensor.yaml") in msg
    for field in ("gsd_m", "swath_km", "bit_depth", "noise.kind", "quantization.L1.scale", "colour"):
        assert field in msg, field
    assert "6 problem(s)" in msg


def test_bad_band_table_is_named(tmp_path):
    p = _write(tmp_path, GOOD, table="band,name,center_nm,fwhm_nm,snr\n1,a,500,,100\n2,a,abc,10,-1\n")
    with pytest.raises(SensorError) as ei:
        load_sensor(p)
    msg = str(ei.value)
    for field in ("band_table.center_nm", "band_table.fwhm_nm", "band_table.name", "noise.params.snr"):
        assert field in msg, field


def test_missing_yaml_file(tmp_path):
    with pytest.raises(SensorError, match="not found"):
        load_sensor(tmp_path / "nope.yaml")


def test_select_bands_drops_bad_bands():
    s = load_sensor("emit")
    g = s.select_bands(~s.bad_band)
    assert g.n_bands == 244 and not g.bad_band.any()
    assert g.noise.n_bands == 244
    assert g.band_table["nedl_a"].shape == (244,)


def test_noise_units_in_yaml_are_converted(tmp_path):
    # the same parametric noise written in W m-2 sr-1 um-1 (x10 the uW cm-2 sr-1 nm-1 values)
    table = "band,name,center_nm,fwhm_nm,a,b,c\n1,a,500,10,0.02,3.0,0.01\n"
    doc = dict(GOOD, noise={"kind": "parametric", "params": {"a": "a", "b": "b", "c": "c"}})
    s_uw = load_sensor(_write(tmp_path, doc, table))
    a, b, c = 0.02 * np.sqrt(10.0), 30.0, 0.1  # sigma_W = 10 sigma_uW(L_W / 10)
    table_w = f"band,name,center_nm,fwhm_nm,a,b,c\n1,a,500,10,{a},{b},{c}\n"
    doc_w = dict(doc, noise=dict(doc["noise"], units="W m-2 sr-1 um-1"))
    s_w = load_sensor(_write(tmp_path, doc_w, table_w))
    L = np.array([[0.5], [7.0]])
    np.testing.assert_allclose(s_w.noise.sigma(L), s_uw.noise.sigma(L), rtol=1e-12)


def test_inline_bands_and_tabulated_srf_user_yaml(tmp_path):
    (tmp_path / "srf.csv").write_text(
        "wavelength_nm,blue,red\n400,0,0\n450,1,0\n500,0,0\n600,0,0\n650,0,1\n700,0,0\n"
    )
    doc = dict(GOOD)
    del doc["band_table"]
    doc.update(bands={"name": ["red", "blue"], "center_nm": [650.0, 450.0]}, srf_table="srf.csv",
               noise={"kind": "constant_snr", "params": {"snr": 150}})
    p = tmp_path / "inline.yaml"
    p.write_text(yaml.safe_dump(doc))
    s = load_sensor(str(p))
    assert s.band_names == ["blue", "red"] and np.all(np.isnan(s.fwhm))
    assert "toy" in repr(s)
    R = s.srf_matrix(np.arange(380.0, 720.0, 1.0))
    lin = np.arange(380.0, 720.0, 1.0)
    np.testing.assert_allclose(R @ lin, [450.0, 650.0], atol=1e-9)  # symmetric triangles: centroid
    np.testing.assert_allclose(s.noise.snr(np.array([3.0, 9.0])), 150.0)


def test_prisma_table_matches_a_real_products_band_lists():
    """Centres within 0.2 nm and (detector, native slot) layout of the real L1 product metadata shipped
    in simhsi/data/prisma (List_Cw_Vnir/Swir of PRS_L1_STD_OFFL_20200116...)."""
    import csv
    from importlib.resources import files

    ref = files("simhsi.data").joinpath("prisma/prisma_bands_L1_20200116.csv")
    if not ref.is_file():
        pytest.skip("PRISMA product band metadata not bundled")
    rows = [r for r in csv.DictReader(ref.read_text().splitlines()) if float(r["center_nm"]) > 0]
    assert len(rows) == 234
    s = load_sensor("prisma")
    for r in rows:
        hit = (s.band_table["detector"] == r["detector"]) & (
            s.band_table["native_slot"] == int(r["index_in_file_0based"]) + 1
        )
        assert hit.sum() == 1
        assert abs(s.wavelength[hit][0] - float(r["center_nm"])) < 0.2


def test_band_gsd_must_be_multiples_of_the_grid(tmp_path):
    doc = dict(GOOD, gsd_m=10)
    good = _write(tmp_path, doc, table="band,name,center_nm,fwhm_nm,gsd_m,snr\n1,a,500,10,10,100\n2,b,600,10,20,100\n")
    assert list(load_sensor(good).band_table["gsd_m"]) == [10, 20]
    bad = _write(tmp_path, doc, table="band,name,center_nm,fwhm_nm,gsd_m,snr\n1,a,500,10,10,100\n2,b,600,10,25,100\n")
    with pytest.raises(SensorError, match="band_table.gsd_m"):
        load_sensor(bad)
