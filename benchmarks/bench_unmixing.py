"""Benchmark of the unmixing dictionary (issue 3): accuracy on bundled Samson/Jasper, FCLS speed, full scene.

Protocol (HySUPP, docs/unmixing.md): cube divided by its maximum; Samson p = 3, Jasper Ridge p = 4; every
method × seeds; Hungarian alignment on abundance distance; SAD (deg) and aRMSE (×100); mean ± sample std
over seeds; wall seconds per run (``Unmixer.fit`` runtime). Oracle: FCLS with the ground-truth endmembers.

    nice -n 10 .venv/bin/python benchmarks/bench_unmixing.py                       # everything
    .venv/bin/python benchmarks/bench_unmixing.py --methods vca-fcls,sisal-fcls --seeds 0 1 2 --no-scene
    .venv/bin/python benchmarks/bench_unmixing.py --only fcls                        # FCLS speed only

Prints Markdown tables (paste into docs/benchmarks/unmixing.md); ``--json FILE`` saves the raw numbers.
Uses only data shipped with simhsi (simhsi.data) and synthetic scenes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DATASETS = {"samson": 3, "jasper_ridge": 4}


def _mean_std(v: list[float]) -> str:
    a = np.asarray(v, dtype=np.float64)
    if a.size == 0 or not np.isfinite(a).any():
        return "–"
    s = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    return f"{np.mean(a):.2f} ± {s:.2f}"


def bench_accuracy(methods: list[str], seeds: list[int], datasets: list[str]) -> dict:
    import simhsi.data
    from simhsi.metrics.unmixing import score_result, unmixing_scores
    from simhsi.unmixing import get_method
    from simhsi.unmixing._base import prepare
    from simhsi.unmixing.fcls import fcls

    out: dict = {}
    for name in datasets:
        p = DATASETS[name]
        ds = simhsi.data.load(name, normalize=True)
        rows: dict = {}
        # oracle: FCLS with the true endmembers on the normalised cube
        prep = prepare(ds.cube, p)
        E_gt = ds["endmembers"].transpose("endmember", "band").values.T.astype(np.float64)
        t0 = time.perf_counter()
        A = fcls(prep.Y, E_gt / prep.scale)
        t_or = time.perf_counter() - t0
        A_gt = ds["abundances"].transpose("endmember", "y", "x").values.reshape(p, -1)
        sc = unmixing_scores(E_gt, A, E_gt, A_gt[:, prep.mask.ravel()], aligned=True)
        rows["oracle FCLS (true E)"] = {"sad": [0.0], "armse": [sc["armse"]], "runtime_s": [t_or]}
        for m in methods:
            r = {"sad": [], "armse": [], "runtime_s": [], "rmse": []}
            for s in seeds:
                res = get_method(m)(p, seed=s).fit(ds.cube)
                sc = score_result(res, ds)
                r["sad"].append(sc["sad_deg"])
                r["armse"].append(sc["armse"])
                r["runtime_s"].append(float(res.attrs["runtime_s"]))
                r["rmse"].append(float(res.attrs["rmse"]))
                print(f"  {name} {m} seed={s}: SAD {sc['sad_deg']:.2f} aRMSE {sc['armse']:.2f} "
                      f"{res.attrs['runtime_s']:.2f}s", file=sys.stderr, flush=True)
            rows[m] = r
        out[name] = rows
    return out


def bench_fcls(n_pixels: int = 100_000, n_bands: int = 234, p: int = 5, repeats: int = 3) -> dict:
    """FCLS throughput on a synthetic problem, plus a one-QP-per-pixel baseline on a subset."""
    from scipy.optimize import nnls

    from simhsi.unmixing.fcls import fcls

    rng = np.random.default_rng(0)
    E = 0.1 + 0.8 * rng.random((n_bands, p))
    A = rng.dirichlet(np.full(p, 0.5), n_pixels).T
    Y = (E @ A + rng.normal(0, 0.01, (n_bands, n_pixels))).astype(np.float32)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        Ah = fcls(Y, E)
        times.append(time.perf_counter() - t0)
    best = min(times)
    # per-pixel baseline: scipy NNLS with a weighted sum-to-one row (one small solve per pixel)
    n_base = 2000
    Ea = np.vstack([E, 1e3 * np.ones((1, p))])
    t0 = time.perf_counter()
    for i in range(n_base):
        nnls(Ea, np.r_[Y[:, i].astype(np.float64), 1e3])
    t_base = time.perf_counter() - t0
    return {"n_pixels": n_pixels, "n_bands": n_bands, "p": p, "best_s": best, "times_s": times,
            "px_per_s": n_pixels / best, "per_pixel_nnls_px_per_s": n_base / t_base,
            "min_abundance": float(Ah.min()), "max_sum_error": float(np.abs(Ah.sum(0) - 1).max())}


def _scene_child(size: int, n_bands: int, p: int) -> None:
    """Run in a fresh process: build a synthetic size×size×n_bands float32 scene, time VCA+FCLS."""
    from simhsi.conventions import make_cube
    from simhsi.unmixing import get_method

    rng = np.random.default_rng(0)
    wl = np.linspace(400, 2500, n_bands)
    t = (wl - wl[0]) / (wl[-1] - wl[0])
    E = np.stack([0.1 + 0.5 * np.abs(np.sin(2 * np.pi * (j + 1) * t + j)) for j in range(p)], axis=1)
    data = np.empty((size * size, n_bands), dtype=np.float32)
    step = 100_000
    for s in range(0, size * size, step):
        n = min(step, size * size - s)
        A = rng.dirichlet(np.full(p, 0.5), n)
        data[s:s + n] = A @ E.T + rng.normal(0, 0.005, (n, n_bands))
    cube = make_cube(data.reshape(size, size, n_bands), wl)
    rss_cube = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    t0 = time.perf_counter()
    res = get_method("vca-fcls")(p, seed=0).fit(cube)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"size": size, "n_bands": n_bands, "p": p, "wall_s": wall,
                      "method_runtime_s": float(res.attrs["runtime_s"]), "peak_rss_gib": rss,
                      "rss_after_building_cube_gib": rss_cube, "cube_gib": data.nbytes / 1024**3}))


def bench_scene(size: int = 1000, n_bands: int = 234, p: int = 5) -> dict:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, __file__, "--_scene-child", str(size), str(n_bands), str(p)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--datasets", default="samson,jasper_ridge")
    ap.add_argument("--only", choices=["accuracy", "fcls", "scene"], default=None)
    ap.add_argument("--no-scene", action="store_true", help="skip the 1000×1000×234 full-scene run")
    ap.add_argument("--scene-size", type=int, default=1000)
    ap.add_argument("--json", default=None, help="also save the raw numbers to this JSON file")
    ap.add_argument("--_scene-child", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._scene_child:
        _scene_child(*a._scene_child)
        return
    from simhsi.unmixing import available_methods

    methods = available_methods() if not a.methods else [m.strip() for m in a.methods.split(",") if m.strip()]
    results: dict = {"threads": os.environ.get("OMP_NUM_THREADS", "default"), "cpus": os.cpu_count()}
    if a.only in (None, "accuracy"):
        acc = bench_accuracy(methods, a.seeds, [d.strip() for d in a.datasets.split(",")])
        results["accuracy"] = acc
        print(f"\n### Accuracy (mean ± std over seeds {a.seeds})\n")
        names = list(acc)
        print("| method | " + " | ".join(f"{n} SAD° | {n} aRMSE | {n} s" for n in names) + " |")
        print("|---|" + "---|---|---|" * len(names))
        rows = list(dict.fromkeys(k for n in names for k in acc[n]))
        for m in rows:
            cells = []
            for n in names:
                r = acc[n].get(m)
                cells += ([_mean_std(r["sad"]), _mean_std(r["armse"]), f"{np.mean(r['runtime_s']):.2f}"]
                          if r else ["–"] * 3)
            print(f"| {m} | " + " | ".join(cells) + " |")
    if a.only in (None, "fcls"):
        f = bench_fcls()
        results["fcls"] = f
        print(f"\n### FCLS speed ({f['n_pixels']} px × {f['n_bands']} bands × p = {f['p']})\n")
        print(f"best of {len(f['times_s'])}: {f['best_s']:.3f} s = {f['px_per_s']:,.0f} px/s "
              f"(per-pixel scipy NNLS baseline here: {f['per_pixel_nnls_px_per_s']:,.0f} px/s; "
              f"HySUPP cvxopt reference: 2,500 px/s)")
    if a.only == "scene" or (a.only is None and not a.no_scene):
        s = bench_scene(a.scene_size)
        results["scene"] = s
        print(f"\n### Full scene ({s['size']}×{s['size']}×{s['n_bands']}, float32, p = {s['p']}, VCA+FCLS)\n")
        print(f"wall {s['wall_s']:.1f} s (fit runtime {s['method_runtime_s']:.1f} s), peak RSS "
              f"{s['peak_rss_gib']:.2f} GiB of which the input cube {s['cube_gib']:.2f} GiB "
              f"(RSS after building the cube {s['rss_after_building_cube_gib']:.2f} GiB)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
