"""Helpers of benchmarks/bench_generation.py: disjoint real halves, matched-n floor, merging of runs."""

import json

import numpy as np
import pytest
from conftest import load_benchmark

from simhsi.metrics.realism import DISTANCES
from simhsi.simplex import project_simplex


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_generation")


def _coded_map(h, w, scene_id):
    """(3, h, w) map whose channels encode the row, the column and the scene of each pixel."""
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    return np.stack([yy, xx, np.full((h, w), float(scene_id))])


def test_split_halves_share_no_pixel_and_keep_scenes_together(bench):
    maps = [("s1", _coded_map(40, 24, 1)), ("s1", _coded_map(40, 24, 1) + 0.0), ("s2", _coded_map(50, 30, 2))]
    for seed in range(4):
        a, b = bench.split_halves(maps, size=8, stride=4, seed=seed)
        assert a.shape[1:] == (3, 8, 8) and b.shape[1:] == (3, 8, 8)
        for sid, h in ((1, 40), (2, 50)):
            rows_a = {int(v) for p in a if p[2, 0, 0] == sid for v in np.unique(p[0])}
            rows_b = {int(v) for p in b if p[2, 0, 0] == sid for v in np.unique(p[0])}
            assert rows_a and rows_b
            assert rows_a.isdisjoint(rows_b)  # no shared pixel
            assert rows_a | rows_b <= set(range(h))
            # each half lies entirely on one side of the middle row
            assert max(rows_a) < h // 2 <= min(rows_b) or max(rows_b) < h // 2 <= min(rows_a)


def test_split_halves_drops_nan_patches(bench):
    m = _coded_map(40, 24, 1)
    m[:, :20] = np.nan
    with pytest.raises(SystemExit):
        bench.split_halves([("s", m)], size=8, stride=4, seed=0)


def test_floor_is_matched_in_n_and_has_spread(bench):
    rng = np.random.default_rng(0)
    a = project_simplex(rng.gamma(0.5, size=(20, 3, 8, 8)), axis=1)
    b = project_simplex(rng.gamma(0.5, size=(20, 3, 8, 8)), axis=1)
    f = bench.floor(a, b, n=4, repeats=5, seed=0)
    assert f["n_synth"] == 4
    for d in DISTANCES:
        assert f[d] > 0 and f[f"{d}_std"] >= 0
    assert any(f[f"{d}_std"] > 0 for d in DISTANCES)
    assert bench.floor(a, b, n=4, repeats=5, seed=0) == f  # seeded


def test_memorisation_ratio_flags_copies(bench):
    rng = np.random.default_rng(1)
    a = project_simplex(rng.gamma(0.5, size=(12, 3, 8, 8)), axis=1)
    b = project_simplex(rng.gamma(0.5, size=(12, 3, 8, 8)), axis=1)
    nn_ba, nn_ab = bench.nn_median(b, a), bench.nn_median(a, b)
    copies = bench.score(b, a[:6] + 1e-6, a, nn_ba, nn_ab)
    fresh = bench.score(b, project_simplex(rng.gamma(0.5, size=(6, 3, 8, 8)), axis=1), a, nn_ba, nn_ab)
    assert copies["memorisation_ratio"] < 0.01
    assert fresh["memorisation_ratio"] > 0.5


def test_merge_pools_timings_and_checks_targets(bench, tmp_path):
    def run(p, cpu_ddpm, cpu_fast):
        sets = {"real A (floor), n=2": {"n_synth": 2, **{d: 1.0 for d in DISTANCES},
                                         **{f"{d}_std": 0.1 for d in DISTANCES}},
                "ddpm-2000, n=2": {"n_synth": 2, **{d: 1.0 for d in DISTANCES}},
                "dpmpp-20, n=2": {"n_synth": 2, **{d: 1.05 for d in DISTANCES}},
                "grf (spheric θ=8), n=2": {"n_synth": 2, **{d: 2.0 for d in DISTANCES}}}
        return {"command": f"run {p}", "model": "m", "model_step": 10, "machine": "x", "torch": "t", "threads": 1,
                "device": "cpu", "batch": 2, "wall_s": 5.0,
                "timing": {"ddpm-2000": {"wall_s": 2 * cpu_ddpm, "cpu_s": cpu_ddpm, "n_samples": 2, "steps": 2000,
                                         "nfe": 2000},
                           "dpmpp-20": {"wall_s": 2 * cpu_fast, "cpu_s": cpu_fast, "n_samples": 2, "steps": 20,
                                        "nfe": 20}},
                "realism": {str(p): {"real": {"n_A": 3, "n_B": 3, "n_maps": 1, "maps": ["s:gt"]},
                                     "grf_theta": 8.0, "sets": sets}}}

    files = []
    for p, cd, cf in ((3, 100.0, 1.0), (4, 300.0, 3.0)):
        f = tmp_path / f"p{p}.json"
        f.write_text(json.dumps(run(p, cd, cf)))
        files.append(str(f))
    res = bench.merge(files, str(tmp_path / "m.json"), str(tmp_path / "m.md"))
    assert res["timing"]["ddpm-2000"]["cpu_s_per_sample"] == pytest.approx(400.0 / 4)
    assert res["timing"]["dpmpp-20"]["n_samples"] == 4
    assert set(res["realism"]) == {"3", "4"}
    text = " ".join(res["targets"])
    assert "100.0× faster" in text and "met" in text
    assert "within 10 % (or one floor std) on 5/5" in text
    assert "closer to real than grf (spheric θ=8), n=2 on 5/5" in text
    md = (tmp_path / "m.md").read_text()
    assert "## Realism, p = 4" in md and "| ddpm-2000 | 2000 | 4 | 100.000 | 200.000 | 1.0× |" in md


def _sets(ddpm, fast, grf, floor=1.0, floor_std=0.1, n=4):
    def row(v):
        return {"n_synth": n, **{d: v[i] if isinstance(v, list) else v for i, d in enumerate(DISTANCES)}}

    return {f"real A (floor), n={n}": {**row(floor), **{f"{d}_std": floor_std for d in DISTANCES}},
            f"ddpm-2000, n={n}": row(ddpm), f"grf (spheric θ=8), n={n}": row(grf), f"dpmpp-sde-30, n={n}": row(fast)}


def test_compare_counts_wins_and_within(bench):
    # DDPM beats GRF on all but the last distance; the fast sampler is within 10 % on the first two, within one
    # floor std (0.1) on the third, and too far on the last two
    c = bench.compare(_sets(ddpm=[1.0] * 5, fast=[1.05, 1.1, 1.09 + 0.1 - 0.09, 1.3, 1.5], grf=[2, 2, 2, 2, 0.5]))
    assert c["ddpm_beats_grf"] == list(DISTANCES[:4])
    assert c["within"]["dpmpp-sde-30, n=4"] == list(DISTANCES[:3])
    assert c["at_floor"]["dpmpp-sde-30, n=4"] == []  # 1.3 and 1.5 are above the floor's 1.0 + 0.1
    assert c["rel"]["dpmpp-sde-30, n=4"][DISTANCES[3]] == pytest.approx(0.3)
    c = bench.compare(_sets(ddpm=[0.5] * 5, fast=[0.5, 0.5, 0.5, 1.1, 1.2], grf=[2] * 5))
    assert c["at_floor"]["dpmpp-sde-30, n=4"] == [DISTANCES[3]]  # DDPM below the floor, fast at floor + std
    assert bench.compare({"real A (floor), n=4": {}}) is None  # no DDPM set


def test_tally_sums_over_files(bench, tmp_path):
    files = []
    for seed, grf in ((0, [2.0] * 5), (1, [2, 2, 2, 2, 0.5])):
        f = tmp_path / f"s{seed}.json"
        f.write_text(json.dumps({"seed": seed, "realism": {"4": {"sets": _sets([1.0] * 5, [1.0] * 5, grf)}}}))
        files.append(str(f))
    md = bench.tally(files, str(tmp_path / "t.md"))
    assert "| DDPM beats GRF | 9/10 |" in md
    assert "| dpmpp-sde-30 within DDPM | 10/10 |" in md
    assert "| dpmpp-sde-30 within DDPM or at the real floor | 10/10 |" in md
    assert "| grf | 1.85 |" in md  # files: mean ratio 2.0 and (2 + 2 + 2 + 2 + 0.5) / 5 = 1.7; their mean
    assert (tmp_path / "t.md").read_text() == md


def test_reuse_ddpm_refuses_another_model_or_seed(bench, tmp_path):
    here = {"model_step": 10, "model_updated_utc": "t", "seed": 0, "guidance": 1.0, "method": "any"}
    f = tmp_path / "old.json"
    f.write_text(json.dumps({**here, "realism": {}}))
    assert bench._load_reuse(str(f), here, 4)["seed"] == 0
    with pytest.raises(SystemExit, match="seed"):
        bench._load_reuse(str(f), {**here, "seed": 1}, 4)
    with pytest.raises(SystemExit, match="model_step"):
        bench._load_reuse(str(f), {**here, "model_step": 11}, 4)
