"""Benchmark of the unmixing dictionary (issue 3): accuracy on bundled Samson/Jasper, FCLS speed, full scene.

Protocol (HySUPP, docs/unmixing.md): cube divided by its maximum; Samson p = 3, Jasper Ridge p = 4; every
method × seeds; Hungarian alignment on abundance distance; SAD (deg) and aRMSE (×100); mean ± sample std
over seeds; wall seconds per run (``Unmixer.fit`` runtime). Oracle: FCLS with the ground-truth endmembers.

    nice -n 10 .venv/bin/python benchmarks/bench_unmixing.py                       # everything
    .venv/bin/python benchmarks/bench_unmixing.py --methods vca-fcls,sisal-fcls --seeds 0 1 2 --no-scene
    .venv/bin/python benchmarks/bench_unmixing.py --only fcls                        # FCLS speed only
    # the final numbers: one quiet run per method group, then merge the JSON files into the tables
    OMP_NUM_THREADS=2 /work/notes/quiet.sh .venv/bin/python benchmarks/bench_unmixing.py --only accuracy \
        --threads 2 --methods cnnaeu --json cnnaeu.json
    .venv/bin/python benchmarks/bench_unmixing.py --merge geo.json cnnaeu.json pgmsu.json ...

``--threads N`` sets torch's intra-op threads to N and passes ``num_threads=N`` to methods that take it
(set ``OMP_NUM_THREADS`` to the same N in the environment for numpy/OpenBLAS). The "vs reference" table
compares with HySUPP's Python implementations timed on an idle 2-core machine (``REFERENCE`` below,
from the project's metrics notes); NMF-QMV and the Bayesian sampler have MATLAB references only.

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

#: HySUPP (BehnoodRasti/HySUPP @ cb7d633) with its default hyperparameters, CPU torch, idle 2-core machine:
#: (SAD deg, aRMSE x100, wall s) mean over 3 seeds, on the same bundled scenes and protocol.
REFERENCE: dict[str, dict[str, tuple[float, float, float]]] = {
    "vca-fcls": {"samson": (5.7, 10.0, 3.7), "jasper_ridge": (19.2, 23.7, 4.0)},
    "sisal-fcls": {"samson": (10.8, 34.3, 3.1), "jasper_ridge": (13.5, 21.6, 5.3)},
    "pgmsu": {"samson": (4.5, 12.3, 32.8), "jasper_ridge": (15.8, 18.9, 55.6)},
    "cnnaeu": {"samson": (3.3, 21.9, 94.4), "jasper_ridge": (8.7, 22.0, 211.6)},
    "edaa": {"samson": (4.7, 14.2, 257.3), "jasper_ridge": (6.2, 17.8, 312.0)},
}
#: Methods whose only reference implementation is MATLAB (no timing comparison possible here).
MATLAB_ONLY = {"nmfqmv": "NMF-QMV (Zhuang et al. 2019, MATLAB)", "bayes": "Dobigeon et al. 2009 (MATLAB)"}


def _mean_std(v: list[float]) -> str:
    a = np.asarray(v, dtype=np.float64)
    if a.size == 0 or not np.isfinite(a).any():
        return "–"
    s = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    return f"{np.mean(a):.2f} ± {s:.2f}"


def _cpu_timed(fn, out: list[float]):
    """Wrap ``fn`` so that its process CPU seconds are appended to ``out``."""

    def wrapped(*args, **kwargs):
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            out.append(time.process_time() - t0)

    return wrapped


def bench_accuracy(methods: list[str], seeds: list[int], datasets: list[str], threads: int | None = None,
                   oracle: bool = True) -> dict:
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
        if oracle:
            rows["oracle FCLS (true E)"] = {"sad": [0.0], "armse": [sc["armse"]], "runtime_s": [t_or]}
        for m in methods:
            r = {"sad": [], "armse": [], "runtime_s": [], "rmse": [], "seeds": list(seeds)}
            for s in seeds:
                est = get_method(m)(p, seed=s)
                if threads is not None and hasattr(est, "num_threads"):
                    est.num_threads = threads
                cpu: list[float] = []
                est._fit = _cpu_timed(est._fit, cpu)  # same interval as runtime_s (the method, no I/O)
                res = est.fit(ds.cube)
                sc = score_result(res, ds)
                r["sad"].append(sc["sad_deg"])
                r["armse"].append(sc["armse"])
                r["runtime_s"].append(float(res.attrs["runtime_s"]))
                r.setdefault("cpu_s", []).append(cpu[0])
                r["rmse"].append(float(res.attrs["rmse"]))
                print(f"  {name} {m} seed={s}: SAD {sc['sad_deg']:.2f} aRMSE {sc['armse']:.2f} "
                      f"{res.attrs['runtime_s']:.2f}s wall {cpu[0]:.2f}s CPU", file=sys.stderr, flush=True)
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


def print_accuracy(acc: dict, seeds: list[int] | None = None) -> None:
    """Markdown table: mean ± std SAD, aRMSE and mean wall seconds per method per dataset."""
    print(f"\n### Accuracy (mean ± std over seeds {seeds})\n" if seeds else "\n### Accuracy\n")
    names = list(acc)
    print("| method | " + " | ".join(f"{n} seeds | {n} SAD° | {n} aRMSE | {n} wall s | {n} CPU s" for n in names)
          + " |")
    print("|---|" + "---|---|---|---|---|" * len(names))
    rows = list(dict.fromkeys(k for n in names for k in acc[n]))
    for m in rows:
        cells = []
        for n in names:
            r = acc[n].get(m)
            cells += ([str(len(r["sad"])), _mean_std(r["sad"]), _mean_std(r["armse"]),
                       f"{np.mean(r['runtime_s']):.2f}", f"{np.mean(r['cpu_s']):.2f}" if r.get("cpu_s") else "–"]
                      if r else ["–"] * 5)
        print(f"| {m} | " + " | ".join(cells) + " |")


def _verdict(r: dict, ref: tuple[float, ...]) -> str:
    """Whether our mean SAD and aRMSE are at least as good as the reference's (lower is better)."""
    sad_ok = float(np.mean(r["sad"])) <= ref[0]
    armse_ok = float(np.mean(r["armse"])) <= ref[1]
    if sad_ok and armse_ok:
        return "equal or better on both"
    if not sad_ok and not armse_ok:
        return "worse on both"
    return "better SAD, worse aRMSE" if sad_ok else "better aRMSE, worse SAD"


def _ours(r: dict) -> tuple[str, float, float]:
    """``("SAD / aRMSE" means, mean wall s, mean CPU s (wall s when not recorded))`` of one method's runs."""
    t = float(np.mean(r["runtime_s"]))
    return f"{np.mean(r['sad']):.2f} / {np.mean(r['armse']):.2f}", t, float(np.mean(r["cpu_s"])) if r.get("cpu_s") else t


def print_vs_reference(acc: dict) -> None:
    """Markdown table: our mean seconds / HySUPP's, and both accuracies, per method per dataset."""
    print("\n### Against the reference anchors (HySUPP, docs/metrics.md: another day, 2 threads)\n")
    print("Speed-up = anchor wall s / our CPU s (one thread).\n")
    print("| method | dataset | ours SAD° / aRMSE | reference SAD° / aRMSE | accuracy vs reference | ours wall s "
          "| ours CPU s | reference wall s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in acc:
        for m, r in acc[n].items():
            ref = REFERENCE.get(m, {}).get(n)
            ours, t, c = _ours(r)
            if ref is not None:
                print(f"| {m} | {n} | {ours} | {ref[0]} / {ref[1]} | {_verdict(r, ref)} | {t:.2f} | {c:.2f} "
                      f"| {ref[2]} | {ref[2] / c:.1f}× |")
            elif m in MATLAB_ONLY:
                print(f"| {m} | {n} | {ours} | {MATLAB_ONLY[m]}: no Python reference | – | {t:.2f} | {c:.2f} "
                      "| – | – |")


def print_vs_measured_reference(acc: dict, ref_acc: dict, threads: object = "?") -> None:
    """Markdown table: our seconds against HySUPP's timed on this machine by ``bench_hysupp.py``.

    Speed-up = reference CPU s / our CPU s, both with the same thread count; two accuracy verdicts: against
    the reference run here (its mean scores over its seeds) and against the anchors (``REFERENCE``: 3 seeds).
    """
    print(f"\n### Against the reference implementations timed on this machine ({threads} thread(s) each)\n")
    print("| method | dataset | ours SAD° / aRMSE | reference here: seeds, SAD° / aRMSE | accuracy vs reference here "
          "| accuracy vs anchor | ours CPU s | reference CPU s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in acc:
        for m, r in acc[n].items():
            ref = ref_acc.get(n, {}).get(m)
            if ref is None:
                continue
            ours, _, c = _ours(r)
            rc = float(np.mean(ref["cpu_s"]))
            anchor = REFERENCE.get(m, {}).get(n)
            verdict = _verdict(r, anchor) if anchor else "–"
            here = _verdict(r, (float(np.mean(ref["sad"])), float(np.mean(ref["armse"]))))
            print(f"| {m} | {n} | {ours} | {len(ref['sad'])}: {_ours(ref)[0]} | {here} | {verdict} | {c:.2f} "
                  f"| {rc:.1f} | {rc / c:.1f}× |")


def merge_results(paths: list[str]) -> dict:
    """Merge the ``accuracy`` parts of several ``--json`` files (later files win for the same method)."""
    acc: dict = {}
    for path in paths:
        with open(path) as fh:
            part = json.load(fh).get("accuracy", {})
        for n, rows in part.items():
            acc.setdefault(n, {}).update(rows)
    return acc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--datasets", default="samson,jasper_ridge")
    ap.add_argument("--only", choices=["accuracy", "fcls", "scene"], default=None)
    ap.add_argument("--no-scene", action="store_true", help="skip the 1000×1000×234 full-scene run")
    ap.add_argument("--no-oracle", action="store_true", help="leave out the oracle FCLS row")
    ap.add_argument("--scene-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads, also passed as num_threads to methods that take it")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="print the tables from earlier --json files and exit")
    ap.add_argument("--reference-json", nargs="+", default=None, metavar="JSON",
                    help="with --merge: HySUPP timed on this machine (bench_hysupp.py --json files)")
    ap.add_argument("--json", default=None, help="also save the raw numbers to this JSON file")
    ap.add_argument("--_scene-child", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._scene_child:
        _scene_child(*a._scene_child)
        return
    if a.merge:
        acc = merge_results(a.merge)
        print_accuracy(acc)
        print_vs_reference(acc)
        if a.reference_json:
            threads = set()
            for path in a.reference_json:
                with open(path) as fh:
                    threads.add(json.load(fh).get("threads", "?"))
            print_vs_measured_reference(acc, merge_results(a.reference_json), "/".join(map(str, sorted(threads))))
        return
    if a.threads is not None:
        import torch

        torch.set_num_threads(a.threads)
    from simhsi.unmixing import available_methods

    methods = available_methods() if not a.methods else [m.strip() for m in a.methods.split(",") if m.strip()]
    results: dict = {"threads": a.threads or os.environ.get("OMP_NUM_THREADS", "default"),
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "default"), "cpus": os.cpu_count(),
                     "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "load_avg": os.getloadavg()}
    if a.only in (None, "accuracy"):
        acc = bench_accuracy(methods, a.seeds, [d.strip() for d in a.datasets.split(",")], threads=a.threads,
                             oracle=not a.no_oracle)
        results["accuracy"] = acc
        print_accuracy(acc, a.seeds)
        print_vs_reference(acc)
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
