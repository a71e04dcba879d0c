"""Global CLI behaviour (fast --help without heavy imports, --version) and ``simhsi info``, good and bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from simhsi._version import __version__
from simhsi.cli.main import cli
from simhsi.data import data_path

HEAVY = ("torch", "xarray", "dask", "h5py", "netCDF4", "scipy", "rioxarray", "diffusers")


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _one_line_error(res, *needles: str) -> str:
    """Exit code 2 and exactly one line 'error: ...' on stderr mentioning each needle."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert "Traceback" not in res.output
    return lines[0]


# ------------------------------------------------------------------ global behaviour


@pytest.mark.parametrize("args", [["--help"], ["info", "--help"]])
def test_help_is_fast_and_imports_nothing_heavy(args):
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from simhsi.cli.main import cli\n"
        f"try:\n    cli({args!r}, prog_name='simhsi')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "sys.stderr.write(repr((code, time.perf_counter() - t, sorted(m for m in "
        f"{HEAVY!r} if m in sys.modules))))\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - t0
    exit_code, in_process_s, heavy = eval(proc.stderr.strip().splitlines()[-1])
    assert exit_code == 0 and "Usage:" in proc.stdout
    assert heavy == [], f"--help imported {heavy}"
    assert in_process_s < 1.0, in_process_s  # import + help, without interpreter start-up
    assert wall < 10.0  # generous: the test machine is shared


def test_version():
    res = _run("--version")
    assert res.exit_code == 0 and __version__ in res.output


def test_unknown_command_and_option_exit_2():
    assert _run("no-such-command").exit_code == 2
    assert _run("info", "--no-such-option", "x").exit_code == 2


# ------------------------------------------------------------------ info on good inputs


def test_info_mat_text_and_json():
    path = str(data_path("jasper_ridge", "jasperRidge2_R198.mat"))
    res = _run("info", path)
    assert res.exit_code == 0, res.output
    assert "y=100 x=100 band=198" in res.output and "format" in res.output and "mat" in res.output
    assert "nominal band grid" in res.output
    res = _run("info", path, "--json")
    info = json.loads(res.stdout)
    assert info["shape"] == {"y": 100, "x": 100, "band": 198}
    assert info["n_bands"] == 198 and info["units"] == "count"
    assert info["wavelength_range_nm"] == pytest.approx([380 + 3 * 9.46, 380 + 218 * 9.46])
    assert info["nodata_fraction"] == 0.0 and info["value_range"] == [0.0, 5437.0]


def test_info_netcdf_cube_with_nodata_crs_and_dataset(tmp_path, mixture):
    import rioxarray  # noqa: F401

    from simhsi.conventions import make_abundances
    from simhsi.io.netcdf import write_netcdf

    cube, _, A = mixture(h=4, w=5, n_bands=6)
    cube = cube.copy(data=cube.values.copy())
    cube.values[0, 0, :] = np.nan  # one nodata pixel of 20
    cube.values[1, 1, 0] = np.nan  # one more NaN value
    cube = cube.assign_coords(y=5_000_000 - 30.0 * np.arange(4), x=300_000 + 30.0 * np.arange(5),
                              bad_band=("band", np.array([0, 0, 1, 1, 0, 1], bool)))
    cube = cube.rio.write_crs("EPSG:32632").rio.write_transform()
    cube.attrs.update(processing_level="L2D", sensor="test")
    nc = write_netcdf(cube, tmp_path / "c.nc")
    info = json.loads(_run("info", str(nc), "--json").stdout)
    assert info["nodata_fraction"] == pytest.approx(1 / 20)
    assert info["nan_value_fraction"] == pytest.approx(7 / 120)
    assert info["bad_bands"]["count"] == 3 and len(info["bad_bands"]["ranges_nm"]) == 2
    assert info["crs"] == "EPSG:32632" and info["processing_level"] == "L2D"
    assert 45 < info["lat_range"][0] < info["lat_range"][1] < 46
    text = _run("info", str(nc)).output
    assert "5 % of pixels" in text and "EPSG:32632" in text and "L2D" in text
    ab = write_netcdf(xr.Dataset({"abundances": make_abundances(A, ["a", "b", "c"])}, attrs={"method": "vca"}),
                      tmp_path / "ab.nc")
    res = _run("info", str(ab))
    assert res.exit_code == 0 and "no cube" in res.output and "a, b, c" in res.output and "vca" in res.output


def test_info_envi_without_wavelengths(tmp_path, mixture):
    from simhsi.io.envi import write_envi

    cube, _, _ = mixture(h=3, w=4, n_bands=5)
    cube = cube.assign_coords(wavelength=("band", np.full(5, np.nan)))
    _, hdr = write_envi(cube, tmp_path / "nowl.img")
    assert "wavelength" not in hdr.read_text()
    with pytest.warns(UserWarning, match="no wavelengths in the ENVI header"):
        res = _run("info", str(hdr))
    assert res.exit_code == 0, res.output
    assert "5, unknown (no wavelengths in the file)" in res.stdout


# ------------------------------------------------------------------ info on bad inputs


def test_info_missing_file(tmp_path):
    _one_line_error(_run("info", str(tmp_path / "nope.he5")), "nope.he5", "no such file")


def test_info_unknown_format(tmp_path):
    p = tmp_path / "random.bin"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _one_line_error(_run("info", str(p)), "random.bin", "unknown format")


def test_info_truncated_hdf5(tmp_path, mixture):
    from simhsi.io.netcdf import write_netcdf

    cube, _, _ = mixture(h=8, w=8, n_bands=10)
    good = write_netcdf(cube, tmp_path / "good.nc")
    for name in ("half.nc", "half.h5"):
        cut = tmp_path / name
        cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        _one_line_error(_run("info", str(cut)), name, "truncated or corrupt")


def test_info_non_numeric_netcdf(tmp_path):
    from simhsi.io.netcdf import write_netcdf

    words = np.array([["a", "b"], ["c", "d"]], dtype=object)
    p = write_netcdf(xr.Dataset({"labels": (("y", "x"), words)}), tmp_path / "text.nc")
    _one_line_error(_run("info", str(p)), "text.nc", "not numeric")
    cube = xr.DataArray(np.full((2, 2, 2), "z", dtype=object), dims=("y", "x", "band"), name="reflectance",
                        coords={"wavelength": ("band", [500.0, 600.0])})
    q = write_netcdf(cube, tmp_path / "textcube.nc")
    _one_line_error(_run("info", str(q)), "textcube.nc", "not numeric")


def test_info_prisma_bad_products(tmp_path):
    from simhsi.io.prisma import DETECTORS, default_band_lists, write_prisma_he5

    rng = np.random.default_rng(0)
    lists = default_band_lists()
    dn = {d: rng.integers(1, 65536, size=(3, lists[d]["cw"].size, 4), dtype=np.uint16) for d in DETECTORS}
    ok = write_prisma_he5(None, tmp_path / "PRS_L1_STD_OFFL_ok.he5", level="L1", dn=dn)
    res = _run("info", str(ok), "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["format"] == "prisma" and info["processing_level"] == "L1" and info["n_bands"] == 230
    no_cube = write_prisma_he5(None, tmp_path / "PRS_L1_nocube.he5", level="L1", dn=dn, omit={"VNIR_Cube"})
    _one_line_error(_run("info", str(no_cube)), "PRS_L1_nocube.he5", "VNIR_Cube")
    short = dict(dn, SWIR=dn["SWIR"][:, :150, :])
    mism = write_prisma_he5(None, tmp_path / "PRS_L1_short.he5", level="L1", dn=short)
    _one_line_error(_run("info", str(mism)), "PRS_L1_short.he5", "150")
    cut = tmp_path / "PRS_L1_cut.he5"
    cut.write_bytes(ok.read_bytes()[: ok.stat().st_size // 2])
    _one_line_error(_run("info", str(cut)), "PRS_L1_cut.he5")


def test_info_bad_input_real_subprocess(tmp_path):
    """The installed entry point: one line on stderr, exit code 2, no traceback."""
    exe = [sys.executable, "-m", "simhsi.cli.main"]
    proc = subprocess.run([*exe, "info", str(tmp_path / "missing.nc")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.nc'}: no such file"]
    assert proc.stdout == ""


def test_validate_abundances_accepts_unmix_runs(tmp_path):
    """An unmix results file (dim ``run``) is a valid set of real maps for the realism metrics."""
    from simhsi.diffusion.grf import gaussian_random_field_abundances
    from simhsi.io.netcdf import write_netcdf

    a = gaussian_random_field_abundances(2, (16, 16), 3, theta=6.0, seed=0)
    runs = xr.Dataset({"abundances": a.rename(sample="run").transpose("run", "endmember", "y", "x")})
    write_netcdf(runs, tmp_path / "unmixed.nc")
    write_netcdf(gaussian_random_field_abundances(2, (16, 16), 3, theta=6.0, seed=1), tmp_path / "synth.nc")
    res = _run("validate", "--abundances", str(tmp_path / "unmixed.nc"), str(tmp_path / "synth.nc"), "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)["metrics"]
    assert metrics and all(np.isfinite(v) for v in metrics.values())


def test_python_dash_m_quiet(tmp_path):
    """`python -m simhsi -q` honours the global options (one State class)."""
    res = subprocess.run([sys.executable, "-m", "simhsi", "-q", "sensors", "list"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "prisma" in res.stdout


def test_run_script_error_line_and_exit_codes(capsys):
    from simhsi.errors import DataError, run_script

    def bad(argv):
        raise DataError("cube has NaN", path="x.nc")

    with pytest.raises(SystemExit) as exc:
        run_script(bad)
    assert exc.value.code == 2 and capsys.readouterr().err.strip() == "error: x.nc: cube has NaN"
    with pytest.raises(SystemExit) as exc:
        run_script(lambda argv: 0)
    assert exc.value.code == 0
