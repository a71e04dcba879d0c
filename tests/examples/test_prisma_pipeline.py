"""examples/prisma_pipeline.py end to end in smoke mode on a small generated PRISMA product (in-process CLI)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prisma_pipeline.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("prisma_pipeline_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mod = _load_example()
    out = tmp_path_factory.mktemp("prisma_pipeline")
    assert mod.main(["--smoke", "--in-process", "--out", str(out), "--seed", "3"]) == 0
    return mod, out


def test_every_stage_wrote_its_artefacts(run):
    mod, out = run
    summary = json.loads((out / "summary.json").read_text())
    expected = [f"00_input/{mod.INPUT_NAME}", "00_input/truth.nc", "01_info/info.json", "02_unmix/unmix.nc",
                "02_unmix/unmix.png", "03_train/train.yaml", "03_train/model/simhsi_model.json",
                "04_generate/generated.nc", "04_generate/generated.png", "05_render/library.csv",
                "05_render/synthetic.nc", "05_render/synthetic.png", "05_render/reconstruction.nc",
                "06_validate/realism.json", "06_validate/reconstruction.json", "commands.sh"]
    for rel in expected:
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, rel
        assert rel in summary["artefacts_bytes"], rel
    assert not list(out.rglob("*.tmp*")), "temporary files left behind"
    # every CLI stage is recorded as a runnable command
    cmds = (out / "commands.sh").read_text()
    for sub in ("unmix", "train", "generate-abundances", "render-cube", "validate", "info"):
        assert f"simhsi -q {sub} " in cmds, sub
    assert set(summary["timings_s"]) >= {"2 unmix", "3 train", "4 generate", "5 render", "6 validate", "total"}


def test_input_is_a_georeferenced_prisma_product_matching_the_truth(run):
    from simhsi.io import open_cube
    from simhsi.io.prisma import is_prisma

    mod, out = run
    he5 = out / "00_input" / mod.INPUT_NAME
    assert is_prisma(he5)
    cube = open_cube(he5)
    assert cube.sizes["y"] == cube.sizes["x"] == mod.SMOKE["size"]
    assert cube.rio.crs is not None and cube.rio.crs.to_epsg() == mod.EPSG
    info = json.loads((out / "01_info/info.json").read_text())
    assert info["processing_level"] == "L2D" and info["crs"] == f"EPSG:{mod.EPSG}"
    rt = json.loads((out / "00_input/roundtrip.json").read_text())["metrics"]
    # the product holds the rendered truth up to 16-bit quantisation
    assert rt["n_bands_matched"] >= 200 and rt["rmse"] < 1e-3 and rt["sad_deg"] < 0.05


def test_unmixing_recovers_the_truth_and_feeds_the_later_stages(run):
    mod, out = run
    p = mod.SMOKE["endmembers"]
    u = json.loads((out / "02_unmix/unmix.json").read_text())["runs"]
    assert len(u) == 1 and u[0]["method"] == mod.SMOKE["method"] and u[0]["p"] == p
    # noise-level residual and near-exact endmembers on this easy, noisy-but-pure-pixel scene
    assert u[0]["rmse"] < 0.02 and u[0]["sad_deg"] < 5.0 and u[0]["armse"] < 10.0
    with xr.open_dataset(out / "04_generate/generated.nc") as g:
        a = g["abundances"].values
    assert a.shape == (mod.SMOKE["n_generate"], p, mod.SMOKE["size"], mod.SMOKE["size"])
    assert np.isfinite(a).all() and (a >= -1e-6).all()
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-4)
    lib = np.loadtxt(out / "05_render/library.csv", delimiter=",", skiprows=2)
    assert lib.shape[1] == p + 1 and np.isfinite(lib).all()


def test_rendered_scenes_and_validation_are_sane(run):
    mod, out = run
    for name in ("synthetic.nc", "reconstruction.nc"):
        with xr.open_dataset(out / "05_render" / name) as ds:
            r = ds["reflectance"].values
            assert r.shape[:2] == (mod.SMOKE["size"], mod.SMOKE["size"]) and r.shape[2] >= 200
            assert np.isfinite(r).mean() > 0.99 and 0 < np.nanmean(r) < 1.5
    rec = json.loads((out / "06_validate/reconstruction.json").read_text())["metrics"]
    # the unmixed maps rendered back through PRISMA reproduce the input up to sensor noise
    assert rec["n_bands_matched"] >= 200 and rec["sad_deg"] < 3.0 and rec["psnr_db"] > 30
    real = json.loads((out / "06_validate/realism.json").read_text())["metrics"]
    assert real["n_real"] == 1 and real["n_synth"] == mod.SMOKE["n_generate"]
    assert all(np.isfinite(v) for v in real.values())


def test_refuses_a_non_empty_output_folder(tmp_path):
    mod = _load_example()
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(SystemExit, match="not empty"):
        mod.main(["--smoke", "--in-process", "--out", str(tmp_path)])
    assert (tmp_path / "x").read_text() == "keep me"
