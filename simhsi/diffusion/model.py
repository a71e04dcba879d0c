"""The U-Net of the DDPM abundance generator, its class labels, and the model directory.

Model directory layout (the contract with the samplers in :mod:`simhsi.diffusion`)::

    MODEL_DIR/
      unet/        config.json + diffusion_pytorch_model.safetensors   raw weights
      unet_ema/    config.json + diffusion_pytorch_model.safetensors   EMA weights (use these to sample)
      scheduler/   scheduler_config.json                               DDPMScheduler (linear, T, betas, eps)
      simhsi_model.json                                                meta data, see below
      config.yaml                                                      the full TrainConfig

Conditioning: one class embedding (``UNet2DModel(num_class_embeds=...)``) whose label is the
combination (method, p). ``meta["class_labels"]`` maps ``"<method>|p=<p>"`` to the int label, for every
training method plus the pseudo-method ``"any"`` (p-only conditioning, learnt by replacing the method
with ``"any"`` with probability ``p_any_method``); ``meta["null_class"]`` is the unconditional label of
classifier-free guidance (learnt with probability ``p_uncond``).

Channels: abundances are mapped to the network by ONE global affine map ``x = a*A + b``
(``meta["scaling"]``, default A in [0, 1] -> x in [-1, 1]) and ordered by decreasing mean abundance
(``meta["channel_order"] = "mean_desc"``, over each patch). A model serves every p in ``p_values``
with ``p_max`` channels: channels ``p..p_max-1`` hold the constant ``meta["padding"]["value"]`` (0 in
network space) and are left out of the loss. A sampler should treat them as known: with
:func:`padded_epsilon` the predicted clean value of those channels is exactly the padding value.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simhsi.diffusion.config import TrainConfig
from simhsi.errors import ModelError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

FORMAT_VERSION = 1
META_FILE = "simhsi_model.json"
CONFIG_FILE = "config.yaml"
ANY_METHOD = "any"


# ---------------------------------------------------------------------------------------------
# class labels
# ---------------------------------------------------------------------------------------------
def label_table(methods: Sequence[str], p_values: Sequence[int]) -> tuple[list[str], dict[str, int], int]:
    """``(methods, class_labels, null_class)`` for the given training methods and p values.

    Methods are sorted and de-duplicated; ``"any"`` is appended; label = i_method * n_p + i_p.
    """
    ms = sorted({str(m) for m in methods if str(m) != ANY_METHOD})
    ps = sorted(int(p) for p in p_values)
    labels = {f"{m}|p={p}": i * len(ps) + j for i, m in enumerate([*ms, ANY_METHOD]) for j, p in enumerate(ps)}
    return ms, labels, len(labels)


def class_label(meta: dict[str, Any], method: str | None, p: int) -> int:
    """Integer class label of (method, p); ``method=None`` or ``"any"`` conditions on p only.

    Raises :class:`ParameterError` for a p or method the model was not trained on.
    """
    p_values = [int(v) for v in meta["p_values"]]
    if int(p) not in p_values:
        raise ParameterError(
            f"this model generates p in {p_values} endmembers; got p={p}. Choose one of those "
            "(or train a model with that p in 'p_values')"
        )
    m = ANY_METHOD if method is None else str(method)
    key = f"{m}|p={int(p)}"
    if key not in meta["class_labels"]:
        raise ParameterError(
            f"this model was not trained on method {method!r}; known methods: {list(meta['methods'])} "
            "(or None for any method)"
        )
    return int(meta["class_labels"][key])


def null_label(meta: dict[str, Any]) -> int:
    """The unconditional label used for classifier-free guidance."""
    return int(meta["null_class"])


def downsample_factor(cfg: TrainConfig | dict[str, Any]) -> int:
    """Spatial down-sampling of the U-Net: sample sizes must be multiples of it."""
    if isinstance(cfg, dict):
        if "downsample_factor" in cfg:
            return int(cfg["downsample_factor"])
        return 2 ** (len(cfg["block_out_channels"]) - 1)
    return cfg.downsample_factor


def channel_mask(p: int, p_max: int, *, device: Any = None) -> torch.Tensor:
    """Boolean (p_max,) tensor, True for the p valid channels."""
    import torch

    m = torch.zeros(p_max, dtype=torch.bool, device=device)
    m[:p] = True
    return m


def padded_epsilon(x_t: torch.Tensor, alpha_bar_t: torch.Tensor | float, value: float = 0.0) -> torch.Tensor:
    """The noise that makes the predicted clean sample equal to ``value`` exactly.

    ``eps = (x_t - sqrt(alpha_bar_t) * value) / sqrt(1 - alpha_bar_t)``: put it in place of the
    network's prediction on padded channels (``c >= p``) so they stay on the training distribution.
    """
    import torch

    ab = torch.as_tensor(alpha_bar_t, dtype=x_t.dtype, device=x_t.device)
    if ab.ndim == 1:
        ab = ab.view(-1, *([1] * (x_t.ndim - 1)))
    return (x_t - ab.sqrt() * value) / (1 - ab).sqrt()


# ---------------------------------------------------------------------------------------------
# network and scheduler
# ---------------------------------------------------------------------------------------------
def _block_types(cfg: TrainConfig) -> tuple[list[str], list[str]]:
    down, res = [], cfg.patch_size
    for _ in cfg.block_out_channels:
        down.append("AttnDownBlock2D" if res in cfg.attention_resolutions else "DownBlock2D")
        res //= 2
    up = ["AttnUpBlock2D" if d == "AttnDownBlock2D" else "UpBlock2D" for d in reversed(down)]
    return down, up


def build_unet(cfg: TrainConfig, methods: Sequence[str] = ()) -> UNet2DModel:
    """A fresh ``diffusers.UNet2DModel`` for ``cfg`` conditioned on (method, p) labels.

    Residual blocks with time embedding, self-attention (``AttnDown/UpBlock2D``) where the feature
    map side is in ``cfg.attention_resolutions``, residual+attention mid block, ``p_max`` channels in
    and out, ``num_class_embeds = (len(methods) + 1) * len(p_values) + 1`` (see :func:`label_table`).
    """
    from diffusers import UNet2DModel

    _, labels, null = label_table(methods, cfg.p_values)
    down, up = _block_types(cfg)
    min_attn = min(
        [c for c, d in zip(cfg.block_out_channels, down, strict=True) if d == "AttnDownBlock2D"]
        + [cfg.block_out_channels[-1]]
    )
    head_dim = min(cfg.attention_head_dim, min_attn)
    if min_attn % head_dim:
        raise ParameterError(
            f"The 'attention_head_dim' parameter of TrainConfig must divide the attention block widths "
            f"(smallest {min_attn}). Got {cfg.attention_head_dim} instead."
        )
    return UNet2DModel(
        sample_size=cfg.patch_size,
        in_channels=cfg.p_max,
        out_channels=cfg.p_max,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        dropout=cfg.dropout,
        norm_num_groups=cfg.norm_num_groups,
        attention_head_dim=head_dim,
        add_attention=True,
        num_class_embeds=null + 1,
    )


def build_scheduler(cfg: TrainConfig) -> DDPMScheduler:
    """The training ``DDPMScheduler`` (linear betas, T steps, epsilon prediction, x0 clipped to [-1, 1])."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        beta_schedule=cfg.beta_schedule,
        prediction_type=cfg.prediction_type,
        clip_sample=True,
        clip_sample_range=1.0,
    )


def make_meta(cfg: TrainConfig, methods: Sequence[str], training: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``simhsi_model.json`` content for a model trained with ``cfg`` on ``methods``."""
    ms, labels, null = label_table(methods, cfg.p_values)
    return {
        "format_version": FORMAT_VERSION,
        "p_max": cfg.p_max,
        "p_values": list(cfg.p_values),
        "methods": ms,
        "any_method": ANY_METHOD,
        "class_labels": labels,
        "null_class": null,
        "num_class_embeds": null + 1,
        "scaling": {"a": cfg.scale_a, "b": cfg.scale_b},
        "channel_order": cfg.channel_order,
        "channel_order_scope": cfg.channel_order_scope,
        "padding": {"value": 0.0, "space": "network", "in_loss": False},
        "patch_size": cfg.patch_size,
        "downsample_factor": cfg.downsample_factor,
        "training": dict(training or {}),
    }


# ---------------------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A model directory loaded for sampling."""

    unet: UNet2DModel
    scheduler_config: dict[str, Any]
    meta: dict[str, Any]
    config: dict[str, Any]
    path: Path

    def make_scheduler(self, cls: Any = None) -> Any:
        """A diffusers scheduler of class ``cls`` (default ``DDPMScheduler``) from the saved config."""
        if cls is None:
            from diffusers import DDPMScheduler as cls
        return cls.from_config(self.scheduler_config)


def save_model(
    directory: str | os.PathLike[str],
    unet: UNet2DModel,
    ema_unet: UNet2DModel | None,
    scheduler: DDPMScheduler,
    meta: dict[str, Any],
    cfg: TrainConfig,
    *,
    fp16: bool | None = None,
) -> Path:
    """Write the model directory (see module doc); each part is replaced atomically.

    ``ema_unet=None`` stores the raw weights as EMA weights too. ``fp16`` (default ``cfg.save_fp16``)
    stores float16 weights (half the size; loaded back as float32).
    """
    import copy


    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    fp16 = cfg.save_fp16 if fp16 is None else fp16
    for name, net in (("unet", unet), ("unet_ema", ema_unet if ema_unet is not None else unet)):
        tmp = d / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        out = copy.deepcopy(net).to("cpu")
        out = out.half() if fp16 else out.float()
        out.save_pretrained(tmp, safe_serialization=True)
        _replace_dir(tmp, d / name)
    tmp = d / ".scheduler.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    scheduler.save_pretrained(tmp)
    _replace_dir(tmp, d / "scheduler")
    _write_atomic(d / META_FILE, json.dumps(meta, indent=2, sort_keys=False, default=str))
    import yaml

    _write_atomic(d / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return d


def _replace_dir(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``simhsi_model.json``; :class:`ModelError` if missing or incompatible."""
    d = Path(directory)
    if not d.is_dir():
        raise ModelError("model directory not found; pass a folder written by 'simhsi train'", path=d)
    f = d / META_FILE
    if not f.is_file():
        raise ModelError(f"not a simhsi model directory (no {META_FILE}); pass a folder written by "
                         "'simhsi train'", path=d)
    try:
        meta = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable {META_FILE} ({exc}); re-create the model with 'simhsi train'", path=d) from exc
    need = ("format_version", "p_max", "p_values", "methods", "class_labels", "null_class", "scaling",
            "channel_order", "patch_size", "downsample_factor")
    missing = [k for k in need if k not in meta]
    if missing:
        raise ModelError(f"{META_FILE} lacks {missing}; re-create the model with 'simhsi train'", path=d)
    if int(meta["format_version"]) > FORMAT_VERSION:
        raise ModelError(f"model format version {meta['format_version']} is newer than this simhsi supports "
                         f"({FORMAT_VERSION}); upgrade simhsi", path=d)
    return meta


def load_model(
    directory: str | os.PathLike[str], *, device: str | torch.device | None = None, ema: bool = True
) -> LoadedModel:
    """Load a model directory: the EMA (default) or raw U-Net in float32 and eval mode, on ``device``.

    ``device=None`` picks CUDA when available. Raises :class:`ModelError` when the directory is
    missing, incomplete, or its parts disagree (channels, number of classes).
    """
    import torch
    import yaml
    from diffusers import UNet2DModel

    d = Path(directory)
    meta = read_meta(d)
    sub = d / ("unet_ema" if ema else "unet")
    if not (sub / "config.json").is_file():
        raise ModelError(f"missing {sub.name}/config.json; the model directory is incomplete", path=d)
    sched_file = d / "scheduler" / "scheduler_config.json"
    if not sched_file.is_file():
        raise ModelError("missing scheduler/scheduler_config.json; the model directory is incomplete", path=d)
    try:
        unet = UNet2DModel.from_pretrained(sub, low_cpu_mem_usage=False).float()
        scheduler_config = json.loads(sched_file.read_text())
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot load {sub.name} ({type(exc).__name__}: {exc}); re-create the model", path=d) from exc
    if unet.config.in_channels != int(meta["p_max"]) or unet.config.out_channels != int(meta["p_max"]):
        raise ModelError(f"U-Net has {unet.config.in_channels} channels but p_max is {meta['p_max']}; "
                         "the model directory is inconsistent", path=d)
    if unet.config.num_class_embeds != int(meta["null_class"]) + 1:
        raise ModelError(f"U-Net has {unet.config.num_class_embeds} class embeddings but the meta data "
                         f"need {int(meta['null_class']) + 1}; the model directory is inconsistent", path=d)
    cfg_file = d / CONFIG_FILE
    config = yaml.safe_load(cfg_file.read_text()) if cfg_file.is_file() else {}
    dev = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    unet = unet.to(dev).eval()
    return LoadedModel(unet=unet, scheduler_config=scheduler_config, meta=meta, config=config or {}, path=d)


def export_model(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, raw: bool = False, overwrite: bool = False
) -> Path:
    """Copy a trained model for shipping: EMA weights, scheduler, meta data, config, loss curve.

    Checkpoints and previews are left out; the raw weights too unless ``raw=True`` (a directory
    without ``unet/`` loads with ``load_model(..., ema=True)`` only).
    """
    from simhsi.errors import OutputError

    s, d = Path(src), Path(dst)
    read_meta(s)
    if d.exists():
        if not overwrite:
            raise OutputError("already exists; pass overwrite=True to replace it", path=d)
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for sub in ("unet_ema", "scheduler", *(["unet"] if raw else [])):
        shutil.copytree(s / sub, d / sub)
    for f in (META_FILE, CONFIG_FILE, "loss.png"):
        if (s / f).is_file():
            shutil.copy2(s / f, d / f)
    return d
