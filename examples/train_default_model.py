"""Build the default DDPM abundance generator (the model shipped with simhsi), reproducibly.

What it does (equivalent to ``simhsi unmix`` + ``simhsi train --include-bundled``):

1. runs the unmixing dictionary (``--methods``, each at p = 3, 4, 5, seed 0) on the bundled real scenes
   Samson and Jasper Ridge (cube divided by its maximum) and writes one ``simhsi unmix``-format file per
   scene into ``WORK/``;
2. trains on those abundance maps plus the bundled ground-truth maps (Samson, Jasper Ridge, and WDC
   Mall with its 6 classes merged to 5), labelled with their method and p;
3. writes the model directory ``OUT`` (fp16 weights in the CPU configuration).

CPU (the bundled model; ~2.8 M parameters, 32 px patches)::

    python examples/train_default_model.py --out simhsi/data/default_model --work build/default_model_data

GPU, the paper configuration (width 64 x (1, 2, 4, 8, 8), attention at 16 px, 128 px patches -- the
bundled scenes are smaller than 128 px, so pass your own ``simhsi unmix`` outputs of large scenes)::

    torchrun --nproc_per_node 4 examples/train_default_model.py --paper --data prisma_unmixed.nc \\
        --out model_paper --steps 1000000

Interrupt with Ctrl-C and continue with ``--resume`` (bit-identical to an uninterrupted run).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

DEFAULT_METHODS = ("vca-fcls", "nfindr-fcls", "sisal-fcls", "nmfqmv")
SCENES = ("samson", "jasper_ridge")


def unmix_bundled(work: Path, methods: list[str], p_values: list[int], seed: int = 0) -> list[Path]:
    """Unmix the bundled scenes with every method and p; one unmix-format file per scene (reused if present)."""
    import simhsi.data
    from simhsi.unmixing import get_method
    from simhsi.unmixing.results import write_unmix_results

    work.mkdir(parents=True, exist_ok=True)
    files = []
    for scene in SCENES:
        f = work / f"{scene}_unmixed.nc"
        if not f.exists():
            cube = simhsi.data.load(scene, normalize=True)["cube"]
            runs = []
            for m in methods:
                for p in p_values:
                    t0 = time.perf_counter()
                    runs.append(get_method(m)(n_endmembers=p, seed=seed).fit(cube))
                    logging.info("%s %s p=%d: %.1f s", scene, m, p, time.perf_counter() - t0)
            write_unmix_results(runs, f, source_file=f"simhsi.data:{scene}")
        files.append(f)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="model directory to write")
    ap.add_argument("--work", type=Path, default=Path("build/default_model_data"),
                    help="folder for the unmixing outputs of the bundled scenes")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated unmixing methods")
    ap.add_argument("--data", action="append", default=[], help="extra 'simhsi unmix' outputs (repeatable)")
    ap.add_argument("--no-bundled-unmixing", action="store_true", help="skip step 1 (use only --data + GT)")
    ap.add_argument("--paper", action="store_true", help="full paper configuration (GPU)")
    ap.add_argument("--config", type=Path,
                    help="YAML file of TrainConfig keys that override the small (or --paper) configuration")
    ap.add_argument("--steps", type=int, help="override the number of steps")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed of the unmixing and the training (default: the configuration's, 0)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from simhsi.diffusion.config import TrainConfig, paper_config, small_config
    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import train

    cfg = (paper_config if args.paper else small_config)()
    if args.config:
        cfg = TrainConfig.from_yaml(args.config, base=cfg)
    cfg = cfg.replace(seed=args.seed, steps=args.steps)
    cfg.validate()
    files = [Path(f) for f in args.data]
    if not args.no_bundled_unmixing:
        files += unmix_bundled(args.work, [m for m in args.methods.split(",") if m], cfg.p_values, seed=cfg.seed)
    scenes = load_scenes(files, cfg, include_bundled=True)
    logging.info("%d scenes: %s", len(scenes), sorted({(s.method, s.p) for s in scenes}))
    try:
        res = train(cfg, scenes, args.out, resume=args.resume, overwrite=args.overwrite, device=args.device,
                    progress=sys.stderr.isatty())
    except KeyboardInterrupt as exc:
        print(f"{exc}", file=sys.stderr)
        return 130
    print(f"{res.model_dir}: {res.step} steps, final loss {res.final_loss:.4f}, "
          f"{res.patches_per_s:.2f} patches/s, {res.wall_time_s / 3600:.2f} h in total")
    return 0


if __name__ == "__main__":
    from simhsi.errors import run_script

    run_script(main)
