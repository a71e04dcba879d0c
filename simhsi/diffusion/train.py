"""Training loop of the DDPM abundance generator (``simhsi train``).

One step: a global batch of patches (stateless per-epoch permutation, seeded augmentation), a random
timestep t ~ U{0..T-1} and noise eps per patch, x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the
U-Net predicts eps given t and the class label (replaced by the null class with probability
``p_uncond`` and the method by ``any`` with probability ``p_any_method``), loss = L1(eps_hat, eps) over
the valid channels (mean per patch, then over the batch), Adam, gradient-norm clipping, then an EMA
update of the weights (``diffusers.training_utils.EMAModel`` with warm-up:
``decay_k = min(ema_decay, 1 - (1 + k/inv_gamma)^-power)``, k = optimisation steps after the first).

Reproducibility: every random stream is derived from (seed, step[, rank]) -- batch order,
augmentation, noise, timesteps, label dropout, and the global torch RNG used by dropout (seeded inside
``torch.random.fork_rng`` so the caller's RNG state is untouched). A checkpoint therefore continues
bit-identically from its step. Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in
``DistributedDataParallel`` (NCCL on CUDA, gloo on CPU); ``batch_size`` is the global batch, split over
ranks, and each rank draws the same global batch and takes its slice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simhsi.diffusion.config import TrainConfig
from simhsi.diffusion.data import PatchDataset, Scene, batch_indices
from simhsi.diffusion.model import (
    META_FILE,
    build_scheduler,
    build_unet,
    label_table,
    make_meta,
    padded_epsilon,
    save_model,
)
from simhsi.errors import InputFileError, OutputError, ParameterError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
#: Config fields that may change when resuming: bookkeeping, and the learning-rate schedule (continuing a
#: constant-rate run with a decay phase is the "decay" of a warmup-stable-decay schedule; the steps before the
#: checkpoint are unchanged, so an interrupted run resumed with the same config is still bit-identical).
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "keep_checkpoints", "sample_every", "sample_steps", "n_preview",
                     "save_fp16", "lr_schedule", "lr_decay_start", "lr_min")


@dataclass
class TrainResult:
    """Summary of a training run."""

    model_dir: Path
    step: int
    wall_time_s: float
    patches_per_s: float
    final_loss: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    interrupted: bool = False


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _derive(*ints: int) -> int:
    """A 63-bit seed derived from integers (independent streams per (seed, step, rank, tag))."""
    return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def checkpoint_paths(model_dir: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files of a model directory, oldest first."""
    d = Path(model_dir) / CHECKPOINT_DIR
    return sorted(d.glob("step_*.pt")) if d.is_dir() else []


def latest_checkpoint(model_dir: str | os.PathLike[str]) -> Path:
    """The newest checkpoint; :class:`InputFileError` if there is none."""
    ck = checkpoint_paths(model_dir)
    if not ck:
        raise InputFileError(f"no checkpoint in {CHECKPOINT_DIR}/ to resume from; train without --resume",
                             path=model_dir)
    return ck[-1]


def read_checkpoint_config(model_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` stored in the newest checkpoint."""
    import torch

    ck = torch.load(latest_checkpoint(model_dir), map_location="cpu", weights_only=False)
    return TrainConfig.from_dict(ck["config"])


def _check_resume_config(saved: TrainConfig, cfg: TrainConfig) -> None:
    a, b = saved.to_dict(), cfg.to_dict()
    diff = sorted(k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES)
    if diff:
        raise ParameterError(
            f"--resume with a config that differs from the checkpoint in {diff} "
            f"(checkpoint: {[a[k] for k in diff]}, given: {[b[k] for k in diff]}); only {list(RESUMABLE_CHANGES)} "
            "may change -- drop those options or train into a new --out"
        )


def check_out_dir(out: str | os.PathLike[str], resume: bool, overwrite: bool) -> Path:
    """Check that ``out`` can take a new model (or holds one to resume); create nothing."""
    out = Path(out)
    if resume:
        if not out.is_dir():
            raise InputFileError("model directory to resume not found; check --out", path=out)
        latest_checkpoint(out)
        return out
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is not a directory; choose another --out", path=out)
    if out.is_dir() and ((out / META_FILE).exists() or (out / CHECKPOINT_DIR).exists()):
        if not overwrite:
            raise OutputError("already holds a model; pass --resume to continue it or --overwrite to replace it",
                              path=out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"folder {str(parent)!r} does not exist", path=out)
    return out


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    check_out_dir(out, resume, overwrite)
    if not resume:
        if overwrite:
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
            shutil.rmtree(out / "samples", ignore_errors=True)
        out.mkdir(exist_ok=True)


def make_labels(
    cfg: TrainConfig, methods: list[str], data_methods: list[str], ps: np.ndarray, u_null: Any, u_any: Any
) -> Any:
    """Class labels of a batch with classifier-free-guidance dropout (torch int64 tensor)."""
    import torch

    _, labels, null = label_table(data_methods, cfg.p_values)
    out = torch.empty(len(methods), dtype=torch.long)
    for j, (m, p) in enumerate(zip(methods, ps, strict=True)):
        if float(u_null[j]) < cfg.p_uncond:
            out[j] = null
        elif float(u_any[j]) < cfg.p_any_method:
            out[j] = labels[f"any|p={int(p)}"]
        else:
            out[j] = labels[f"{m}|p={int(p)}"]
    return out


def masked_loss(pred: Any, target: Any, ps: Any, kind: str = "l1", *, reduce: bool = True) -> Any:
    """Mean absolute (``kind="l1"``) or squared (``"l2"``, ``"l2-adaptive"``) error over the valid channels
    (c < p of each patch), per patch; their batch mean when ``reduce``."""
    import torch

    pm = pred.shape[1]
    mask = (torch.arange(pm, device=pred.device)[None, :] < ps[:, None]).to(pred.dtype)[:, :, None, None]
    err = torch.abs(pred - target) if kind == "l1" else torch.square(pred - target)
    per = (err * mask).sum(dim=(1, 2, 3)) / (mask.sum(dim=(1, 2, 3)) * pred.shape[2] * pred.shape[3])
    return per.mean() if reduce else per


class TimestepNormaliser:
    """Running mean of the per-patch loss in ``buckets`` equal bands of timesteps (``loss="l2-adaptive"``).

    The training loss of a patch noised at timestep t is divided by the running mean of its band, so every
    noise level weighs about the same in the gradient (as with L1, where the gradient magnitude does not
    depend on the size of the error), while the optimum stays the conditional mean of the noise (L2): a
    per-timestep weight does not move the minimiser. Band means are exponential moving averages over
    steps (``decay`` per step the band is seen; first value taken as is; a band not seen yet has mean 0),
    all-reduced across DDP ranks so every rank uses the same weights, and saved in checkpoints
    (``state_dict``).
    """

    def __init__(self, num_train_timesteps: int, buckets: int = 20, decay: float = 0.99, device: Any = None) -> None:
        import torch

        self.T, self.buckets, self.decay = int(num_train_timesteps), int(buckets), float(decay)
        self.mean = torch.zeros(self.buckets, dtype=torch.float64, device=device)

    def weights(self, t: Any, per_patch: Any, world: int = 1) -> Any:
        """Update the band means with this batch's (detached) per-patch losses; return 1 / band mean per patch."""
        import torch

        b = (t.long() * self.buckets) // self.T
        stats = torch.zeros(2, self.buckets, dtype=torch.float64, device=per_patch.device)
        stats[0].scatter_add_(0, b, per_patch.detach().double())
        stats[1].scatter_add_(0, b, torch.ones_like(b, dtype=torch.float64))
        if world > 1:
            torch.distributed.all_reduce(stats)
        hit = stats[1] > 0
        batch_mean = stats[0] / stats[1].clamp(min=1)
        upd = torch.where(self.mean > 0, self.decay * self.mean + (1 - self.decay) * batch_mean, batch_mean)
        self.mean = torch.where(hit, upd, self.mean)
        return (1.0 / self.mean.clamp(min=1e-12))[b].to(per_patch.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].to(device=self.mean.device, dtype=self.mean.dtype)


# ---------------------------------------------------------------------------------------------
# previews
# ---------------------------------------------------------------------------------------------
def sample_preview(
    unet: Any, scheduler_config: dict[str, Any], meta: dict[str, Any], labels: list[tuple[str, int]],
    *, steps: int = 10, seed: int = 0, device: Any = "cpu",
) -> np.ndarray:
    """Quick DDIM samples for previews: (n, p_max, P, P) abundances on the simplex (padding channels 0)."""
    import torch
    from diffusers import DDIMScheduler

    from simhsi.diffusion.data import GlobalScaling
    from simhsi.diffusion.model import class_label
    from simhsi.simplex import project_simplex_torch

    sched = DDIMScheduler.from_config(scheduler_config)
    sched.set_timesteps(steps)
    n, pm, P = len(labels), int(meta["p_max"]), int(meta["patch_size"])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, pm, P, P, generator=g).to(device)
    cl = torch.tensor([class_label(meta, m, p) for m, p in labels], device=device)
    pad = torch.stack([torch.arange(pm) >= p for _, p in labels]).to(device)[:, :, None, None]
    ab = sched.alphas_cumprod.to(device)
    with torch.no_grad():
        for t in sched.timesteps:
            eps = unet(x, t.to(device), class_labels=cl).sample.float()
            eps = torch.where(pad, padded_epsilon(x, ab[t]), eps)
            x = sched.step(eps, t, x).prev_sample
    a = GlobalScaling.from_meta(meta).inverse(x)
    out = torch.zeros_like(a)
    for j, (_, p) in enumerate(labels):
        out[j, :p] = project_simplex_torch(a[j, :p], dim=0)
    return out.cpu().numpy()


def save_preview_png(samples: np.ndarray, ps: list[int], titles: list[str], path: Path) -> None:
    """A grid of abundance samples as RGB (three most abundant channels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(samples)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for j in range(n):
        rgb = np.clip(np.moveaxis(samples[j, :3], 0, -1), 0, 1)
        axes.ravel()[j].imshow(rgb, interpolation="nearest")
        axes.ravel()[j].set_title(titles[j], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_loss_png(losses: list[tuple[int, float]], path: Path) -> None:
    """Loss curve (raw and running mean) as PNG."""
    if not losses:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.array([a for a, _ in losses])
    v = np.array([b for _, b in losses])
    w = max(1, len(v) // 50)
    smooth = np.convolve(v, np.ones(w) / w, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(s, v, lw=0.5, alpha=0.4, label="loss")
    ax.plot(s[w - 1 :], smooth, lw=1.5, label=f"mean of {w}")
    ax.set_xlabel("step")
    ax.set_ylabel("noise loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    data: PatchDataset | list[Scene],
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or resume) a model into the directory ``out``; return a :class:`TrainResult`.

    ``device=None`` uses CUDA when available (bf16 autocast there with ``mixed_precision="auto"``).
    ``callback(step, loss)`` is called after every step (1-based step). Ctrl-C (SIGINT) finishes the
    current step, writes a checkpoint, then raises :class:`KeyboardInterrupt`.
    """
    import torch

    out = Path(out)
    rank, world, local_rank = _dist_info()
    distributed = world > 1
    if cfg.batch_size % world:
        raise ParameterError(f"The 'batch_size' parameter must be a multiple of the {world} processes. "
                             f"Got {cfg.batch_size} instead.")
    if device is None:
        dev = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ParameterError(f"--device {device} requested but CUDA is not available; use --device cpu")
        if dev.type == "cuda" and distributed and dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    if rank == 0:
        _prepare_out(out, resume, overwrite)

    ckpt = None
    if resume:
        ckpt = torch.load(latest_checkpoint(out), map_location="cpu", weights_only=False)
        _check_resume_config(TrainConfig.from_dict(ckpt["config"]), cfg)
    ds = data if isinstance(data, PatchDataset) else PatchDataset(list(data), cfg)
    if ckpt is not None and ckpt["data_fingerprint"] != ds.fingerprint():
        raise ParameterError("--resume with different training data than the checkpoint's; pass the same --data "
                             "(and --include-bundled) as the first run")
    data_methods = ds.methods
    meta_training: dict[str, Any] = {"data": ds.summary(), "seed": cfg.seed}

    if distributed and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(_derive(cfg.seed, 0xB0117))
        unet = build_unet(cfg, data_methods).to(dev)
        return _loop(cfg, ds, out, unet, ckpt, dev, rank, world, progress, callback, data_methods, meta_training)


def _loop(cfg, ds, out, unet, ckpt, dev, rank, world, progress, callback, data_methods, meta_training):
    import torch
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    from simhsi._version import __version__

    scheduler = build_scheduler(cfg)
    # foreach (one fused update for all tensors) on CUDA, where per-tensor kernel launches dominate a small U-Net
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=cfg.ema_warmup,
                   inv_gamma=cfg.ema_inv_gamma, power=cfg.ema_power, foreach=dev.type == "cuda")
    opt = torch.optim.Adam(unet.parameters(), lr=cfg.lr, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay)
    norm = TimestepNormaliser(cfg.num_train_timesteps, device=dev) if cfg.loss == "l2-adaptive" else None
    step, losses, wall_before = 0, [], 0.0
    if ckpt is not None:
        if norm is not None:
            norm.load_state_dict(ckpt["loss_normaliser"])
        unet.load_state_dict(ckpt["unet"])
        opt.load_state_dict(ckpt["optimizer"])
        ema.load_state_dict(ckpt["ema"])
        ema.to(dev)
        step, losses, wall_before = int(ckpt["step"]), [tuple(x) for x in ckpt["losses"]], float(ckpt["wall_time_s"])
        with contextlib.suppress(Exception):
            random.setstate(ckpt["rng"]["python"])
    model = unet
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(unet, device_ids=[dev.index] if dev.type == "cuda" else None)
    use_amp = (dev.type == "cuda" and cfg.mixed_precision in ("auto", "bf16")) or cfg.mixed_precision == "bf16"
    def amp():
        return torch.autocast(dev.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    alphas = scheduler.alphas_cumprod.to(dev)
    b_local = cfg.batch_size // world
    sl = slice(rank * b_local, (rank + 1) * b_local)
    meta = make_meta(cfg, data_methods)
    preview_labels = _preview_labels(ds, cfg.n_preview)

    stop = {"flag": False}
    old_handler = None
    if callable(getattr(signal, "signal", None)) and _in_main_thread():
        def _on_sigint(signum, frame):  # noqa: ARG001
            if stop["flag"]:
                raise KeyboardInterrupt
            stop["flag"] = True
            log.warning("interrupt: finishing step %d, writing a checkpoint, then stopping", step + 1)

        old_handler = signal.signal(signal.SIGINT, _on_sigint)

    def checkpoint(final: bool = False, plot: bool = False) -> None:
        if rank != 0:
            return
        elapsed = wall_before + (time.perf_counter() - t0)
        ck = {
            "step": step,
            "unet": unet.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": opt.state_dict(),
            "config": cfg.to_dict(),
            "methods": data_methods,
            "data_fingerprint": ds.fingerprint(),
            "losses": losses,
            **({"loss_normaliser": norm.state_dict()} if norm is not None else {}),
            "wall_time_s": elapsed,
            "rng": {"scheme": "derived from (seed, step, rank)", "python": random.getstate(),
                    "torch": torch.get_rng_state()},
        }
        d = out / CHECKPOINT_DIR
        d.mkdir(exist_ok=True)
        f = d / f"step_{step:09d}.pt"
        tmp = d / f".{f.name}.tmp"
        torch.save(ck, tmp)
        os.replace(tmp, f)
        for old in checkpoint_paths(out)[: -cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)
        ema_unet = _ema_copy(unet, ema)
        n_done = step - start_step
        meta["training"] = {
            **meta_training, "steps": step, "wall_time_s": round(elapsed, 2), "batch_size": cfg.batch_size,
            "patches_per_s": round(n_done * cfg.batch_size / max(time.perf_counter() - t0, 1e-9), 3),
            "final_loss": losses[-1][1] if losses else None, "device": str(dev), "world_size": world,
            "ema_decay_now": float(ema.get_decay(ema.optimization_step)), "simhsi_version": __version__,
            "finished": bool(final and step >= cfg.steps),
            "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        save_model(out, unet, ema_unet, scheduler, meta, cfg)
        if final or plot:
            save_loss_png(losses, out / "loss.png")

    start_step = step
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc="train", unit="step",
               dynamic_ncols=True)
    interrupted = False
    try:
        model.train()
        while step < cfg.steps:
            gidx = batch_indices(step, cfg.batch_size, len(ds), cfg.seed)
            x0, ps, methods = ds.batch(gidx, np.random.default_rng(_derive(cfg.seed, step, 0xA06)))
            g = torch.Generator().manual_seed(_derive(cfg.seed, step, 0x7015E))
            noise = torch.randn(x0.shape, generator=g)
            t = torch.randint(0, cfg.num_train_timesteps, (cfg.batch_size,), generator=g)
            u_null, u_any = torch.rand(cfg.batch_size, generator=g), torch.rand(cfg.batch_size, generator=g)
            labels = make_labels(cfg, methods, data_methods, ps, u_null, u_any)
            x0_t = torch.from_numpy(x0[sl]).to(dev)
            noise, t, labels = noise[sl].to(dev), t[sl].to(dev), labels[sl].to(dev)
            ps_t = torch.from_numpy(ps[sl]).to(dev)
            torch.manual_seed(_derive(cfg.seed, step, rank, 0xD0))  # dropout stream
            ab = alphas[t].view(-1, 1, 1, 1)
            noisy = ab.sqrt() * x0_t + (1 - ab).sqrt() * noise
            with amp():
                pred = model(noisy, t, class_labels=labels).sample
            per = masked_loss(pred.float(), noise, ps_t, cfg.loss, reduce=False)  # logged below: plain L1 / L2
            loss = (per * norm.weights(t, per, world)).mean() if norm is not None else per.mean()
            opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] = cfg.lr_at(step)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
            opt.step()
            ema.step(unet.parameters())
            step += 1
            lv = per.detach().mean()
            if world > 1:
                torch.distributed.all_reduce(lv)
                lv = lv / world
                flag = torch.tensor([1.0 if stop["flag"] else 0.0], device=dev)
                torch.distributed.all_reduce(flag)
                stop["flag"] = bool(flag.item() > 0)
            lval = float(lv)
            losses.append((step, lval))
            bar.update(1)
            bar.set_postfix(loss=f"{lval:.4f}", refresh=False)
            if (not progress or bar.disable) and rank == 0 and step % max(1, cfg.checkpoint_every // 10) == 0:
                rate = (step - start_step) * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
                log.info("step %d/%d loss %.4f (%.2f patches/s)", step, cfg.steps, lval, rate)
            if callback is not None:
                callback(step, lval)
            if stop["flag"]:
                checkpoint(plot=True)
                interrupted = True
                break
            preview = bool(cfg.sample_every) and step % cfg.sample_every == 0
            if (step % cfg.checkpoint_every == 0 or preview) and step < cfg.steps:
                checkpoint(plot=preview)
            if rank == 0 and preview:
                _preview(unet, ema, scheduler, meta, preview_labels, cfg, step, out, dev)
        if not interrupted:
            checkpoint(final=True)
            if rank == 0 and cfg.sample_every and step % cfg.sample_every:
                _preview(unet, ema, scheduler, meta, preview_labels, cfg, step, out, dev)
    finally:
        bar.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
    elapsed = time.perf_counter() - t0
    result = TrainResult(
        model_dir=out, step=step, wall_time_s=wall_before + elapsed,
        patches_per_s=(step - start_step) * cfg.batch_size / max(elapsed, 1e-9),
        final_loss=losses[-1][1] if losses else float("nan"), losses=list(losses), interrupted=interrupted,
    )
    if interrupted:
        raise KeyboardInterrupt(f"training interrupted at step {step}; checkpoint written, continue with --resume")
    return result


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _ema_copy(unet: Any, ema: Any) -> Any:
    import copy

    e = copy.deepcopy(unet)
    ema.copy_to(e.parameters())
    return e


def _preview_labels(ds: PatchDataset, n: int) -> list[tuple[str, int]]:
    keys = sorted({(s.method, s.p) for s in ds.scenes})
    return [keys[i % len(keys)] for i in range(max(1, n))]


def _preview(unet, ema, scheduler, meta, labels, cfg, step, out, dev) -> None:
    e = _ema_copy(unet, ema).eval()
    samples = sample_preview(e, dict(scheduler.config), meta, labels, steps=cfg.sample_steps,
                             seed=cfg.seed, device=dev)
    d = out / "samples"
    d.mkdir(exist_ok=True)
    save_preview_png(samples, [p for _, p in labels], [f"{m} p={p}" for m, p in labels],
                     d / f"step_{step:09d}.png")
