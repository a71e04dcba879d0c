"""Endmember libraries: bundled real library, ENVI .sli, CSV, unmix results; selection by name/class/seed."""

from __future__ import annotations

import numpy as np
import pytest

from simhsi.errors import FormatError, InputFileError, ParameterError
from simhsi.library import CLASSES, load_library, select_endmembers


@pytest.fixture(scope="module")
def bundled():
    return load_library("bundled")


def test_bundled_library_is_real_and_described(bundled):
    assert bundled.dims == ("endmember", "band")
    assert 30 <= bundled.sizes["endmember"] <= 60
    wl = bundled["wavelength"].values
    assert wl[0] == 350.0 and wl[-1] == 2500.0 and np.allclose(np.diff(wl), 1.0)
    assert set(bundled["class"].values) == set(CLASSES)
    v = bundled.values
    assert np.nanmin(v) >= 0.0 and np.nanmax(v) <= 1.0
    # every spectrum is measured over at least 400-2440 nm (USGS slush ends at 2446 nm)
    inside = (wl >= 400) & (wl <= 2440)
    assert np.all(np.isfinite(v[:, inside]))
    assert all(s.startswith(("USGS", "earthlib")) for s in bundled["source"].values)
    # no PROSAIL simulations and no synthetic mixtures
    assert not any("prosail" in s.lower() for s in bundled["source"].values)
    assert not any(r.startswith("synth") for r in bundled["record"].values)
    # vegetation shows the red edge: NIR (850 nm) reflectance well above red (670 nm)
    veg = bundled.sel(endmember="engelmann_spruce_needles")
    assert float(veg.sel(band=np.argmin(abs(wl - 850)))) > 3 * float(veg.sel(band=np.argmin(abs(wl - 670))))


def test_select_by_name_keeps_order_and_trims_to_measured_range(bundled):
    sub = select_endmembers(bundled, 3, names=["calcite", "asphalt", "seawater_coastal_chl"])
    assert list(sub["endmember"].values) == ["calcite", "asphalt", "seawater_coastal_chl"]
    assert sub["wavelength"].values[0] == 400.0 and sub["wavelength"].values[-1] == 2450.0
    assert np.all(np.isfinite(sub.values))
    via_load = load_library("bundled", names=["calcite", "asphalt", "seawater_coastal_chl"])
    np.testing.assert_array_equal(via_load.values, sub.values)
    usgs = select_endmembers(bundled, 2, names=["calcite", "topaz"])
    assert usgs["wavelength"].values[0] == 350.0 and usgs["wavelength"].values[-1] == 2500.0
    with pytest.raises(ParameterError, match="not in the library"):
        select_endmembers(bundled, 1, names=["unobtainium"])
    with pytest.raises(ParameterError, match="give exactly p names"):
        select_endmembers(bundled, 2, names=["calcite"])


def test_select_by_class_and_seed_is_deterministic(bundled):
    a = select_endmembers(bundled, 3, classes=["urban"], seed=7)
    b = select_endmembers(bundled, 3, classes=["urban"], seed=7)
    assert list(a["endmember"].values) == list(b["endmember"].values)
    assert set(a["class"].values) == {"urban"}
    picks = {tuple(select_endmembers(bundled, 4, seed=s)["endmember"].values) for s in range(6)}
    assert len(picks) > 1  # different seeds choose different spectra
    cover = load_library("bundled", classes="mineral", wavelength_range=(380, 2500))
    assert cover.sizes["endmember"] >= 5 and cover["wavelength"].values[-1] == 2500.0
    with pytest.raises(ParameterError, match="unknown class"):
        select_endmembers(bundled, 1, classes=["lava"])
    with pytest.raises(ParameterError, match="only 2 library spectra match"):
        select_endmembers(bundled, 3, classes=["snow"])


def test_csv_library(tmp_path):
    p = tmp_path / "lib.csv"
    p.write_text("wavelength_um,grass,soil\n0.40,0.05,0.10\n0.50,0.08,0.15\n0.60,0.06,0.20\n")
    lib = load_library(p)
    np.testing.assert_allclose(lib["wavelength"].values, [400.0, 500.0, 600.0])
    assert list(lib["endmember"].values) == ["grass", "soil"]
    np.testing.assert_allclose(lib.sel(endmember="soil").values, [0.10, 0.15, 0.20])
    bad = tmp_path / "bad.csv"
    bad.write_text("wavelength,a\n400,x\n500,1\n")
    with pytest.raises(FormatError, match="non-numeric"):
        load_library(bad)
    with pytest.raises(InputFileError, match="not found"):
        load_library(tmp_path / "missing.csv")


def test_envi_sli_round_trip(tmp_path):
    import spectral.io.envi as envi

    rng = np.random.default_rng(0)
    spectra = rng.uniform(0, 1, size=(3, 20)).astype(np.float32)
    wl = np.linspace(0.4, 2.3, 20)
    sli = envi.SpectralLibrary(spectra, {"wavelength units": "Micrometers", "wavelength": list(wl),
                                         "spectra names": ["a", "b", "c"]})
    sli.save(str(tmp_path / "lib"))
    lib = load_library(tmp_path / "lib.sli")
    np.testing.assert_allclose(lib["wavelength"].values, wl * 1000, rtol=1e-6)
    np.testing.assert_allclose(lib.values, spectra, rtol=1e-6)
    assert list(lib["endmember"].values) == ["a", "b", "c"]


def test_unmix_result_library(tmp_path, mixture):
    from simhsi.unmixing import get_method
    from simhsi.unmixing.results import write_unmix_results

    cube, _, _ = mixture(h=10, w=10, n_bands=20, p=3, seed=1)
    res = get_method("vca-fcls")(3, seed=0).fit(cube)
    out = tmp_path / "unmix.nc"
    write_unmix_results([res], out)
    lib = load_library(out, run=0)
    assert lib.sizes["endmember"] == 3
    np.testing.assert_allclose(lib["wavelength"].values, cube["wavelength"].values)
    np.testing.assert_allclose(lib.values, res["endmembers"].transpose("endmember", "band").values, rtol=1e-6)
    with pytest.raises(ParameterError, match="holds 1 unmixing run"):
        load_library(out, run=3)
