"""Sampler-variant diagnostic: realism distances of DDPM / DPM-Solver variants of one model at one p.

Written to find out why a model's DDPM-2000 samples were too pure (docs/benchmarks/generation.md,
session 8). Same real sets, floor, GRF baseline and scores as ``bench_generation.py`` (whose functions it
uses), no timing table. Variants (comma list):

* ``ddpm`` (all T steps), ``ddim-S``, ``dpmpp-S``, ``dpmpp-sde-S``: the library samplers with S steps;
* ``ddpm-simplex``: DDPM whose predicted clean sample is projected onto the simplex at every step
  (instead of clipped to the box [-1, 1]);
* ``ddpm-epsL``: DDPM with the predicted noise divided by L (the "epsilon scaling" against exposure bias,
  Ning et al. 2024);
* ``grf``: the Gaussian-random-field baseline (range fitted on set A).

Besides the distances it records, per variant, the fraction of pixels whose largest abundance is > 0.9
and statistics of the raw network output before the final simplex projection (mean |sum − 1|, fraction of
values < 0 or > 1). One process per p; on a GPU the DDPM rows take ~30 s each (32 samples)::

    python benchmarks/ddpm_variants.py --model MODEL --p 5 --variants ddpm,ddpm-simplex,dpmpp-20,grf --json p5.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_generation as bg  # noqa: E402

COLS = ("hist_w1", "psd_log_distance", "corr_frobenius", "purity_diff", "entropy_diff", "purity_gt09",
        "memorisation_ratio", "seconds")


def main(argv: list[str] | None = None) -> int:
    import torch

    import simhsi.diffusion.generate as gen
    import simhsi.simplex as sx
    from simhsi.diffusion.grf import gaussian_random_field_abundances
    from simhsi.diffusion.model import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--p", type=int, required=True)
    ap.add_argument("--variants", default="ddpm,ddpm-simplex,dpmpp-20,grf")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    p, n = args.p, args.n
    lm = load_model(args.model)
    a_, b_ = float(lm.meta["scaling"]["a"]), float(lm.meta["scaling"]["b"])
    T = int(lm.scheduler_config["num_train_timesteps"])
    raw: dict[str, float] = {}
    project = sx.project_simplex_torch

    def recording_projection(x, dim=1):  # the final projection of generate_abundances: record the raw output
        s = x.sum(dim=dim)
        raw.update(sum_dev_mean=float((s - 1).abs().mean()), neg_frac=float((x < 0).float().mean()),
                   above1_frac=float((x > 1).float().mean()))
        return project(x, dim=dim)

    def simplex_ddpm(model, sampler, steps):
        from diffusers import DDPMScheduler

        class SimplexDDPM(DDPMScheduler):
            def _threshold_sample(self, x0):  # called on the predicted clean sample when thresholding=True
                x0 = x0.clone()
                x0[:, :p] = project((x0[:, :p].float() - b_) / a_, dim=1) * a_ + b_
                return x0

        s = SimplexDDPM.from_config({**model.scheduler_config, "thresholding": True})
        s.set_timesteps(steps)
        return s, steps

    class Scaled(torch.nn.Module):
        def __init__(self, unet, lam):
            super().__init__()
            self.unet, self.lam = unet, lam

        def forward(self, *a, **k):
            o = self.unet(*a, **k)
            o.sample = o.sample / self.lam
            return o

    sx.project_simplex_torch = recording_projection
    make_sampler = gen.make_sampler
    set_a, ref_b, _ = bg.real_sets(args.model, p, None, None, 8, args.seed)
    nn_ba, nn_ab = bg.nn_median(ref_b, set_a), bg.nn_median(set_a, ref_b)
    res = {"model": args.model, "p": p, "n": n, "floor": bg.floor(set_a, ref_b, n, 10, args.seed),
           "real_purity_gt09": float((ref_b.max(axis=1) > 0.9).mean()), "sets": {}}
    for v in args.variants.split(","):
        t0 = time.perf_counter()
        raw.clear()
        if v == "grf":
            theta = bg.fit_grf_theta(set_a, p, int(lm.meta["patch_size"]), n, args.seed)
            size = int(lm.meta["patch_size"])
            a = gaussian_random_field_abundances(n, (size, size), p, theta=theta, seed=args.seed).values
        else:
            m, name, steps = lm, v, None
            gen.make_sampler = simplex_ddpm if v == "ddpm-simplex" else make_sampler
            if v.startswith("ddpm-eps"):
                m = dataclasses.replace(lm, unet=Scaled(lm.unet, float(v[len("ddpm-eps"):])))
            if v.startswith("ddpm"):
                name, steps = "ddpm", T
            elif v.rsplit("-", 1)[-1].isdigit():
                name, steps = v.rsplit("-", 1)[0], int(v.rsplit("-", 1)[1])
            a = gen.generate_abundances(m, n=n, p=p, sampler=name, steps=steps, seed=args.seed, guidance=1.0,
                                        batch_size=n, progress=False).values
        a = np.asarray(a, dtype=np.float64)
        sc = bg.score(ref_b, a, set_a, nn_ba, nn_ab)
        sc["purity_gt09"] = float((a.max(axis=1) > 0.9).mean())
        sc.update(raw)
        sc["seconds"] = time.perf_counter() - t0
        res["sets"][v] = sc
        print(f"p={p} {v}: " + " ".join(f"{k} {sc[k]:.4f}" for k in COLS), flush=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    gen.make_sampler, sx.project_simplex_torch = make_sampler, project
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
