"""Training configuration of the DDPM abundance generator (one YAML-able dataclass).

Defaults follow the paper / authors' code (see ``docs/generator.md``): U-Net width 64 with
multipliers (1, 2, 4, 8, 8), attention at 16x16, 2 residual blocks per level, dropout 0.2, linear
beta schedule with T = 2000 from 1e-6 to 1e-2, epsilon prediction, L1 loss, Adam 1e-4, EMA 0.9999,
128x128 patches, p = 3..5. :func:`small_config` is the CPU-sized variant used for the bundled model.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simhsi.errors import InputFileError, ParameterError, check_param

#: Known values of ``channel_order``.
CHANNEL_ORDERS = ("mean_desc",)
CHANNEL_ORDER_SCOPES = ("patch", "scene")
MIXED_PRECISIONS = ("auto", "no", "bf16")
LOSSES = ("l1", "l2", "l2-adaptive")
LR_SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.yaml`` next to the model.

    Units: ``patch_size``/``stride`` in pixels, ``attention_resolutions`` in pixels of the feature map
    side (a block whose input is 16x16 gets self-attention when 16 is listed), ``lr`` per step.
    """

    # --- data -------------------------------------------------------------------------------
    patch_size: int = 128
    stride: int | None = None  # None: patch_size // 2
    p_values: list[int] = field(default_factory=lambda: [3, 4, 5])
    channel_order: str = "mean_desc"
    channel_order_scope: str = "patch"
    augment: bool = True  # random flips / rot90 (the 8 dihedral transforms)
    min_valid_fraction: float = 1.0  # patches with a smaller fraction of finite pixels are dropped
    # source substring -> int factor: patches of scenes whose source contains it are listed that many times
    # per epoch (e.g. {"wdc_mall": 2}); the largest matching factor applies
    oversample: dict[str, int] = field(default_factory=dict)
    scale_a: float = 2.0  # x = scale_a * A + scale_b: A in [0, 1] -> x in [-1, 1]
    scale_b: float = -1.0
    # --- network ----------------------------------------------------------------------------
    block_out_channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 512])
    attention_resolutions: list[int] = field(default_factory=lambda: [16])
    layers_per_block: int = 2
    dropout: float = 0.2
    norm_num_groups: int = 32
    attention_head_dim: int = 64
    # --- diffusion --------------------------------------------------------------------------
    num_train_timesteps: int = 2000
    beta_start: float = 1e-6
    beta_end: float = 1e-2
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    # on the predicted noise: "l1" (paper), "l2" (mean squared error), "l2-adaptive" (L2 divided by its running
    # mean per band of timesteps: L1's balance over noise levels, L2's conditional-mean optimum)
    loss: str = "l1"
    # --- optimisation -----------------------------------------------------------------------
    steps: int = 100_000
    batch_size: int = 16  # global batch (split over DDP ranks)
    lr: float = 1e-4
    # learning rate: ``lr`` until step ``lr_decay_start``, then "constant" keeps it, "cosine" / "linear" take it
    # to ``lr_min`` at step ``steps`` (the stable and decay phases of a warmup-stable-decay schedule: the decay
    # can be added when resuming a constant-rate run)
    lr_schedule: str = "constant"
    lr_decay_start: int = 0
    lr_min: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient L2 norm; 0 disables
    ema_decay: float = 0.9999
    ema_warmup: bool = True  # decay_k = min(ema_decay, 1 - (1 + k / ema_inv_gamma) ** -ema_power)
    ema_inv_gamma: float = 1.0
    ema_power: float = 2.0 / 3.0
    p_uncond: float = 0.1  # classifier-free guidance: label replaced by the null class
    p_any_method: float = 0.1  # method replaced by "any" (p kept): p-only conditioning
    mixed_precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    seed: int = 0
    # --- bookkeeping ------------------------------------------------------------------------
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    sample_every: int = 5000  # 0 disables the PNG sample grids
    sample_steps: int = 10  # DDIM steps of the preview grids
    n_preview: int = 8
    save_fp16: bool = False  # store the model weights in float16 (bundled model)

    # ------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.p_values = sorted(int(p) for p in self.p_values)
        self.block_out_channels = [int(c) for c in self.block_out_channels]
        self.attention_resolutions = [int(r) for r in self.attention_resolutions]
        self.adam_betas = [float(b) for b in self.adam_betas]
        self.validate()

    @property
    def p_max(self) -> int:
        """Number of network channels (largest p served)."""
        return max(self.p_values)

    @property
    def effective_stride(self) -> int:
        """Patch stride in pixels."""
        return self.stride if self.stride else max(1, self.patch_size // 2)

    @property
    def downsample_factor(self) -> int:
        """Total spatial down-sampling of the U-Net (sizes must be multiples of it)."""
        return 2 ** (len(self.block_out_channels) - 1)

    def validate(self) -> None:
        """Raise :class:`ParameterError` for any inconsistent value."""
        own = "TrainConfig"
        check_param("block_out_channels", self.block_out_channels, len(self.block_out_channels) >= 1
                    and all(c > 0 for c in self.block_out_channels), "a non-empty list of positive ints", own)
        f = 2 ** (len(self.block_out_channels) - 1)
        check_param("patch_size", self.patch_size, isinstance(self.patch_size, int) and self.patch_size >= f
                    and self.patch_size % f == 0, f"a positive multiple of the U-Net downsampling {f}", own)
        check_param("stride", self.stride, self.stride is None or self.stride >= 1, "None or an int >= 1", own)
        check_param("p_values", self.p_values, len(self.p_values) >= 1 and all(2 <= p <= 64 for p in self.p_values)
                    and len(set(self.p_values)) == len(self.p_values), "distinct ints in [2, 64]", own)
        check_param("channel_order", self.channel_order, self.channel_order in CHANNEL_ORDERS,
                    f"one of {CHANNEL_ORDERS}", own)
        check_param("channel_order_scope", self.channel_order_scope,
                    self.channel_order_scope in CHANNEL_ORDER_SCOPES, f"one of {CHANNEL_ORDER_SCOPES}", own)
        check_param("min_valid_fraction", self.min_valid_fraction, 0 < self.min_valid_fraction <= 1,
                    "in (0, 1]", own)
        check_param("oversample", self.oversample, isinstance(self.oversample, dict) and all(
            isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and v >= 1
            for k, v in self.oversample.items()), "a mapping of non-empty source substrings to ints >= 1", own)
        check_param("scale_a", self.scale_a, self.scale_a != 0, "non-zero", own)
        for c in self.block_out_channels:
            check_param("norm_num_groups", self.norm_num_groups, c % self.norm_num_groups == 0,
                        f"a divisor of every block width {self.block_out_channels}", own)
        check_param("layers_per_block", self.layers_per_block, self.layers_per_block >= 1, "an int >= 1", own)
        check_param("dropout", self.dropout, 0 <= self.dropout < 1, "in [0, 1)", own)
        check_param("attention_head_dim", self.attention_head_dim, self.attention_head_dim >= 1, "an int >= 1", own)
        check_param("num_train_timesteps", self.num_train_timesteps, self.num_train_timesteps >= 2,
                    "an int >= 2", own)
        check_param("beta_start", self.beta_start, 0 < self.beta_start < self.beta_end < 1,
                    "0 < beta_start < beta_end < 1", own)
        check_param("beta_schedule", self.beta_schedule, self.beta_schedule in ("linear", "scaled_linear",
                    "squaredcos_cap_v2"), "linear, scaled_linear or squaredcos_cap_v2", own)
        check_param("prediction_type", self.prediction_type, self.prediction_type == "epsilon", "'epsilon'", own)
        check_param("loss", self.loss, self.loss in LOSSES, f"one of {LOSSES}", own)
        check_param("steps", self.steps, isinstance(self.steps, int) and self.steps >= 1, "an int >= 1", own)
        check_param("batch_size", self.batch_size, isinstance(self.batch_size, int) and self.batch_size >= 1,
                    "an int >= 1", own)
        check_param("lr", self.lr, self.lr > 0, "> 0", own)
        check_param("lr_schedule", self.lr_schedule, self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}", own)
        check_param("lr_decay_start", self.lr_decay_start, isinstance(self.lr_decay_start, int)
                    and 0 <= self.lr_decay_start and (self.lr_schedule == "constant" or self.lr_decay_start < self.steps),
                    "an int in [0, steps)", own)
        check_param("lr_min", self.lr_min, 0 <= self.lr_min <= self.lr, "in [0, lr]", own)
        check_param("grad_clip", self.grad_clip, self.grad_clip >= 0, ">= 0 (0 disables)", own)
        check_param("ema_decay", self.ema_decay, 0 <= self.ema_decay < 1, "in [0, 1)", own)
        check_param("p_uncond", self.p_uncond, 0 <= self.p_uncond < 1, "in [0, 1)", own)
        check_param("p_any_method", self.p_any_method, 0 <= self.p_any_method < 1, "in [0, 1)", own)
        check_param("mixed_precision", self.mixed_precision, self.mixed_precision in MIXED_PRECISIONS,
                    f"one of {MIXED_PRECISIONS}", own)
        check_param("checkpoint_every", self.checkpoint_every, self.checkpoint_every >= 1, "an int >= 1", own)
        check_param("keep_checkpoints", self.keep_checkpoints, self.keep_checkpoints >= 1, "an int >= 1", own)
        check_param("sample_every", self.sample_every, self.sample_every >= 0, "an int >= 0 (0 disables)", own)
        check_param("sample_steps", self.sample_steps, self.sample_steps >= 1, "an int >= 1", own)

    def lr_at(self, step: int) -> float:
        """Learning rate of optimisation step ``step`` (0-based: the update that makes step ``step + 1``)."""
        if self.lr_schedule == "constant" or step < self.lr_decay_start:
            return self.lr
        frac = min(1.0, (step - self.lr_decay_start) / max(1, self.steps - 1 - self.lr_decay_start))
        shape = 0.5 * (1.0 + math.cos(math.pi * frac)) if self.lr_schedule == "cosine" else 1.0 - frac
        return self.lr_min + (self.lr - self.lr_min) * shape

    # --- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None, base: TrainConfig | None = None
                  ) -> TrainConfig:
        """Build from a dict (keys not given come from ``base``, else the defaults); unknown keys are an error."""
        if not isinstance(d, dict):
            raise ParameterError(f"a training config must be a mapping; got {type(d).__name__}", path=source)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"unknown training config key(s) {unknown}; known keys: {sorted(names)}",
                                 path=source)
        try:
            return dataclasses.replace(base, **d) if base is not None else cls(**d)
        except TypeError as exc:
            raise ParameterError(f"bad training config: {exc}", path=source) from exc

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_yaml(self, path: str | os.PathLike[str]) -> None:
        """Write as YAML."""
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], base: TrainConfig | None = None) -> TrainConfig:
        """Read a YAML file written by :meth:`to_yaml` (or by hand, any subset of keys over ``base``)."""
        import yaml

        p = Path(path)
        if not p.is_file():
            raise InputFileError("training config file not found; check the --config path", path=p)
        try:
            d = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ParameterError(f"not valid YAML ({exc.__class__.__name__}); fix the syntax", path=p) from exc
        return cls.from_dict(d, source=str(p), base=base)


def paper_config(**changes: Any) -> TrainConfig:
    """The paper / authors' configuration (GPU sized): width 64 x (1,2,4,8,8), 128 px patches."""
    return TrainConfig().replace(**changes)


def small_config(**changes: Any) -> TrainConfig:
    """CPU-sized configuration of the bundled default model (~2 M parameters, 32 px patches)."""
    base = TrainConfig(
        patch_size=32,
        stride=8,
        block_out_channels=[32, 64, 128],
        attention_resolutions=[16, 8],
        layers_per_block=1,
        dropout=0.1,
        norm_num_groups=16,
        attention_head_dim=32,
        batch_size=16,
        steps=20_000,
        ema_decay=0.999,
        checkpoint_every=500,
        sample_every=2000,
        save_fp16=True,
    )
    return base.replace(**changes)


def tiny_config(**changes: Any) -> TrainConfig:
    """A seconds-on-CPU configuration for tests and smoke runs (16 px patches, ~0.2 M parameters)."""
    base = TrainConfig(
        patch_size=16,
        stride=4,
        block_out_channels=[16, 32],
        attention_resolutions=[8],
        layers_per_block=1,
        dropout=0.1,
        norm_num_groups=8,
        attention_head_dim=8,
        batch_size=4,
        steps=4,
        ema_decay=0.99,
        checkpoint_every=1,
        sample_every=0,
        sample_steps=2,
        n_preview=2,
    )
    return base.replace(**changes)
