"""How mixed are a model's samples, per conditioning label, against that label's own real maps?

Diagnostic behind docs/benchmarks/generation.md, "Session 9" (the over-mixing at p = 4 and 5). Two parts,
both on the model's training sources (as ``bench_generation.py``, whose helpers it uses):

1. **Per label** (method, p): ``--n`` samples conditioned on the label against every real patch of that
   label's maps (patch size of the model, stride ``--stride``): mean per-pixel Shannon entropy (nats) and
   purity (fraction of pixels whose largest abundance is > 0.9), real vs generated; the same for the
   "any" label against all maps with that p.
2. **Label mixture** (``--mixture-seeds``): the realism distances to set B (``bench_generation``'s split
   and scores) of ``--n`` samples with the "any" label against ``--n`` samples each conditioned on a method
   drawn in the training proportions of the p labels. Tells whether the "any" label is to blame.

``--raw`` samples with the raw (non-EMA) weights, when the model directory has them. Example (CPU, one
thread, ~4 min per p for part 1)::

    OMP_NUM_THREADS=1 python benchmarks/label_mixing.py --model simhsi/data/default_model --p 5 \\
        --mixture-seeds 0,1,2 --json build/label_mixing_p5.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_generation as bg  # noqa: E402


def label_patches(scenes: list[Any], size: int, stride: int) -> dict[str, np.ndarray]:
    """Real patches per method (and ``"any"``: all of them) from scenes with one p; NaN patches dropped."""
    out: dict[str, list[np.ndarray]] = {}
    for s in scenes:
        a = s.abundances
        for y0 in bg._starts(a.shape[1], size, stride):
            for x0 in bg._starts(a.shape[2], size, stride):
                q = a[:, y0 : y0 + size, x0 : x0 + size]
                if np.all(np.isfinite(q)):
                    out.setdefault(s.method, []).append(q)
                    out.setdefault("any", []).append(q)
    return {k: np.stack(v).astype(np.float64) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    import torch

    from simhsi.diffusion.generate import generate_abundances
    from simhsi.diffusion.model import load_model
    from simhsi.metrics.realism import DISTANCES, realism_metrics

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--p", type=int, required=True)
    ap.add_argument("--n", type=int, default=64, help="samples per label (and per mixture set)")
    ap.add_argument("--sampler", default="dpmpp-sde")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--stride", type=int, default=8, help="stride of the real patches (px)")
    ap.add_argument("--raw", action="store_true", help="sample with the raw weights instead of the EMA")
    ap.add_argument("--mixture-seeds", default="", help="comma list of seeds for part 2 (empty: skip)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="build/label_mixing.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm = load_model(args.model, ema=not args.raw)
    size = int(lm.meta["patch_size"])
    scenes, _, _ = bg.training_scenes(args.model, args.p)
    real = label_patches(scenes, size, args.stride)

    def gen(method: str | None, n: int, seed: int) -> np.ndarray:
        a = generate_abundances(lm, n=n, p=args.p, method=method, sampler=args.sampler, steps=args.steps,
                                seed=seed, batch_size=args.batch, progress=False)
        return a.values.astype(np.float64)

    res: dict[str, Any] = {"model": args.model, "p": args.p, "n": args.n, "sampler": args.sampler,
                           "weights": "raw" if args.raw else "ema", "labels": {}, "mixture": {}}
    print("| label | real patches | real entropy | generated entropy | real purity | generated purity |\n"
          "|---|---|---|---|---|---|")
    for method in sorted(k for k in real if k != "any") + ["any"]:
        m = realism_metrics(real[method], gen(None if method == "any" else method, args.n, 0))
        row = {"n_real": len(real[method]), **{k: m[k] for k in
               ("entropy_real", "entropy_synth", "purity_real", "purity_synth")}}
        res["labels"][method] = row
        print(f"| {method}, p = {args.p} | {row['n_real']} | {row['entropy_real']:.3f} | "
              f"{row['entropy_synth']:.3f} | {row['purity_real']:.3f} | {row['purity_synth']:.3f} |", flush=True)

    seeds = [int(s) for s in args.mixture_seeds.split(",") if s]
    weights = {k.split("|")[0]: v for k, v in lm.meta["training"]["data"]["patches_per_label"].items()
               if k.endswith(f"|p={args.p}")}
    names = sorted(weights)
    w = np.array([weights[k] for k in names], float)
    for seed in seeds:
        set_a, ref_b, _ = bg.real_sets(args.model, args.p, None, None, args.stride, seed)
        nn_ba, nn_ab = bg.nn_median(ref_b, set_a), bg.nn_median(set_a, ref_b)
        draw = np.random.default_rng([seed, args.p, 7]).choice(len(names), size=args.n, p=w / w.sum())
        mix = np.concatenate([gen(names[i], int((draw == i).sum()), seed * 1000 + i)
                              for i in range(len(names)) if (draw == i).any()])
        sets = {"any": bg.score(ref_b, gen(None, args.n, seed), set_a, nn_ba, nn_ab),
                "mixture": bg.score(ref_b, mix, set_a, nn_ba, nn_ab)}
        res["mixture"][str(seed)] = sets
        for k, m in sets.items():
            print(f"seed {seed} {k:8s} " + " ".join(f"{d} {m[d]:.3f}" for d in DISTANCES)
                  + f" entropy {m['entropy_synth']:.3f} (real {m['entropy_real']:.3f})", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
