"""Generation benchmark: sampler speed and realism of a trained model vs real maps and the GRF baseline.

For one p: real patches (the model's training sources: ``--data`` files and/or the bundled maps) are split
at random into two disjoint halves R1/R2. R1 vs R2 is the real-vs-real floor. Each sampler's samples, and
the Gaussian-random-field baseline, are compared with R2 (``train=R1`` for the memorisation check).
Samplers are timed in the same run: DDPM ancestral with all T steps, DDIM-50, DPM-Solver++-20.

    python benchmarks/bench_generation.py --model simhsi/data/default_model --p 4 --n 32 \
        --out docs/benchmarks/generation.md
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np


def real_patch_sets(model_dir: str, p: int, data: list[str], include_bundled: bool, seed: int):
    from simhsi.diffusion.config import TrainConfig
    from simhsi.diffusion.data import PatchDataset, load_scenes
    from simhsi.diffusion.model import read_meta

    meta = read_meta(model_dir)
    cfg = TrainConfig(patch_size=int(meta["patch_size"]), p_values=[int(v) for v in meta["p_values"]],
                      block_out_channels=[8] * (int(np.log2(int(meta["downsample_factor"]))) + 1),
                      norm_num_groups=8, attention_head_dim=8, attention_resolutions=[])
    scenes = [s for s in load_scenes(data, cfg, include_bundled=include_bundled) if s.p == p]
    if not scenes:
        raise SystemExit(f"no real scene with p={p} in the data")
    ds = PatchDataset(scenes, cfg)
    patches = np.stack([ds.patch(i)[0] for i in range(len(ds))])
    perm = np.random.default_rng(seed).permutation(len(patches))
    half = len(patches) // 2
    return patches[perm[:half]], patches[perm[half:]], meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--p", type=int, default=4)
    ap.add_argument("--n", type=int, default=32, help="samples per sampler")
    ap.add_argument("--data", action="append", default=[], help="unmix/abundance files the model saw")
    ap.add_argument("--no-bundled", action="store_true")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--method", default=None)
    ap.add_argument("--samplers", default="ddpm,ddim:50,dpmpp:20")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/benchmarks/generation.md")
    args = ap.parse_args()

    import torch

    from simhsi.diffusion.generate import generate_abundances
    from simhsi.diffusion.grf import gaussian_random_field_abundances
    from simhsi.diffusion.model import load_model
    from simhsi.metrics.realism import DISTANCES, realism_metrics, realism_table

    r1, r2, meta = real_patch_sets(args.model, args.p, args.data, not args.no_bundled, args.seed)
    size = int(meta["patch_size"])
    model = load_model(args.model)
    results: dict[str, dict[str, float]] = {"real vs real (floor)": realism_metrics(r2, r1, train=r1)}
    timing: dict[str, float] = {}
    for spec in args.samplers.split(","):
        name, _, steps = spec.partition(":")
        steps_i = int(steps) if steps else None
        t0 = time.perf_counter()
        a = generate_abundances(model, n=args.n, p=args.p, method=args.method, guidance=args.guidance,
                                sampler=name, steps=steps_i, seed=args.seed, batch_size=min(args.n, 16),
                                progress=True)
        dt = time.perf_counter() - t0
        label = f"{name}-{a.attrs['steps']}"
        timing[label] = dt / args.n
        results[label] = realism_metrics(r2, a.values, train=r1)
    theta = size / 2
    results[f"grf (spheric, theta={theta:g})"] = realism_metrics(
        r2, gaussian_random_field_abundances(args.n, (size, size), args.p, theta=theta, seed=args.seed).values,
        train=r1)

    ddpm = next((k for k in timing if k.startswith("ddpm")), None)
    lines = [
        "# Generation benchmark",
        "",
        f"Command: `python benchmarks/bench_generation.py --model {args.model} --p {args.p} --n {args.n}"
        f" --guidance {args.guidance}`  ",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {next(model.unet.parameters()).device}.  ",
        f"Real patches: {len(r1)} + {len(r2)} ({size}×{size}, p={args.p}) from the model's training sources.",
        "",
        "## Seconds per sample",
        "",
        "| sampler | s / sample | speed-up vs DDPM |",
        "|---|---|---|",
    ]
    for k, v in timing.items():
        su = f"{timing[ddpm] / v:.1f}×" if ddpm else "–"
        lines.append(f"| {k} | {v:.3f} | {su} |")
    lines += ["", "## Realism (distances to held-out real patches; lower is closer)", "", "```",
              realism_table(results), "```", ""]
    if ddpm:
        fast = [k for k in timing if k.startswith("dpmpp")]
        for k in fast:
            rel = {d: (results[k][d] - results[ddpm][d]) / max(results[ddpm][d], 1e-12) for d in DISTANCES}
            lines.append(f"- {k} vs {ddpm}: speed-up {timing[ddpm] / timing[k]:.1f}×; relative change of each "
                         "distance: " + ", ".join(f"{d} {v:+.0%}" for d, v in rel.items()))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
