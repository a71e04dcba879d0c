"""`simhsi render-cube` and `simhsi validate` end to end: demo, formats, round trips, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from simhsi.cli.main import cli
from simhsi.conventions import make_abundances
from simhsi.io.netcdf import write_netcdf


def run(*args: str):
    res = CliRunner().invoke(cli, ["-q", *args])
    return res


def _abund_file(path, p=5, h=12, w=10, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.dirichlet(np.ones(p), size=(h, w)).transpose(2, 0, 1).astype(np.float32) * scale
    write_netcdf(make_abundances(a), path)
    return a


def test_demo_scene_quicklook_and_validate(tmp_path):
    out, png = tmp_path / "scene.nc", tmp_path / "scene.png"
    res = run("render-cube", "--sensor", "prisma", "--out", str(out), "--size", "12", "12", "--quicklook", str(png),
              "--keep-clean")
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 1000
    with xr.open_dataset(out) as f:
        ds = f.load()
    assert ds["reflectance"].shape == (12, 12, 234)
    assert ds["reflectance"].encoding["dtype"] == np.dtype("uint16")  # exact sensor DN, CF-packed
    assert ds["abundances"].shape == (5, 12, 12)
    assert ds["endmembers"].shape == (5, 234)
    assert ds.attrs["sensor"] == "prisma" and ds.attrs["processing_level"] == "L2"
    assert "none" in ds.attrs["atmosphere"] and ds.attrs["seed"] == 0
    np.testing.assert_allclose(ds["abundances"].sum("endmember"), 1.0, atol=1e-5)
    # noise is there but small
    d = (ds["reflectance"] - ds["clean"]).values
    assert 0 < np.std(d) < 0.02
    res = run("validate", str(out), str(out), "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)["metrics"]
    assert m["sad_deg"] == 0.0 and m["rmse"] == 0.0
    assert m["psnr_db"] == "inf" and m["ssim"] == pytest.approx(1.0)
    assert m["n_bands_matched"] == 234
    res = run("validate", str(out), str(out))
    assert "psnr_db" in res.output and "inf" in res.output


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_prisma_he5_export_reread_identical(tmp_path, level):
    from simhsi.io import open_cube

    _abund_file(tmp_path / "a.nc")
    common = ["--abundances", str(tmp_path / "a.nc"), "--level", level, "--seed", "4"]
    assert run("render-cube", *common, "--out", str(tmp_path / "s.nc")).exit_code == 0
    res = run("render-cube", *common, "--format", "prisma-he5", "--out", str(tmp_path / "s.he5"))
    assert res.exit_code == 0, res.output
    cube = open_cube(tmp_path / "s.he5", overlap="keep", water_vapour="keep")
    with xr.open_dataset(tmp_path / "s.nc") as f:
        ref = f["radiance" if level == "L1" else "reflectance"].load()
    np.testing.assert_allclose(cube["wavelength"].values, ref["wavelength"].values, atol=1e-3)
    got, want = cube.values, ref.values.astype(np.float32)
    # the same DN everywhere; values equal to float32 rounding (the reader computes DN * float32(step))
    step = 0.01 if level == "L1" else 1.0 / 65535.0
    np.testing.assert_array_equal(np.rint(got / step), np.rint(want / step))
    np.testing.assert_array_max_ulp(got, want, maxulp=1)
    if level == "L1":
        np.testing.assert_array_equal(got, want)
    assert cube.attrs.get("processing_level", level).startswith(level[:2])


def test_envi_export(tmp_path):
    from simhsi.io import open_cube

    _abund_file(tmp_path / "a.nc")
    res = run("render-cube", "--abundances", str(tmp_path / "a.nc"), "--format", "envi", "--no-noise",
              "--out", str(tmp_path / "s.img"))
    assert res.exit_code == 0, res.output
    cube = open_cube(tmp_path / "s.hdr")
    assert cube.shape == (12, 10, 234)
    assert np.all(np.isfinite(cube.values)) and float(cube.max()) <= 1.0


def test_scheduler_option(tmp_path):
    from distributed import LocalCluster

    _abund_file(tmp_path / "a.nc")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        res = run("render-cube", "--abundances", str(tmp_path / "a.nc"), "--out", str(tmp_path / "d.nc"),
                  "--scheduler", cluster.scheduler_address, "--chunks", "16")
    assert res.exit_code == 0, res.output
    assert run("render-cube", "--abundances", str(tmp_path / "a.nc"), "--out", str(tmp_path / "l.nc"),
               "--chunks", "64").exit_code == 0
    with xr.open_dataset(tmp_path / "d.nc") as f, xr.open_dataset(tmp_path / "l.nc") as g:
        a, b = f["reflectance"].values, g["reflectance"].values
    np.testing.assert_array_equal(a, b)  # same seed, other chunks and scheduler: same cube


def _assert_error(res, match: str, tmp_path, keep=("a.nc", "lib.csv", "exists.nc")):
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") or "error: " in res.output
    assert match in res.output, res.output
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in keep)
    assert left == [], left


def test_bad_inputs_clear_errors_nothing_written(tmp_path):
    a = _abund_file(tmp_path / "a.nc")
    out = str(tmp_path / "o.nc")
    base = ["render-cube", "--out", out, "--quicklook", str(tmp_path / "q.png")]
    _assert_error(run(*base, "--sensor", "nosuchsensor", "--size", "8", "8"), "nosuchsensor", tmp_path)
    # library not covering the sensor bands
    wl = np.arange(400.0, 1001.0, 5.0)
    cols = {"wavelength": wl, **{f"m{i}": np.full(wl.size, 0.1 * (i + 1)) for i in range(5)}}
    lines = [",".join(cols)] + [",".join(f"{cols[k][j]:g}" for k in cols) for j in range(wl.size)]
    (tmp_path / "lib.csv").write_text("\n".join(lines) + "\n")
    _assert_error(run(*base, "--abundances", str(tmp_path / "a.nc"), "--library", str(tmp_path / "lib.csv")),
                  "outside", tmp_path)
    # abundances off the simplex: error, and repaired by option
    write_netcdf(make_abundances(a * 1.2), tmp_path / "off.nc")
    _assert_error(run(*base, "--abundances", str(tmp_path / "off.nc")), "repair-abundances", tmp_path,
                  keep=("a.nc", "lib.csv", "off.nc"))
    assert run("render-cube", "--abundances", str(tmp_path / "off.nc"), "--repair-abundances",
               "--out", out).exit_code == 0
    (tmp_path / "o.nc").rename(tmp_path / "exists.nc")
    (tmp_path / "off.nc").unlink()
    # mismatched endmember counts: 5 maps, 2 spectra
    _assert_error(run(*base, "--abundances", str(tmp_path / "a.nc"), "--endmember-names", "calcite,topaz"),
                  "5 endmembers but the library has 2", tmp_path)
    # output not writable: missing folder, existing file without --overwrite
    _assert_error(run("render-cube", "--size", "8", "8", "--out", str(tmp_path / "nodir" / "o.nc")),
                  "does not exist", tmp_path)
    _assert_error(run("render-cube", "--size", "8", "8", "--out", str(tmp_path / "exists.nc")),
                  "--overwrite", tmp_path)
    _assert_error(run("render-cube", "--size", "8", "8", "--abundances", str(tmp_path / "a.nc"), "--out", out),
                  "--size", tmp_path)
    _assert_error(run("render-cube", "--sensor", "enmap", "--size", "8", "8", "--format", "prisma-he5",
                      "--out", str(tmp_path / "x.he5")), "PRISMA", tmp_path)


def test_validate_errors(tmp_path):
    res = run("validate", str(tmp_path / "missing.nc"), str(tmp_path / "missing.nc"))
    assert res.exit_code == 2 and "no such file" in res.output


def test_validate_abundance_sets(tmp_path):
    from simhsi.diffusion.grf import gaussian_random_field_abundances

    for name, seed in (("real.nc", 0), ("synth.nc", 1)):
        write_netcdf(gaussian_random_field_abundances(3, (16, 16), 3, theta=6.0, seed=seed), tmp_path / name)
    res = run("validate", "--abundances", str(tmp_path / "real.nc"), str(tmp_path / "synth.nc"), "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)["metrics"]
    assert m and all(isinstance(v, float) for v in m.values())
    same = json.loads(run("validate", "--abundances", str(tmp_path / "real.nc"), str(tmp_path / "real.nc"),
                          "--json").output)["metrics"]
    w1 = [k for k in same if "wasserstein" in k or "w1" in k.lower()]
    assert w1 and all(same[k] == pytest.approx(0.0, abs=1e-9) for k in w1)
