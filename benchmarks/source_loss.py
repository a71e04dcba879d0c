"""Denoising loss of a trained abundance model per training source, at fixed timesteps (diagnostic).

Which part of the training data does the model fit worst? For every (source scene, method, p) group of
training patches, up to ``--n`` patches (seeded choice, no augmentation, true labels, no guidance
dropout) are noised at each timestep of ``--timesteps`` with a fixed noise draw and scored with the
training loss (L1 on ε over the valid channels, ``simhsi.diffusion.train.masked_loss``), EMA weights.
Small timesteps measure the fine detail (edges), large ones the layout.

    .venv/bin/python benchmarks/source_loss.py --model simhsi/data/default_model \\
        --data build/default_model_data/jasper_ridge_unmixed.nc build/default_model_data/samson_unmixed.nc \\
        --include-bundled
"""

from __future__ import annotations

import argparse

import numpy as np


def source_losses(model_dir: str, data: list[str], include_bundled: bool, timesteps: list[int], n: int,
                  seed: int = 0) -> dict[tuple[str, str, int], tuple[int, list[float]]]:
    """{(source, method, p): (patches in the group, [mean L1 loss at each timestep])}."""
    import torch

    from simhsi.diffusion.config import TrainConfig
    from simhsi.diffusion.data import PatchDataset, load_scenes
    from simhsi.diffusion.model import load_model
    from simhsi.diffusion.train import make_labels, masked_loss

    m = load_model(model_dir, device="cpu")
    cfg = TrainConfig.from_yaml(f"{model_dir}/config.yaml").replace(oversample={})  # every patch listed once
    ds = PatchDataset(load_scenes(data, cfg, include_bundled=include_bundled), cfg)
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i, si in enumerate(ds.index[:, 0]):
        s = ds.scenes[int(si)]
        groups.setdefault((s.source.split("#")[0], s.method, s.p), []).append(i)
    alpha_bar = m.make_scheduler().alphas_cumprod
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(groups):
        idx = groups[key]
        sel = rng.choice(idx, min(n, len(idx)), replace=False)
        x0, ps, methods = ds.batch(sel, None)
        x0_t, ps_t = torch.from_numpy(x0), torch.from_numpy(ps)
        ones = torch.ones(len(sel))
        labels = make_labels(cfg, methods, m.meta["methods"], ps, ones, ones)  # u >= p_uncond: true labels
        g = torch.Generator().manual_seed(seed + 1)
        row = []
        for t in timesteps:
            noise = torch.randn(x0_t.shape, generator=g)
            ab = alpha_bar[t]
            with torch.no_grad():
                pred = m.unet(ab.sqrt() * x0_t + (1 - ab).sqrt() * noise, torch.full((len(sel),), t),
                              class_labels=labels).sample
            row.append(float(masked_loss(pred, noise, ps_t)))
        out[key] = (len(idx), row)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="simhsi/data/default_model")
    ap.add_argument("--data", nargs="*", default=[], help="unmix / abundance files the model was trained on")
    ap.add_argument("--include-bundled", action="store_true", help="also the bundled ground-truth maps")
    ap.add_argument("--timesteps", type=int, nargs="+", default=[10, 50, 200, 600, 1200, 1800])
    ap.add_argument("--n", type=int, default=48, help="patches per group (at most)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    res = source_losses(a.model, a.data, a.include_bundled, a.timesteps, a.n, a.seed)
    print("| source | method | p | patches | " + " | ".join(f"t = {t}" for t in a.timesteps) + " |")
    print("|---|---|---|---|" + "---|" * len(a.timesteps))
    for (src, meth, p), (count, row) in res.items():
        print(f"| {src} | {meth} | {p} | {count} | " + " | ".join(f"{v:.4f}" for v in row) + " |")


if __name__ == "__main__":
    main()
