"""Generation benchmark: sampler speed and realism of a trained model vs real maps and the GRF baseline.

Real reference data: the real abundance maps the model was trained on (by default the sources listed in
the model's ``simhsi_model.json``: the ``simhsi unmix`` outputs of the bundled scenes if the files exist,
plus the bundled ground truth). The default model was trained on ALL the bundled real maps, so there is no
held-out real scene: the comparison is against the training distribution, and the memorisation ratio is
the check that the model does not copy it. Each scene (all its maps: ground truth and every method's
unmixing) is cut into two spatial halves (top/bottom, which one goes to set A drawn with ``--seed``);
real patches (stride ``--real-stride``) of the A halves form set A, of the B halves set B. A and B share no
pixel. Every generated set is compared with B; the **real-vs-real floor** is a random subset of A of the
same size as the generated set compared with B (mean ± std over ``--floor-repeats`` subsets), so the floor
has the same finite-sample bias as the generated sets.

Per p (``--p 3,4,5``):

* DDPM ancestral with all T steps on ``--n-ddpm`` samples; the fast samplers (``--samplers``, default
  DDIM-50, DPM-Solver++-20, SDE-DPM-Solver++-20 and DPM-Solver++-10) on ``--n`` samples. Sample ``i``
  starts from the same noise in every sampler (seeded by (seed, i)), so the first ``--n-ddpm`` samples of
  a fast sampler are the matched set compared with DDPM.
* The Gaussian-random-field baseline (HIST-style, spheric kernel) with the range θ fitted on set A (the θ of
  a grid with the best rank sum of the distances), n samples.
* Timing: every sampler runs with the same batch size (``--batch``) and thread count; seconds per sample =
  time of ``generate_abundances`` / number of samples, both wall-clock and CPU time of the process
  (``time.process_time``; with one thread the CPU time is far less sensitive to other jobs on a shared
  machine). Speed-ups use the CPU time.

Runs for different p can go in parallel processes (``--p 3``, ``--p 4``, ...) and be combined by
``--merge a.json b.json ...`` (timings are pooled, realism tables concatenated).
``--tally a.json b.json ...`` counts the realism checks over many runs (seeds × p) and gives each set's mean
distance in real-vs-real floor units; ``--reuse-ddpm old.json`` scores new fast samplers against the DDPM
sets of an earlier run (same model, seed, guidance, method), e.g. made on a GPU.

Writes a JSON file (everything) and a Markdown report. Example (the numbers of docs/benchmarks/generation.md)::

    OMP_NUM_THREADS=2 python benchmarks/bench_generation.py --model simhsi/data/default_model \\
        --p 3,4,5 --n 32 --n-ddpm 8 --json build/bench_generation.json --out build/bench_generation.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

GRF_THETAS = (4.0, 8.0, 16.0, 32.0, 64.0)


# ---------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------
def training_sources(meta: dict[str, Any]) -> tuple[list[str], bool]:
    """(existing data files, include_bundled) named in the model's training summary."""
    sources = meta.get("training", {}).get("data", {}).get("sources", [])
    files = [s for s in sources if not s.startswith("simhsi.data:") and Path(s).is_file()]
    missing = [s for s in sources if not s.startswith("simhsi.data:") and not Path(s).is_file()]
    if missing:  # paths are as given to the training (relative to where it ran): say so, don't hide it
        print(f"warning: {len(missing)} training source(s) not found from {Path.cwd()} and left out of the real "
              f"sets: {', '.join(missing)} (run from the training's folder, or pass --data)", file=sys.stderr)
    bundled = any(s.startswith("simhsi.data:") for s in sources) or not sources
    return files, bundled


def _scene_name(source: str) -> str:
    """Scene identity shared by all maps of one scene (ground truth and unmixing runs)."""
    base = source.split("#")[0]
    if base.startswith("simhsi.data:"):
        return base.split(":", 1)[1]
    return Path(base).stem.removesuffix("_unmixed")


def _starts(n: int, size: int, stride: int) -> list[int]:
    s = list(range(0, n - size + 1, stride))
    if s and s[-1] != n - size:
        s.append(n - size)
    return s


def split_halves(
    maps: list[tuple[str, np.ndarray]], size: int, stride: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Real patch sets A and B from ``(scene_name, (p, H, W) map)`` pairs, with no shared pixel.

    Each scene is split into a top and a bottom half (at H // 2); per scene the half that goes to A is drawn
    with ``seed`` (the same for every map of the scene). Patches of ``size`` px on a grid of ``stride`` (plus
    the window flush with the edge) inside each half; patches with NaN are dropped.
    """
    rng = np.random.default_rng(seed)
    top_is_a: dict[str, bool] = {}
    a_set: list[np.ndarray] = []
    b_set: list[np.ndarray] = []
    for name, m in maps:
        if name not in top_is_a:
            top_is_a[name] = bool(rng.integers(0, 2))
        h = m.shape[1]
        halves = (m[:, : h // 2], m[:, h // 2 :])
        for k, half in enumerate(halves):
            if half.shape[1] < size or half.shape[2] < size:
                continue
            dest = a_set if (k == 0) == top_is_a[name] else b_set
            for y0 in _starts(half.shape[1], size, stride):
                for x0 in _starts(half.shape[2], size, stride):
                    patch = half[:, y0 : y0 + size, x0 : x0 + size]
                    if np.all(np.isfinite(patch)):
                        dest.append(patch)
    if not a_set or not b_set:
        raise SystemExit("not enough real data for two disjoint halves")
    return np.stack(a_set).astype(np.float64), np.stack(b_set).astype(np.float64)


def training_scenes(model_dir: str, p: int, data: list[str] | None = None,
                    include_bundled: bool | None = None) -> tuple[list[Any], list[str], bool]:
    """The real scenes with ``p`` endmembers among the model's training sources (or ``data``).

    Returns ``(scenes, files, bundled)``; each scene has ``.source``, ``.method``, ``.p``, ``.abundances``.
    """
    from simhsi.diffusion.config import TrainConfig
    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.model import read_meta

    meta = read_meta(model_dir)
    files, bundled = training_sources(meta)
    if data:
        files = data
    if include_bundled is not None:
        bundled = include_bundled
    size = int(meta["patch_size"])
    cfg = TrainConfig(patch_size=size, p_values=[int(v) for v in meta["p_values"]],
                      block_out_channels=[8] * (int(np.log2(int(meta["downsample_factor"]))) + 1),
                      norm_num_groups=8, attention_head_dim=8, attention_resolutions=[])
    scenes = [s for s in load_scenes(files, cfg, include_bundled=bundled) if s.p == p]
    if not scenes:
        raise SystemExit(f"no real scene with p={p} in {files} (bundled: {bundled})")
    return scenes, [str(f) for f in files], bool(bundled)


def real_sets(model_dir: str, p: int, data: list[str] | None, include_bundled: bool | None, stride: int,
              seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Sets A and B of real patches with ``p`` endmembers from the model's training sources (or ``data``)."""
    from simhsi.diffusion.model import read_meta

    scenes, files, bundled = training_scenes(model_dir, p, data, include_bundled)
    size = int(read_meta(model_dir)["patch_size"])
    maps = [(_scene_name(s.source), s.abundances) for s in scenes]
    a, b = split_halves(maps, size, stride, seed)
    info = {"files": files, "bundled": bundled, "n_maps": len(maps),
            "maps": sorted({f"{_scene_name(s.source)}:{s.method}" for s in scenes}),
            "n_A": len(a), "n_B": len(b)}
    return a, b, info


# ---------------------------------------------------------------------------------------------
# metrics helpers
# ---------------------------------------------------------------------------------------------
def nn_median(query: np.ndarray, ref: np.ndarray) -> float:
    """Median RMS distance of each query patch (channels sorted) to its nearest reference patch."""
    from simhsi.metrics.realism import _nn_rms, sort_channels

    return float(np.median(_nn_rms(sort_channels(query), sort_channels(ref))))


def score(ref_b: np.ndarray, synth: np.ndarray, set_a: np.ndarray, nn_ba: float, nn_ab: float) -> dict[str, float]:
    """Realism distances of ``synth`` to set B, and the memorisation check against both real halves.

    ``memorisation_ratio`` = min(median NN distance synth→A / B→A, synth→B / A→B): about 1 when generated
    patches are as far from the real ones as real patches of the other half are; well below 1 when the
    model reproduces training patches of either half.
    """
    from simhsi.metrics.realism import realism_metrics

    m = realism_metrics(ref_b, synth)
    m["nn_A_median"] = nn_median(synth, set_a)
    m["nn_B_median"] = nn_median(synth, ref_b)
    ratios = [m["nn_A_median"] / nn_ba if nn_ba > 1e-9 else float("nan"),
              m["nn_B_median"] / nn_ab if nn_ab > 1e-9 else float("nan")]
    m["memorisation_ratio"] = float(np.min(ratios))
    return m


def floor(set_a: np.ndarray, ref_b: np.ndarray, n: int, repeats: int, seed: int) -> dict[str, float]:
    """Real-vs-real floor: random ``n``-subsets of A vs B; mean and std (``<key>_std``) over ``repeats``."""
    from simhsi.metrics.realism import realism_metrics

    rng = np.random.default_rng([seed, n, 0xF100])
    runs = []
    for _ in range(repeats):
        idx = rng.choice(len(set_a), size=min(n, len(set_a)), replace=False)
        runs.append(realism_metrics(ref_b, set_a[idx]))
    out: dict[str, float] = {}
    for k in runs[0]:
        v = np.array([r[k] for r in runs])
        out[k] = float(v.mean())
        out[f"{k}_std"] = float(v.std(ddof=1)) if repeats > 1 else 0.0
    return out


def fit_grf_theta(set_a: np.ndarray, p: int, size: int, n: int, seed: int) -> float:
    """The spheric-kernel range θ (px) of :data:`GRF_THETAS` whose GRF maps best match set A (rank sum)."""
    from simhsi.diffusion.grf import gaussian_random_field_abundances
    from simhsi.metrics.realism import DISTANCES, realism_metrics

    ms = [realism_metrics(set_a, gaussian_random_field_abundances(n, (size, size), p, theta=t,
                                                                  seed=seed + 1000).values)
          for t in GRF_THETAS]
    ranks = np.zeros(len(GRF_THETAS))
    for d in DISTANCES:
        ranks += np.argsort(np.argsort([m[d] for m in ms]))
    return float(GRF_THETAS[int(np.argmin(ranks))])


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _fmt(m: dict[str, float], k: str) -> str:
    if k not in m:
        return "–"
    v = m[k]
    s = m.get(f"{k}_std")
    return f"{v:.4f} ± {s:.4f}" if s is not None else f"{v:.4f}"


def markdown(res: dict[str, Any]) -> str:
    from simhsi.metrics.realism import DISTANCES

    cols = [*DISTANCES, "memorisation_ratio"]
    L = ["# Generation benchmark (raw output of benchmarks/bench_generation.py)", "",
         f"Command: `{res['command']}`  ",
         f"Model: `{res['model']}` (training step {res['model_step']}); machine: {res['machine']}; "
         f"torch {res['torch']}, {res['threads']} thread(s), device {res['device']}, batch {res['batch']}; "
         f"total wall time {res['wall_s']:.0f} s.", "",
         "## Seconds per sample", "",
         "| sampler | network evaluations / sample | samples timed | CPU s / sample | wall s / sample "
         "| speed-up vs DDPM (CPU) |", "|---|---|---|---|---|---|"]
    t = res["timing"]
    ddpm = next((k for k in t if k.startswith("ddpm")), None)
    for k, v in t.items():
        su = f"{t[ddpm]['cpu_s_per_sample'] / v['cpu_s_per_sample']:.1f}×" if ddpm else "–"
        L.append(f"| {k} | {v['nfe']} | {v['n_samples']} | {v['cpu_s_per_sample']:.3f} | "
                 f"{v['wall_s_per_sample']:.3f} | {su} |")
    for p, r in res["realism"].items():
        L += ["", f"## Realism, p = {p}", "",
              f"Real: {r['real']['n_A']} patches in set A, {r['real']['n_B']} in set B (reference) from "
              f"{r['real']['n_maps']} maps ({', '.join(r['real']['maps'])}); GRF θ = {r['grf_theta']:g} px. "
              "Distances to set B, lower is closer; floor = mean ± std over random real subsets of the same n.",
              "", "| set | n | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
        for name, m in r["sets"].items():
            L.append(f"| {name} | {int(m['n_synth'])} | " + " | ".join(_fmt(m, k) for k in cols) + " |")
    if res.get("targets"):
        L += ["", "## Targets", ""] + [f"- {s}" for s in res["targets"]]
    return "\n".join(L) + "\n"


def within_ddpm(fast: dict[str, float], ddpm: dict[str, float], fl: dict[str, float]) -> list[str]:
    """Distances on which ``fast`` is "within 10 %" of ``ddpm``: at most 10 % or one floor std above it."""
    from simhsi.metrics.realism import DISTANCES

    return [d for d in DISTANCES if fast[d] <= 1.1 * ddpm[d] or fast[d] - ddpm[d] <= fl[f"{d}_std"]]


def compare(sets: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    """The issue's realism checks on one p's sets: DDPM vs GRF, and each DPM-Solver++ set vs DDPM (matched n).

    Returns None without a DDPM set; else ``{"n", "ddpm", "grf", "ddpm_beats_grf": [distances],
    "within": {fast set: [distances]}, "at_floor": {fast set: [distances not within DDPM but at most the
    real-vs-real floor mean + std]}, "rel": {fast set: {distance: relative difference}}}``.
    """
    from simhsi.metrics.realism import DISTANCES

    dd = next((k for k in sets if k.startswith("ddpm")), None)
    if dd is None:
        return None
    n_d = int(sets[dd]["n_synth"])
    fl = sets[f"real A (floor), n={n_d}"]
    g = next(k for k in sets if k.startswith("grf") and k.endswith(f"n={n_d}"))
    out: dict[str, Any] = {"n": n_d, "ddpm": dd, "grf": g,
                           "ddpm_beats_grf": [d for d in DISTANCES if sets[dd][d] < sets[g][d]],
                           "within": {}, "at_floor": {}, "rel": {}}
    for k in sets:
        if k.startswith("dpmpp") and k.endswith(f"n={n_d}"):
            out["within"][k] = within_ddpm(sets[k], sets[dd], fl)
            out["at_floor"][k] = [d for d in DISTANCES if d not in out["within"][k]
                                  and sets[k][d] <= fl[d] + fl[f"{d}_std"]]
            out["rel"][k] = {d: (sets[k][d] - sets[dd][d]) / max(sets[dd][d], 1e-12) for d in DISTANCES}
    return out


def targets(res: dict[str, Any]) -> list[str]:
    """Human-readable checks of the issue's targets (speed-up, realism within 10 %, DDPM vs GRF)."""
    from simhsi.metrics.realism import DISTANCES

    out = []
    t = res["timing"]
    ddpm = next((k for k in t if k.startswith("ddpm")), None)
    for k in t if ddpm else []:
        if k.startswith("dpmpp"):
            su = t[ddpm]["cpu_s_per_sample"] / t[k]["cpu_s_per_sample"]
            out.append(f"{k}: {su:.1f}× faster than {ddpm} (target ≥ 50×: {'met' if su >= 50 else 'MISSED'})")
    for p, r in res["realism"].items():
        c = compare(r["sets"])
        if c is None:
            continue
        for k, ok in c["within"].items():
            out.append(f"p={p}: {k} vs {c['ddpm']}: " + ", ".join(f"{d} {v:+.0%}" for d, v in c["rel"][k].items())
                       + f" — within 10 % (or one floor std) on {len(ok)}/{len(DISTANCES)} distances")
        better = c["ddpm_beats_grf"]
        out.append(f"p={p}: {c['ddpm']} closer to real than {c['grf']} on {len(better)}/{len(DISTANCES)} distances "
                   f"({', '.join(better) or 'none'})")
    return out


def tally(paths: list[str], md_path: str | None = None) -> str:
    """Count the realism checks over many result files (several seeds and p): a Markdown table.

    Per file and p: DDPM-vs-GRF wins and, per DPM-Solver++ set, the distances within DDPM; then totals (also
    counting, as "at the real floor", a distance not within DDPM but at most the floor mean + std) and
    each set's mean distance in units of the real-vs-real floor (distance / floor mean, averaged over the
    five distances; 1 = as close to the reference half as the other real half is).
    """
    from simhsi.metrics.realism import DISTANCES

    rows, totals, ratios = [], {}, {}
    nd = len(DISTANCES)
    for path in paths:
        res = json.loads(Path(path).read_text())
        for p, r in res["realism"].items():
            c = compare(r["sets"])
            if c is None:
                continue
            sets = r["sets"]
            fl = sets[f"real A (floor), n={c['n']}"]
            cells = []
            t = totals.setdefault("DDPM beats GRF", [0, 0])
            t[0] += len(c["ddpm_beats_grf"])
            t[1] += nd
            for k, ok in c["within"].items():
                name = k.rsplit(",", 1)[0]
                cells.append(f"{name} {len(ok)}/{nd}")
                t = totals.setdefault(f"{name} within DDPM", [0, 0])
                t[0] += len(ok)
                t[1] += nd
                t = totals.setdefault(f"{name} within DDPM or at the real floor", [0, 0])
                t[0] += len(ok) + len(c["at_floor"][k])
                t[1] += nd
            for k, m in sets.items():
                if k.startswith("real") or not k.endswith(f"n={c['n']}"):
                    continue
                name = "grf" if k.startswith("grf") else k.rsplit(",", 1)[0]
                ratios.setdefault(name, {}).setdefault(p, []).append(
                    float(np.mean([m[d] / max(fl[d], 1e-12) for d in DISTANCES])))
            rows.append(f"| {Path(path).name} | {p} | {res.get('seed', '–')} | {c['n']} | "
                        f"{len(c['ddpm_beats_grf'])}/{nd} | {', '.join(cells) or '–'} |")
    ps = sorted({p for v in ratios.values() for p in v})
    L = ["| file | p | seed | n | DDPM beats GRF | fast samplers within DDPM |", "|---|---|---|---|---|---|",
         *rows, "", "| check | count |", "|---|---|",
         *[f"| {k} | {a}/{b} |" for k, (a, b) in totals.items()], "",
         "| set | " + " | ".join(f"p = {p}: distance / floor" for p in ps) + " |", "|---|" + "---|" * len(ps),
         *[f"| {name} | " + " | ".join(f"{np.mean(v[p]):.2f}" if p in v else "–" for p in ps) + " |"
           for name, v in ratios.items()]]
    md = "\n".join(L) + "\n"
    if md_path:
        Path(md_path).parent.mkdir(parents=True, exist_ok=True)
        Path(md_path).write_text(md)
    return md


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (required unless --merge)")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="only combine earlier result files")
    ap.add_argument("--tally", nargs="+", metavar="JSON", help="only count the realism checks over result files "
                    "(several seeds / p) and write the table to --out")
    ap.add_argument("--reuse-ddpm", metavar="JSON", help="take the DDPM-T realism sets (not its timing) from an earlier "
                    "result file (same model step, p, seed, n-ddpm, guidance) instead of sampling them again")
    ap.add_argument("--p", default="3,4,5", help="comma-separated numbers of endmembers")
    ap.add_argument("--n", type=int, default=32, help="samples per fast sampler and p")
    ap.add_argument("--n-ddpm", type=int, default=8, help="DDPM-T samples per p (0: skip DDPM)")
    ap.add_argument("--samplers", default="ddim:50,dpmpp:20,dpmpp-sde:20,dpmpp:10",
                    help="fast samplers, name:steps")
    ap.add_argument("--batch", type=int, default=8, help="batch size of every sampler")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--method", default=None, help="condition on this method (default: any)")
    ap.add_argument("--data", action="append", default=None, help="real abundance files (default: the "
                    "model's training sources)")
    ap.add_argument("--no-bundled", action="store_true", help="leave out the bundled ground truth")
    ap.add_argument("--real-stride", type=int, default=8, help="stride of the real patches (px)")
    ap.add_argument("--floor-repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--save-samples", metavar="DIR", help="also save each sampler's maps as DIR/p<p>_<sampler>.npy")
    ap.add_argument("--json", default="build/bench_generation.json")
    ap.add_argument("--out", default="build/bench_generation.md")
    args = ap.parse_args(argv)
    if args.merge:
        merge(args.merge, args.json, args.out)
        return 0
    if args.tally:
        print(tally(args.tally, args.out))
        return 0
    if not args.model:
        ap.error("--model is required")

    import torch

    from simhsi.diffusion.generate import generate_abundances
    from simhsi.diffusion.grf import gaussian_random_field_abundances
    from simhsi.diffusion.model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    model = load_model(args.model)
    meta = model.meta
    size = int(meta["patch_size"])
    T = int(model.scheduler_config.get("num_train_timesteps", 1000))
    ps = [int(v) for v in args.p.split(",")]
    specs = ([("ddpm", T, args.n_ddpm)] if args.n_ddpm > 0 else []) + [
        (s.partition(":")[0], int(s.partition(":")[2]) if s.partition(":")[2] else None, args.n)
        for s in args.samplers.split(",") if s]
    res: dict[str, Any] = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
        "model": str(args.model), "model_step": meta.get("training", {}).get("steps"),
        "model_updated_utc": meta.get("training", {}).get("updated_utc"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": str(next(model.unet.parameters()).device), "batch": args.batch,
        "guidance": args.guidance, "method": args.method or "any", "seed": args.seed,
        "timing": {}, "realism": {},
    }
    reuse = _load_reuse(args.reuse_ddpm, res, args.n_ddpm) if args.reuse_ddpm else None
    if reuse is not None:
        specs = [sp for sp in specs if sp[0] != "ddpm"]
        res["ddpm_reused_from"] = args.reuse_ddpm
    timing: dict[str, dict[str, Any]] = {}
    for p in ps:
        set_a, ref_b, info = real_sets(args.model, p, args.data, False if args.no_bundled else None,
                                       args.real_stride, args.seed)
        nn_ba, nn_ab = nn_median(ref_b, set_a), nn_median(set_a, ref_b)
        sets: dict[str, dict[str, float]] = {}
        sizes = sorted({n for _, _, n in specs} | {args.n} | ({args.n_ddpm} if reuse is not None else set()))
        for n in sizes:
            sets[f"real A (floor), n={n}"] = floor(set_a, ref_b, n, args.floor_repeats, args.seed)
        samples: dict[str, np.ndarray] = {}
        for name, steps, n in specs:
            t0, c0 = time.perf_counter(), time.process_time()
            a = generate_abundances(model, n=n, p=p, method=args.method, guidance=args.guidance, sampler=name,
                                    steps=steps, seed=args.seed, batch_size=args.batch, progress=args.progress)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            label = f"{name}-{a.attrs['steps']}"
            tm = timing.setdefault(label, {"wall_s": 0.0, "cpu_s": 0.0, "n_samples": 0, "steps": int(a.attrs["steps"]),
                                           "nfe": int(a.attrs["steps"]) * (1 if args.guidance in (0.0, 1.0) else 2)})
            tm["wall_s"] += dt
            tm["cpu_s"] += dc
            tm["n_samples"] += n
            samples[label] = a.values.astype(np.float64)
            if args.save_samples:
                Path(args.save_samples).mkdir(parents=True, exist_ok=True)
                np.save(Path(args.save_samples) / f"p{p}_{label}.npy", a.values)
            print(f"p={p} {label}: {dc / n:.3f} CPU s/sample, {dt / n:.3f} wall s/sample (n={n})",
                  file=sys.stderr, flush=True)
        if reuse is not None:
            old = reuse["realism"].get(str(p), {}).get("sets", {})
            kept = {k: v for k, v in old.items() if k.startswith("ddpm") and k.endswith(f"n={args.n_ddpm}")}
            if not kept:
                raise SystemExit(f"--reuse-ddpm {args.reuse_ddpm}: no DDPM set with p={p}, n={args.n_ddpm}")
            sets.update(kept)
        theta = fit_grf_theta(set_a, p, size, args.n, args.seed)
        samples["grf"] = gaussian_random_field_abundances(args.n, (size, size), p, theta=theta,
                                                          seed=args.seed).values.astype(np.float64)
        n_d = args.n_ddpm
        for label, s in samples.items():
            name = f"grf (spheric θ={theta:g})" if label == "grf" else label
            sets[f"{name}, n={len(s)}"] = score(ref_b, s, set_a, nn_ba, nn_ab)
            if n_d and len(s) > n_d:
                sets[f"{name}, n={n_d}"] = score(ref_b, s[:n_d], set_a, nn_ba, nn_ab)
        order = sorted(sets, key=lambda k: (int(k.rsplit("n=", 1)[1]), not k.startswith("real"),
                                            not k.startswith("ddpm"), not k.startswith("grf")))
        res["realism"][str(p)] = {"real": info, "grf_theta": theta, "nn_B_to_A_median": nn_ba,
                                  "nn_A_to_B_median": nn_ab,
                                  "sets": {k: sets[k] for k in order}}
    res["timing"] = _per_sample(timing)
    res["wall_s"] = time.perf_counter() - t_start
    _write(res, args.json, args.out)
    return 0


def _load_reuse(path: str, res: dict[str, Any], n_ddpm: int) -> dict[str, Any]:
    """An earlier result file whose DDPM sets this run may reuse: same model step, seed, guidance, method."""
    old = json.loads(Path(path).read_text())
    for key in ("model_step", "model_updated_utc", "seed", "guidance", "method"):
        if old.get(key) != res[key]:
            raise SystemExit(f"--reuse-ddpm {path}: {key} is {old.get(key)!r} there, {res[key]!r} here")
    if n_ddpm < 1:
        raise SystemExit("--reuse-ddpm needs --n-ddpm >= 1 (the n of the DDPM sets to take)")
    return old


def _per_sample(timing: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for v in timing.values():
        v["cpu_s_per_sample"] = v["cpu_s"] / v["n_samples"]
        v["wall_s_per_sample"] = v["wall_s"] / v["n_samples"]
    return timing


def _write(res: dict[str, Any], json_path: str, md_path: str) -> None:
    res["targets"] = targets(res)
    for f in (json_path, md_path):
        Path(f).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(res, indent=1))
    md = markdown(res)
    Path(md_path).write_text(md)
    print(md)


def merge(paths: list[str], json_path: str, md_path: str) -> dict[str, Any]:
    """Combine result files of runs on different p (same model and settings): pooled timings."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    res = dict(runs[0])
    res["command"] = " ; ".join(r["command"] for r in runs)
    res["wall_s"] = max(r["wall_s"] for r in runs)
    res["realism"] = {p: v for r in runs for p, v in r["realism"].items()}
    timing: dict[str, dict[str, Any]] = {}
    for r in runs:
        for k, v in r["timing"].items():
            tm = timing.setdefault(k, {"wall_s": 0.0, "cpu_s": 0.0, "n_samples": 0, "steps": v["steps"],
                                       "nfe": v["nfe"]})
            for f in ("wall_s", "cpu_s", "n_samples"):
                tm[f] += v[f]
    res["timing"] = _per_sample(timing)
    _write(res, json_path, md_path)
    return res


if __name__ == "__main__":
    raise SystemExit(main())
