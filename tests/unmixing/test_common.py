"""Common API suite over EVERY registered unmixing method, plus the results file and `simhsi unmix`.

Each method runs with tiny settings from FAST_PARAMS (method name -> constructor kwargs); a method
missing from the dict runs with its defaults, so keep new entries small.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from simhsi.errors import DataError, ParameterError
from simhsi.unmixing import available_methods, get_method

FAST_PARAMS: dict[str, dict] = {
    "vca-fcls": {},
    "nfindr-fcls": {},
    "sisal-fcls": {"mm_iters": 5},
    "nmfqmv": {"ao_iters": 3, "admm_iters": 5, "vca_runs": 2, "betas": (1.0, 10.0)},
    "bayes": {"n_samples": 4, "burn_in": 1},
    "edaa": {"n_runs": 2, "T": 3, "device": "cpu"},
    "cnnaeu": {"epochs": 1, "n_patches": 2, "patch_size": 16, "batch_size": 2, "kernel": 3, "device": "cpu"},
    "pgmsu": {"epochs": 2, "device": "cpu"},
}

METHODS = available_methods()


def _make(name: str, p: int, seed: int = 0):
    return get_method(name)(p, seed=seed, **FAST_PARAMS.get(name, {}))


@pytest.fixture(scope="module")
def crop():
    """A 20×20 crop of the bundled Samson scene (real data, 156 bands)."""
    import simhsi.data

    cube = simhsi.data.load("samson").cube
    return cube.isel(y=slice(30, 50), x=slice(40, 60)).load()


def _check_result(res: xr.Dataset, cube: xr.DataArray, p: int, name: str) -> None:
    h, w = cube.sizes["y"], cube.sizes["x"]
    assert res["endmembers"].dims == ("endmember", "band")
    assert res["abundances"].dims == ("endmember", "y", "x")
    assert res["abundances"].shape == (p, h, w)
    E = res["endmembers"].values
    assert E.shape[0] == p and np.all(np.isfinite(E))
    A = res["abundances"].values
    m = res["mask"].values
    assert np.all(np.isfinite(A[:, m])) and np.all(np.isnan(A[:, ~m]))
    assert A[:, m].min() >= -1e-6
    np.testing.assert_allclose(A[:, m].sum(axis=0), 1.0, atol=1e-4)
    a = res.attrs
    assert a["method"] == name and a["n_endmembers"] == p
    assert a["runtime_s"] >= 0 and np.isfinite(a["rmse"]) and a["rmse"] >= 0
    assert "seed" in a and "hyperparameters" in a


@pytest.mark.parametrize("name", METHODS)
def test_every_method_on_real_crop(crop, name):
    res = _make(name, 3).fit(crop)
    _check_result(res, crop, 3, name)
    # even with tiny settings the reconstruction beats predicting zero
    assert res.attrs["rmse"] < float(np.sqrt(np.mean(crop.values.astype(np.float64) ** 2)))


@pytest.mark.parametrize("name", METHODS)
def test_every_method_is_deterministic_for_a_seed(crop, name):
    small = crop.isel(y=slice(0, 16), x=slice(0, 16))
    a = _make(name, 3, seed=1).fit(small)
    b = _make(name, 3, seed=1).fit(small)
    np.testing.assert_allclose(a["endmembers"].values, b["endmembers"].values, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a["abundances"].values, b["abundances"].values, atol=1e-6)


def test_masking_of_nodata_pixels_and_bands(crop):
    c = crop.astype(np.float64).copy()
    c[3, 4, :] = np.nan  # nodata pixel
    c[:, :, 10] = np.nan  # dead band
    c[5, 6, 20] = np.inf  # a single bad value masks its pixel
    res = _make("vca-fcls", 3).fit(c)
    assert res.sizes["band"] == crop.sizes["band"] - 1
    assert not res["mask"].values[3, 4] and not res["mask"].values[5, 6]
    assert int(res["mask"].values.sum()) == 400 - 2
    _check_result(res, c, 3, "vca-fcls")


@pytest.mark.parametrize("name", METHODS)
def test_bad_inputs(crop, name):
    cls = get_method(name)
    small = crop.isel(y=slice(0, 6), x=slice(0, 6))
    with pytest.raises(ParameterError, match="n_endmembers"):
        cls(1, **FAST_PARAMS.get(name, {})).fit(small)
    narrow = small.isel(band=slice(0, 4))
    with pytest.raises(ParameterError, match="n_endmembers"):
        cls(4, **FAST_PARAMS.get(name, {})).fit(narrow)
    few = small.astype(np.float64).copy()
    few[...] = np.nan
    few[0, 0, :] = 0.3
    few[0, 1, :] = 0.5
    with pytest.raises(DataError, match="only 2 valid pixels"):
        cls(3, **FAST_PARAMS.get(name, {})).fit(few)
    with pytest.raises(DataError, match="no valid"):
        cls(3, **FAST_PARAMS.get(name, {})).fit(small.astype(np.float64) * np.nan)
    with pytest.raises(DataError, match="constant"):
        cls(3, **FAST_PARAMS.get(name, {})).fit(small * 0 + 0.25)


def test_unknown_method():
    with pytest.raises(ParameterError, match="unknown unmixing method 'nope'.*vca-fcls"):
        get_method("nope")


def test_geometric_methods_use_float32_and_chunked_rmse(crop):
    from simhsi.unmixing._base import prepare, reconstruction_rmse

    prep = prepare(crop, 3, dtype=np.float32)
    assert prep.Y.dtype == np.float32 and prep.Y.shape == (crop.sizes["band"], 400)
    res = _make("vca-fcls", 3).fit(crop)
    E = res["endmembers"].values.T / prep.scale
    A = res["abundances"].values.reshape(3, -1)
    full = float(np.sqrt(np.mean((prep.Y.astype(np.float64) - E @ A) ** 2)))
    assert reconstruction_rmse(prep.Y, E, A, chunk=37) == pytest.approx(full, rel=1e-6)  # float32 residual
    assert reconstruction_rmse(prep.Y.astype(np.float64), E, A, chunk=37) == pytest.approx(full, rel=1e-12)
    assert res.attrs["rmse"] == pytest.approx(full * prep.scale, rel=1e-5)


# -- results file ---------------------------------------------------------------------------------
def test_stack_write_read_roundtrip(tmp_path, mixture):
    from simhsi.unmixing.results import read_unmix_results, stack_results, write_unmix_results

    cube, _, _ = mixture(10, 8, 25, 3, snr_db=40)
    runs = [_make(m, p, s).fit(cube) for m in ("vca-fcls", "nfindr-fcls") for p in (2, 3) for s in (0, 1)]
    runs[0].attrs["sad_deg"] = 4.5
    ds = stack_results(runs, source_file="in.nc")
    assert ds.sizes["run"] == 8 and ds.sizes["endmember"] == 3
    assert ds["abundances"].dims == ("run", "endmember", "y", "x")
    assert ds["endmembers"].dims == ("run", "endmember", "band")
    assert list(ds["n_endmembers"].values) == [2, 2, 3, 3, 2, 2, 3, 3]
    assert np.isnan(ds["abundances"].values[0, 2]).all()  # padding beyond p = 2
    assert ds["method"].values[4] == "nfindr-fcls" and ds["seed"].values[1] == 1
    assert ds["sad"].values[0] == 4.5 and np.isnan(ds["sad"].values[1])
    path = write_unmix_results(ds, tmp_path / "u.nc")
    back = read_unmix_results(path)
    assert len(back) == 8
    for a, b in zip(runs, back, strict=True):
        assert b.sizes["endmember"] == a.sizes["endmember"]
        np.testing.assert_allclose(b["endmembers"].values, a["endmembers"].values)
        np.testing.assert_allclose(b["abundances"].values, a["abundances"].values, atol=1e-6)
        assert b.attrs["method"] == a.attrs["method"] and b.attrs["seed"] == a.attrs["seed"]
    with pytest.raises(OSError, match="exists"):
        write_unmix_results(runs, path)


def test_stack_rejects_mixed_cubes(mixture):
    from simhsi.unmixing.results import stack_results

    a = _make("vca-fcls", 2).fit(mixture(6, 6, 20, 2)[0])
    b = _make("vca-fcls", 2).fit(mixture(6, 7, 20, 2)[0])
    with pytest.raises(DataError, match="one cube"):
        stack_results([a, b])
    with pytest.raises(DataError, match="no unmixing"):
        stack_results([])


# -- CLI --------------------------------------------------------------------------------------------
@pytest.fixture
def cube_file(tmp_path, mixture):
    from simhsi.io.netcdf import write_netcdf

    cube, E, A = mixture(12, 12, 30, 3, snr_db=50, seed=3)
    path = write_netcdf(cube, tmp_path / "cube.nc")
    import simhsi.conventions as cv

    ref = xr.Dataset({"endmembers": cv.make_library(E.T, cube.wavelength.values),
                      "abundances": cv.make_abundances(A)})
    ref_path = write_netcdf(ref, tmp_path / "ref.nc")
    return path, ref_path


def _invoke(args):
    from click.testing import CliRunner

    from simhsi.cli.main import cli

    return CliRunner().invoke(cli, ["-q", *args])


def test_cli_unmix_runs_and_scores(tmp_path, cube_file):
    from simhsi.unmixing.results import read_unmix_results

    cube, ref = cube_file
    out, ql = tmp_path / "u.nc", tmp_path / "q.png"
    # INPUT after the int lists: the greedy --seeds must stop at the path
    r = _invoke(["unmix", "--endmembers", "2", "3", "--methods", "vca-fcls,nfindr-fcls", "--out", str(out),
                 "--reference", str(ref), "--quicklook", str(ql), "--seeds", "0", "1", str(cube)])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].split() == ["method", "p", "seed", "runtime_s", "rmse", "SAD_deg", "aRMSE"]
    assert len(lines) == 1 + 8 + 1
    runs = read_unmix_results(out)
    assert [(x.attrs["method"], x.attrs["n_endmembers"], x.attrs["seed"]) for x in runs][:3] == [
        ("vca-fcls", 2, 0), ("vca-fcls", 2, 1), ("vca-fcls", 3, 0)]
    scored = [x for x in runs if x.attrs["n_endmembers"] == 3]
    assert all(x.attrs["sad_deg"] < 1.0 and x.attrs["armse"] < 2.0 for x in scored)
    assert ql.stat().st_size > 1000 and ql.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--methods", "vca-fcls,nope"], "unknown unmixing method 'nope'"),
    (["--endmembers", "1"], "p must be an int >= 2"),
    (["--endmembers", "30"], "smaller than the 30 usable bands"),
    (["--seeds", "-1"], "error"),
    (["--reference", "nowhere.nc"], "neither a bundled dataset"),
])
def test_cli_validates_before_running(tmp_path, cube_file, args, message):
    out = tmp_path / "u.nc"
    r = _invoke(["unmix", str(cube_file[0]), "--out", str(out), "--methods", "vca-fcls", *args])
    assert r.exit_code == 2
    assert message in r.output
    assert not out.exists()


def test_cli_refuses_existing_output(tmp_path, cube_file):
    out = tmp_path / "u.nc"
    out.write_bytes(b"keep")
    r = _invoke(["unmix", str(cube_file[0]), "--out", str(out), "--methods", "vca-fcls", "-p", "2"])
    assert r.exit_code == 2 and "exists" in r.output
    assert out.read_bytes() == b"keep"
    r = _invoke(["unmix", str(cube_file[0]), "--out", str(out), "--methods", "vca-fcls", "-p", "2,3",
                 "--overwrite", "--json"])
    assert r.exit_code == 0, r.output
    import json

    assert [row["p"] for row in json.loads(r.output)["runs"]] == [2, 3]


def test_cli_unmix_accepts_a_bundled_scene_name(tmp_path):
    import json

    from click.testing import CliRunner

    from simhsi.cli.main import cli

    out = tmp_path / "u.nc"
    r = CliRunner().invoke(cli, ["-q", "unmix", "samson", "-p", "3", "-m", "vca-fcls", "--reference", "samson",
                                 "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["runs"]
    assert len(rows) == 1 and rows[0]["sad_deg"] < 10  # Samson VCA+FCLS is ~5.5 degrees
    assert out.exists()
