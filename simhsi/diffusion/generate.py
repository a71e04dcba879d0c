"""Sampling the DDPM abundance generator: DDPM / DDIM / DPM-Solver++ (ODE and SDE), guidance, large scenes.

Outputs are valid abundances: the network output is mapped back by the inverse of the model's global
affine map (``A = (x − b) / a``), the first ``p`` channels are kept, and each pixel is projected
exactly onto the probability simplex (A ≥ 0, Σ A = 1 to float precision).

Large scenes (``size`` bigger than the training patch) are denoised as ONE latent: at every step the
network sees overlapping windows of the patch size, and their noise predictions are blended with
smooth weights (MultiDiffusion, Bar-Tal et al. 2023, with a linear taper instead of uniform weights)
before the scheduler updates the whole latent. Memory is bounded by ``window_batch`` windows, not by
the scene.

Classifier-free guidance: ``eps = eps_uncond + w · (eps_cond − eps_uncond)``; ``w = 1`` is purely
conditional, ``w = 0`` unconditional, ``w > 1`` strengthens the condition (Ho & Salimans 2022).

Reproducibility: sample ``i`` starts from noise drawn by a generator seeded with ``(seed, i)`` and uses
its own generator for the stochastic steps, so it does not depend on ``n`` or ``batch_size``.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.errors import ModelError, ParameterError, check_param

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray as xr

    from simhsi.diffusion.model import LoadedModel

SAMPLERS = ("ddpm", "ddim", "dpmpp", "dpmpp-sde")
DEFAULT_STEPS = {"ddpm": None, "ddim": 50, "dpmpp": 20, "dpmpp-sde": 30}
# Step placement and second-order update of both DPM-Solver++ samplers (diffusers options). Karras et al.'s
# sigma spacing (rho = 7) puts more steps at low noise, where the fine texture of a map forms; with the Heun
# form of the 2M update it brought dpmpp-sde-30 and dpmpp-20 closer to the real maps than uniform
# ("trailing") steps at p = 3, 4, 5 (docs/benchmarks/generation.md, "Session 9").
DPM_SOLVER_OPTIONS: dict[str, Any] = {"use_karras_sigmas": True, "solver_type": "heun"}


def default_model_dir() -> str | None:
    """The packaged default model directory, or ``None`` if this installation has none."""
    from importlib.resources import files

    d = files("simhsi.data").joinpath("default_model")
    return str(d) if d.joinpath("simhsi_model.json").is_file() else None


@functools.cache
def _clipped_dpm_solver() -> type:  # built on first use: importing diffusers is slow
    from diffusers import DPMSolverMultistepScheduler

    class ClippedDPMSolver(DPMSolverMultistepScheduler):
        """DPM-Solver++ whose x0 predictions are clipped to ±``clip_range`` at every step, as the DDPM and DDIM
        schedulers do with ``clip_sample`` (diffusers' DPM-Solver only offers dynamic thresholding, which
        rescales; with ``thresholding=True`` this class clamps instead)."""

        clip_range = 1.0

        def _threshold_sample(self, sample: Any) -> Any:
            return sample.clamp(-self.clip_range, self.clip_range)

    return ClippedDPMSolver


def make_sampler(model: LoadedModel, sampler: str, steps: int | None) -> tuple[Any, int]:
    """A diffusers scheduler for ``sampler`` built from the model's training schedule, and its steps.

    ``dpmpp`` is DPM-Solver++(2M), the deterministic (ODE) multistep solver; ``dpmpp-sde`` its stochastic
    version SDE-DPM-Solver++(2M) (Lu et al. 2022): same network evaluations per step, fresh noise at each
    step (seeded per sample, like DDPM's). Both use Karras sigma spacing and the Heun form of the update
    (:data:`DPM_SOLVER_OPTIONS`). All of them clip the predicted clean sample to the network range at every
    step when the model's schedule says so (``clip_sample``, true for models trained by simhsi).
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    if sampler not in SAMPLERS:
        raise ParameterError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    T = int(model.scheduler_config.get("num_train_timesteps", 1000))
    if steps is None:
        steps = DEFAULT_STEPS[sampler] or T
    check_param("steps", steps, isinstance(steps, int | np.integer) and 1 <= steps <= T,
                f"an int in [1, {T}] (the model's training steps)", "generate_abundances")
    cfg = dict(model.scheduler_config)
    if sampler == "ddpm":
        sched = DDPMScheduler.from_config(cfg)
    elif sampler == "ddim":
        sched = DDIMScheduler.from_config(cfg, timestep_spacing="trailing")
    else:
        clip = bool(cfg.pop("clip_sample", False))
        algorithm = "sde-dpmsolver++" if sampler == "dpmpp-sde" else "dpmsolver++"
        sched = _clipped_dpm_solver().from_config(
            cfg, algorithm_type=algorithm, solver_order=2, final_sigmas_type="zero", lower_order_final=True,
            thresholding=clip, **DPM_SOLVER_OPTIONS,
        )
        sched.clip_range = float(cfg.get("clip_sample_range", 1.0))
    sched.set_timesteps(int(steps))
    return sched, int(steps)


def _taper(n: int, overlap: int) -> np.ndarray:
    """1-D window weights: linear ramps of ``overlap`` pixels at both ends, never zero."""
    w = np.ones(n)
    if overlap > 0:
        ramp = (np.arange(overlap) + 1.0) / (overlap + 1.0)
        w[:overlap] = np.minimum(w[:overlap], ramp)
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def window_starts(length: int, window: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of windows of ``window`` pixels covering ``length`` with at least ``overlap`` overlap."""
    if length <= window:
        return [0]
    stride = max(window - overlap, multiple)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


class _Denoiser:
    """Noise prediction on a (possibly larger than the patch) latent, with guidance and padding."""

    def __init__(self, model: LoadedModel, p: int, labels_c: Any, label_u: int | None, guidance: float,
                 window: int, overlap: int, window_batch: int) -> None:
        import torch

        self.model, self.p, self.guidance = model, p, float(guidance)
        self.unet = model.unet
        self.device = next(self.unet.parameters()).device
        self.labels_c = labels_c
        self.label_u = label_u
        self.window, self.overlap, self.window_batch = window, overlap, window_batch
        self.pad_value = float(model.meta.get("padding", {}).get("value", 0.0))
        self.torch = torch

    def _net(self, x: torch.Tensor, t: Any, labels: torch.Tensor) -> torch.Tensor:
        torch = self.torch
        tt = torch.full((x.shape[0],), int(t), device=self.device, dtype=torch.long)
        return self.unet(x, tt, class_labels=labels).sample

    def _guided(self, x: torch.Tensor, t: Any, lab_c: torch.Tensor) -> torch.Tensor:
        torch = self.torch
        if self.label_u is None or self.guidance == 1.0:
            return self._net(x, t, lab_c)
        lab_u = torch.full_like(lab_c, self.label_u)
        if self.guidance == 0.0:
            return self._net(x, t, lab_u)
        both = self._net(torch.cat([x, x]), t, torch.cat([lab_c, lab_u]))
        e_c, e_u = both.chunk(2)
        return e_u + self.guidance * (e_c - e_u)

    def __call__(self, x: torch.Tensor, t: Any, alpha_bar: float) -> torch.Tensor:
        torch = self.torch
        b, c, h, w = x.shape
        win = self.window
        if h <= win and w <= win:
            eps = self._guided(x, t, self.labels_c)
        else:
            ys = window_starts(h, win, self.overlap)
            xs = window_starts(w, win, self.overlap)
            wy = torch.as_tensor(_taper(win, self.overlap if len(ys) > 1 else 0), dtype=x.dtype, device=x.device)
            wx = torch.as_tensor(_taper(win, self.overlap if len(xs) > 1 else 0), dtype=x.dtype, device=x.device)
            weight = wy[:, None] * wx[None, :]
            acc = torch.zeros_like(x)
            norm = torch.zeros((h, w), dtype=x.dtype, device=x.device)
            jobs = [(i, y0, x0) for y0 in ys for x0 in xs for i in range(b)]
            for k in range(0, len(jobs), self.window_batch):
                part = jobs[k : k + self.window_batch]
                crops = torch.stack([x[i, :, y0 : y0 + win, x0 : x0 + win] for i, y0, x0 in part])
                labs = torch.stack([self.labels_c[i] for i, _, _ in part])
                e = self._guided(crops, t, labs)
                for (i, y0, x0), ei in zip(part, e, strict=True):
                    acc[i, :, y0 : y0 + win, x0 : x0 + win] += ei * weight
            for y0 in ys:
                for x0 in xs:
                    norm[y0 : y0 + win, x0 : x0 + win] += weight
            eps = acc / norm
        if self.p < c:  # padded channels are known: their predicted clean value is the padding value
            ab = torch.as_tensor(alpha_bar, dtype=x.dtype, device=x.device)
            eps[:, self.p :] = (x[:, self.p :] - ab.sqrt() * self.pad_value) / (1 - ab).sqrt()
        return eps


def _as_model(model: str | os.PathLike[str] | LoadedModel | None, device: Any) -> LoadedModel:
    from simhsi.diffusion.model import LoadedModel, load_model

    if isinstance(model, LoadedModel):
        return model
    if model is None:
        model = default_model_dir()
        if model is None:
            raise ModelError("no default generator model is installed; pass --model DIR (from 'simhsi train') "
                             "or use the Gaussian-field generator (--generator grf)")
    return load_model(model, device=device)


def generate_abundances(
    model: str | os.PathLike[str] | LoadedModel | None = None,
    *,
    n: int = 1,
    size: tuple[int, int] | None = None,
    p: int = 3,
    method: str | None = None,
    guidance: float = 1.0,
    sampler: str = "dpmpp-sde",
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 4,
    window_overlap: int | None = None,
    window_batch: int = 16,
    device: str | None = None,
    progress: bool = True,
) -> xr.DataArray:
    """Sample ``n`` abundance maps of ``size`` (H, W) pixels with ``p`` endmembers from a trained model.

    ``model``: a model directory (``simhsi train``), a loaded model, or ``None`` for the packaged
    default. ``method``: the unmixing method to condition on (``None``: any method). ``guidance``:
    classifier-free guidance scale (see module doc). ``sampler`` (default steps): ``"dpmpp-sde"``
    (SDE-DPM-Solver++(2M), 30; the default: the closest to DDPM-2000 of the fast samplers, see
    docs/model-card.md), ``"dpmpp"`` (DPM-Solver++(2M), the ODE solver, 20), ``"ddim"`` (50) or ``"ddpm"``
    (ancestral, all T); see :func:`make_sampler`. ``window_overlap``: overlap of the windows in pixels for
    scenes larger than the training patch (default: half the patch).

    Returns a DataArray (sample, endmember, y, x) of valid abundances (float32) with the settings in attrs.
    """
    import torch
    import xarray as xr
    from tqdm.auto import tqdm

    from simhsi.conventions import default_endmember_names, provenance_attrs
    from simhsi.diffusion.model import class_label, null_label
    from simhsi.simplex import project_simplex_torch

    lm = _as_model(model, device)
    meta = lm.meta
    patch = int(meta["patch_size"])
    factor = int(meta["downsample_factor"])
    size = (patch, patch) if size is None else tuple(int(s) for s in size)
    check_param("n", n, isinstance(n, int | np.integer) and n >= 1, "an int >= 1", "generate_abundances")
    check_param("size", size, len(size) == 2 and all(s >= factor and s % factor == 0 for s in size),
                f"two positive multiples of the U-Net down-sampling factor {factor} (H, W)", "generate_abundances")
    check_param("batch_size", batch_size, batch_size >= 1, "an int >= 1", "generate_abundances")
    check_param("guidance", guidance, np.isfinite(guidance) and guidance >= 0, "a number >= 0", "generate_abundances")
    label = class_label(meta, method, p)  # validates p and method
    label_u = null_label(meta)
    overlap = patch // 2 if window_overlap is None else int(window_overlap)
    check_param("window_overlap", window_overlap, 0 <= overlap < patch, f"an int in [0, {patch})",
                "generate_abundances")
    sched, steps = make_sampler(lm, sampler, steps)
    dev = next(lm.unet.parameters()).device
    p_max = int(meta["p_max"])
    a, b = float(meta["scaling"]["a"]), float(meta["scaling"]["b"])
    h, w = size
    out = np.empty((n, p, h, w), dtype=np.float32)
    alphas = sched.alphas_cumprod
    bar = tqdm(total=n * steps, desc=f"{sampler} {steps} steps", unit="step", disable=not progress, leave=False)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            gens = [torch.Generator(device="cpu").manual_seed(int(np.random.SeedSequence([seed, i])
                                                                   .generate_state(1)[0])) for i in idx]
            x = torch.stack([torch.randn((p_max, h, w), generator=g) for g in gens]).to(dev)
            x = x * sched.init_noise_sigma
            labels = torch.full((len(idx),), label, dtype=torch.long, device=dev)
            den = _Denoiser(lm, p, labels, label_u, guidance, patch, overlap, window_batch)
            sched.set_timesteps(steps)
            for t in sched.timesteps:
                ab = float(alphas[int(t)])
                eps = den(sched.scale_model_input(x, t), t, ab)
                kw: dict[str, Any] = {}
                if sampler in ("ddpm", "dpmpp-sde"):
                    kw["generator"] = gens
                elif sampler == "ddim":
                    kw["eta"] = 0.0
                x = sched.step(eps, t, x, **kw).prev_sample
                bar.update(len(idx))
            abund = (x[:, :p].float() - b) / a
            abund = project_simplex_torch(abund, dim=1)
            out[idx[0] : idx[-1] + 1] = abund.cpu().numpy()
    bar.close()
    attrs = provenance_attrs(
        generator="ddpm", model=str(lm.path), sampler=sampler, steps=steps, guidance=float(guidance),
        seed=int(seed), method="any" if method is None else method, n_endmembers=int(p),
        window_overlap=overlap if max(size) > patch else 0,
    )
    return xr.DataArray(
        out,
        dims=("sample", "endmember", "y", "x"),
        coords={"sample": np.arange(n), "endmember": default_endmember_names(p)},
        name="abundances",
        attrs={"units": "1", "long_name": "fractional abundance", **attrs},
    )
