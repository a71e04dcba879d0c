"""examples/benchmark_dataset: make a tiny benchmark, check its ground truth, score it (smoke mode)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2] / "examples" / "benchmark_dataset"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", ROOT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


make = _load("make_benchmark")
score = _load("score_benchmark")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert make.main(["--out", str(out), "--smoke", "--seed", "3"]) == 0
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_index_lists_scenes_and_settings(bench):
    index = json.loads((bench / "index.json").read_text())
    rows = _csv(bench / "index.csv")
    assert [s["scene_id"] for s in index["scenes"]] == ["scene_000", "scene_001"] == [r["scene_id"] for r in rows]
    s0, s1 = index["scenes"]
    assert (s0["p"], s1["p"]) == (3, 4) and (s0["seed"], s1["seed"]) == (3, 4)
    assert (s0["snr_scale"], s1["snr_scale"]) == (1.0, 0.1)
    assert s0["snr_db"] > s1["snr_db"] + 15  # 10x the noise sigma is 20 dB less SNR
    assert index["settings"]["sensor"] == "prisma" and index["settings"]["smoke"] is True
    for s in index["scenes"]:
        assert (bench / s["netcdf"]).is_file() and (bench / s["mat"]).is_file()
        assert len(s["endmember_names"].split(";")) == s["p"] and s["min_pair_angle_deg"] >= 5.0


def test_netcdf_ground_truth_is_consistent(bench):
    from simhsi.io.netcdf import open_dataset

    s = json.loads((bench / "index.json").read_text())["scenes"][1]
    ds = open_dataset(bench / s["netcdf"]).load()
    A = ds["abundances"].transpose("endmember", "y", "x").values.astype(np.float64)
    E = ds["endmembers"].transpose("endmember", "band").values.astype(np.float64)
    clean = ds["clean"].transpose("y", "x", "band").values.astype(np.float64)
    noisy = ds["reflectance"].transpose("y", "x", "band").values.astype(np.float64)
    assert A.shape == (4, 24, 24) and E.shape == (4, 234) and noisy.shape == (24, 24, 234)
    assert np.all(np.isfinite(noisy)) and A.min() >= -1e-6 and np.allclose(A.sum(0), 1, atol=1e-4)
    np.testing.assert_allclose(np.einsum("pb,pyx->yxb", E, A), clean, atol=1e-5)  # clean = E A exactly
    snr = 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))
    assert snr == pytest.approx(s["snr_db"], abs=0.01)
    assert ds.attrs["seed"] == s["seed"] and ds.attrs["snr_scale"] == 0.1 and ds.attrs["sensor"] == "prisma"
    assert [str(n) for n in ds["endmember"].values] == s["endmember_names"].split(";")


def test_mat_is_hysupp_layout_and_round_trips(bench):
    import scipy.io as sio

    import simhsi.io
    from simhsi.io.mat import read_mat_ground_truth
    from simhsi.io.netcdf import open_dataset

    s = json.loads((bench / "index.json").read_text())["scenes"][0]
    d = sio.loadmat(bench / s["mat"])
    H, W, p, L, N = (int(d[k].item()) for k in ("H", "W", "p", "L", "N"))
    assert (H, W, p, L, N) == (24, 24, 3, 234, 576)
    # the checks HySUPP's HSIWithGT loader makes
    assert d["Y"].shape == (L, N) and d["E"].shape == (L, p) and d["A"].shape == (p, N)
    assert np.allclose(d["A"].sum(0), 1, atol=1e-3) and d["A"].min() >= -1e-6 and d["E"].min() >= 0
    assert [x.strip() for x in d["labels"]] == s["endmember_names"].split(";")
    np.testing.assert_allclose(d["E"] @ d["A"], d["Y_clean"], atol=1e-5)
    ds = open_dataset(bench / s["netcdf"]).load()
    # column-major pixel order: pixel n is (y = n mod H, x = n div H)
    n = 5 + 7 * H
    np.testing.assert_allclose(d["Y"][:, n], ds["reflectance"].values[5, 7], atol=1e-6)
    wl, fw = d["wavelength"].ravel(), d["fwhm"].ravel()
    cube = simhsi.io.open_cube(bench / s["mat"], wavelength=wl, fwhm=fw)
    np.testing.assert_allclose(cube.values, ds["reflectance"].values, atol=1e-6)
    np.testing.assert_allclose(cube["wavelength"].values, ds["wavelength"].values)
    gt = read_mat_ground_truth(bench / s["mat"], wavelength=wl, fwhm=fw)
    np.testing.assert_allclose(gt["abundances"].values, ds["abundances"].values, atol=1e-7)
    np.testing.assert_allclose(gt["endmembers"].values, ds["endmembers"].values, atol=1e-7)


def test_score_ours_external_and_hysupp_layout(bench, tmp_path):
    import scipy.io as sio

    out = tmp_path / "s1"
    assert score.main(["--bench", str(bench), "--out", str(out), "--smoke", "--save-results"]) == 0
    rows = _csv(out / "scores.csv")
    assert {r["method"] for r in rows} == {score.ORACLE, "vca-fcls", "nfindr-fcls"} and len(rows) == 6
    for sid in ("scene_000", "scene_001"):
        sc = {r["method"]: r for r in rows if r["scene_id"] == sid}
        assert float(sc[score.ORACLE]["sad_deg"]) < 1e-3
        for m in ("vca-fcls", "nfindr-fcls"):
            r = sc[m]
            assert r["status"] == "ok" and 0 < float(r["sad_deg"]) < 90 and float(r["runtime_s"]) > 0
            assert float(sc[score.ORACLE]["armse"]) < float(r["armse"]) < 100
    md = (out / "scores.md").read_text()
    assert "vca-fcls" in md and "scene_001 (p=4" in md and "±" in md
    report = json.loads((out / "scores.json").read_text())
    assert [s["method"] for s in report["summary"]] == [score.ORACLE, "vca-fcls", "nfindr-fcls"]
    vca = [r for r in rows if r["method"] == "vca-fcls"]
    want = np.mean([float(r["sad_deg"]) for r in vca])
    assert report["summary"][1]["sad_deg_mean"] == pytest.approx(want)

    # our saved estimates, scored as an external tool's, give the same numbers
    ext = out / "results" / "vca-fcls_seed0"
    # HySUPP's Estimate layout for scene_001: A as A.reshape(p, H, W) of the (p, N) matrix
    hys = tmp_path / "hysupp"
    hys.mkdir()
    d = sio.loadmat(ext / "scene_001.mat")
    sio.savemat(hys / "scene_001.mat", {"E": d["E"], "A": d["A"].reshape(4, 24, 24)})
    sio.savemat(hys / "scene_000.mat", {"E": d["E"], "A": d["A"]})  # wrong p for scene_000: an error row
    out2 = tmp_path / "s2"
    assert score.main(["--bench", str(bench), "--out", str(out2), "--methods", "none", "--no-oracle",
                       "--external", f"ours={ext}", "--external", f"hys={hys}"]) == 0
    rows2 = _csv(out2 / "scores.csv")
    ours = {r["scene_id"]: r for r in rows2 if r["method"] == "ours"}
    for r in vca:
        for k in ("sad_deg", "armse", "ermse"):
            assert float(ours[r["scene_id"]][k]) == pytest.approx(float(r[k]), abs=1e-9)
    hy = {r["scene_id"]: r for r in rows2 if r["method"] == "hys"}
    assert float(hy["scene_001"]["armse"]) == pytest.approx(float(ours["scene_001"]["armse"]), abs=1e-9)
    assert hy["scene_000"]["status"].startswith("error") and hy["scene_001"]["status"] == "ok"


def test_score_netcdf_input_and_errors(bench, tmp_path):
    from simhsi.errors import OutputError, ParameterError

    out = tmp_path / "nc"
    assert score.main(["--bench", str(bench), "--out", str(out), "--methods", "none", "--input", "netcdf",
                       "--scenes", "scene_001"]) == 0
    rows = _csv(out / "scores.csv")
    assert len(rows) == 1 and rows[0]["scene_id"] == "scene_001" and float(rows[0]["sad_deg"]) < 1e-3
    assert 0 < float(rows[0]["armse"]) < 5
    with pytest.raises(OutputError):
        score.main(["--bench", str(bench), "--out", str(out), "--methods", "none"])
    with pytest.raises(ParameterError, match="unknown unmixing method"):
        score.main(["--bench", str(bench), "--out", str(tmp_path / "x"), "--methods", "no-such-method"])
    with pytest.raises(OutputError):
        make.main(["--out", str(bench), "--smoke"])


@pytest.mark.slow
def test_make_with_a_ddpm_model(tmp_path):
    """--model: abundances from a (tiny, random-weight) trained-model directory (~15-35 s: marked slow)."""
    torch = pytest.importorskip("torch")
    from simhsi.diffusion.config import TrainConfig
    from simhsi.diffusion.model import build_scheduler, build_unet, make_meta, save_model
    from simhsi.io.netcdf import open_dataset

    cfg = TrainConfig(patch_size=16, block_out_channels=[16, 32], attention_resolutions=[8], norm_num_groups=8,
                      attention_head_dim=8, layers_per_block=1, p_values=[3], num_train_timesteps=40, dropout=0.0)
    torch.manual_seed(0)
    unet = build_unet(cfg, methods=["vca-fcls"])
    model = tmp_path / "model"
    model.mkdir()
    save_model(model, unet, None, build_scheduler(cfg), make_meta(cfg, ["vca-fcls"]), cfg)
    out = tmp_path / "b"
    assert make.main(["--out", str(out), "--smoke", "--n-scenes", "1", "--size", "16", "--p", "3",
                      "--model", str(model)]) == 0
    ds = open_dataset(out / "scenes" / "scene_000.nc").load()
    assert "ddpm" in ds.attrs["abundance_generator"] and ds["abundances"].shape == (3, 16, 16)
    assert np.allclose(ds["abundances"].sum("endmember"), 1, atol=1e-4)
