"""The mission-planning example (examples/mission_planning/sensor_tradeoff.py) in smoke mode."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "mission_planning" / "sensor_tradeoff.py"


def _load():
    spec = importlib.util.spec_from_file_location("sensor_tradeoff_example", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def example():
    return _load()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, example):
    out = tmp_path_factory.mktemp("tradeoff")
    assert example.main(["--out", str(out), "--smoke", "--seed", "3", "-q", "--save-cubes"]) == 0
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_smoke_writes_every_output(smoke_run, example):
    for name in example.OUTPUTS:
        f = smoke_run / name
        assert f.is_file() and f.stat().st_size > 0, name
    for png in ("tradeoff_sensor.png", "tradeoff_snr.png", "tradeoff_gsd.png"):
        assert (smoke_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(smoke_run.glob(".*.part"))  # atomic writes left no temporary file


def test_smoke_results_are_sane(smoke_run):
    rows = _rows(smoke_run / "results.csv")
    sensors = {r["sensor"] for r in rows}
    assert sensors == {"prisma", "enmap", "emit", "sentinel2a"}
    # every sensor appears in every experiment
    for s in sensors:
        exps = {e for r in rows if r["sensor"] == s for e in r["experiments"].split("+")}
        assert exps == {"sensor", "snr", "gsd"}, (s, exps)
    for r in rows:
        armse, sad, oracle = float(r["armse_mean"]), float(r["sad_deg_mean"]), float(r["armse_oracle_mean"])
        assert 0 < armse < 100 and 0 < sad < 90 and 0 <= oracle < 100
        # the oracle knows the true endmembers: it cannot be much worse than a blind method
        assert oracle <= armse + 1e-6
        assert 0 < float(r["min_purity"]) <= 1
        assert 0 < float(r["armse_footprint_mean"]) < 100
        assert math.isfinite(float(r["median_snr_mean"])) and float(r["median_snr_mean"]) > 1
    # halving the SNR scale halves the measured SNR (same noise draw, sigma / snr_scale)
    for s in sensors:
        snr = {float(r["snr_scale"]): float(r["median_snr_mean"]) for r in rows
               if r["sensor"] == s and "snr" in r["experiments"]}
        assert snr[0.5] == pytest.approx(snr[1.0] / 2, rel=0.05)
        orc = {float(r["snr_scale"]): float(r["armse_oracle_mean"]) for r in rows
               if r["sensor"] == s and "snr" in r["experiments"]}
        assert orc[0.5] > orc[1.0]  # more noise, larger error even with the true endmembers
    # pixel counts follow the GSD (72 px scene at 10 m)
    px = {(r["sensor"], float(r["gsd_m"])): r["sensor_pixels"] for r in rows}
    assert px[("prisma", 30.0)] == "24x24" and px[("prisma", 60.0)] == "12x12"
    assert px[("sentinel2a", 10.0)] == "72x72"
    bands = {r["sensor"]: int(r["n_bands_used"]) for r in rows}
    assert bands["sentinel2a"] == 12 and bands["prisma"] > 150  # bad bands dropped by the unmixing


def test_saved_cubes_match_the_table(smoke_run):
    import xarray as xr

    rows = {r["sensor"]: r for r in _rows(smoke_run / "results.csv") if "sensor" in r["experiments"]}
    for sensor, row in rows.items():
        with xr.open_dataset(smoke_run / "cubes" / f"{sensor}_native.nc") as ds:
            cube = ds["reflectance"].values
            assert ds.attrs["sensor"] == sensor
            assert f"{cube.shape[0]}x{cube.shape[1]}" == row["sensor_pixels"]
            assert cube.shape[2] == int(row["n_bands"])
            assert np.isfinite(cube).all() and 0 < cube.mean() < 1


def test_smoke_truth_and_endmember_names(smoke_run):
    import xarray as xr

    from simhsi.render.scene import DEMO_NAMES

    with xr.open_dataset(smoke_run / "truth_scene.nc") as ds:
        a = ds["abundances"].values
        names = [str(n) for n in ds["endmember"].values]
        lib = ds["library"].values
    assert a.shape == (5, 72, 72)
    assert np.all(a >= 0) and np.allclose(a.sum(axis=0), 1, atol=1e-5)
    assert names == list(DEMO_NAMES)
    assert np.all(np.isfinite(lib)) and 0 < lib.max() <= 1.5
    em = _rows(smoke_run / "per_endmember.csv")
    assert {r["endmember"] for r in em} == set(DEMO_NAMES)
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert summary["endmembers"] == list(DEMO_NAMES)
    assert summary["generator"].startswith("grf")
    md = (smoke_run / "results.md").read_text()
    assert "| prisma |" in md and "SNR scale 0.5" in md and "GSD m 60" in md


def test_refuses_to_overwrite_and_bad_gsd(smoke_run, example, tmp_path):
    from simhsi.errors import OutputError, ParameterError

    with pytest.raises(OutputError):
        example.main(["--out", str(smoke_run), "--smoke", "-q"])
    with pytest.raises(ParameterError, match="finer than the scene pixel"):
        example.main(["--out", str(tmp_path), "--smoke", "-q", "--gsds", "5"])
    with pytest.raises(ParameterError, match="raise --size"):
        example.main(["--out", str(tmp_path), "--smoke", "-q", "--size", "24"])


def test_plan_configs_merges_shared_points(example):
    from simhsi.sensors import load_sensor

    cfgs = example.plan_configs([load_sensor("emit")], [0.5, 1.0], [30.0, 60.0])
    keys = [(c["gsd_m"], c["snr_scale"]) for c in cfgs]
    assert sorted(keys) == [(30.0, 1.0), (60.0, 0.5), (60.0, 1.0)]
    native = next(c for c in cfgs if c["gsd_m"] == 60.0 and c["snr_scale"] == 1.0)
    assert native["experiments"] == ["sensor", "snr", "gsd"]
    s30 = example.sensor_at_gsd(load_sensor("emit"), 30.0)
    assert s30.gsd_m == 30.0 and s30.n_bands == load_sensor("emit").n_bands


def test_plan_configs_shot_noise_scales_snr_with_gsd(example):
    from simhsi.sensors import load_sensor

    cfgs = example.plan_configs([load_sensor("prisma")], [1.0], [10.0, 60.0], gsd_noise="shot")
    gsd = {c["gsd_m"]: c["snr_scale"] for c in cfgs if "gsd" in c["experiments"]}
    assert gsd == {10.0: pytest.approx(1 / 3), 60.0: 2.0}
