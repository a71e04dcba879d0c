"""Where in frequency does a sampler's PSD distance come from? Per channel and radial frequency.

Diagnostic behind docs/benchmarks/generation.md, "Session 10" (``dpmpp-sde``'s two p = 3 PSD misses).
``realism_metrics``'s ``psd_log_distance`` is the mean over channels (sorted by mean abundance, per patch)
and radial frequencies of |log10 PSD_synth − log10 PSD_real|. This prints the signed terms before that
mean: log10(PSD_set / PSD_B) for the other real half (set A) and for each sampler's samples, on
``bench_generation``'s split and seed. Positive = more variance at that scale than set B; a constant
offset over all frequencies is a contrast difference, a rise at the highest ones is fine-scale noise.

Example (CPU, one thread, ~80 s per sampler at n = 128)::

    OMP_NUM_THREADS=1 python benchmarks/psd_profile.py --model simhsi/data/default_model --p 3 --seed 3 \\
        --samplers dpmpp-sde:30 --n 128 --json build/psd_p3_s3.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_generation as bg  # noqa: E402


def psd_log_ratio(ref: np.ndarray, synth: np.ndarray) -> np.ndarray:
    """log10 of ``synth``'s radially averaged PSD over ``ref``'s, per sorted channel: (p, n_radii).

    The mean of its absolute value is ``realism_metrics``'s ``psd_log_distance`` (up to its 1e-12 guard).
    """
    from simhsi.metrics.realism import _common, radial_psd, sort_channels

    r, s = _common(ref, synth)
    eps = 1e-12
    return np.log10(radial_psd(sort_channels(s)) + eps) - np.log10(radial_psd(sort_channels(r)) + eps)


def _fmt(name: str, d: np.ndarray) -> list[str]:
    rows = [f"{name}: mean |d| = {np.abs(d).mean():.4f}"]
    rows += [f"  channel {c}: " + " ".join(f"{v:+.2f}" for v in d[c]) for c in range(d.shape[0])]
    return rows


def main(argv: list[str] | None = None) -> int:
    import torch

    from simhsi.diffusion.generate import generate_abundances
    from simhsi.diffusion.model import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--p", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0, help="real split and starting noise (as bench_generation)")
    ap.add_argument("--samplers", default="dpmpp-sde:30", help="comma list of name:steps")
    ap.add_argument("--n", type=int, default=128, help="samples per sampler")
    ap.add_argument("--stride", type=int, default=8, help="stride of the real patches (px)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="write the profiles here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.model)
    set_a, ref_b, _ = bg.real_sets(args.model, args.p, None, None, args.stride, args.seed)
    prof = {"real A": psd_log_ratio(ref_b, set_a)}
    for spec in args.samplers.split(","):
        name, _, steps = spec.partition(":")
        a = generate_abundances(model, n=args.n, p=args.p, sampler=name, steps=int(steps) if steps else None,
                                seed=args.seed, batch_size=args.batch, progress=False)
        prof[f"{name}-{a.attrs['steps']}"] = psd_log_ratio(ref_b, a.values.astype(np.float64))
    print(f"log10(PSD / PSD of set B), p = {args.p}, seed {args.seed}; columns: radial frequency 1..N/2 "
          "(cycles per patch); channels sorted by mean abundance")
    for k, d in prof.items():
        print("\n".join(_fmt(k, d)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "p": args.p, "seed": args.seed,
                                               "profiles": {k: v.tolist() for k, v in prof.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
