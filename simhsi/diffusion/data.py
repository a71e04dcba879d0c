"""Training data of the DDPM abundance generator: scenes -> labelled, ordered, scaled patches.

* Sources: ``simhsi unmix`` output files (NetCDF with dim ``run``; each run one scene labelled with its
  ``method`` and ``n_endmembers``), plain abundance files (``endmember``, ``y``, ``x``; labelled with
  their ``method`` attribute, else ``"groundtruth"``) and the bundled real maps
  (``simhsi.data.load(...)``, label ``"groundtruth"``).
* p: a scene with p in ``p_values`` is kept; p > ``p_max`` is reduced to ``p_max`` channels by merging
  the least abundant channels into one (abundances of merged classes add, so the map stays on the
  simplex); other p values are skipped with a warning.
* Patches: ``patch_size`` windows on a grid of step ``stride`` (plus the last window flush with the
  scene edge); windows with a fraction of valid pixels below ``min_valid_fraction`` are dropped
  (remaining NaN pixels are set to 1/p). Augmentation: one of the 8 flips/rot90 per patch (seeded).
* Channel order ``mean_desc``: channels sorted by decreasing mean abundance over the patch
  (``channel_order_scope="patch"``) or over the scene (``"scene"``); ties keep the input order.
* Scaling: ONE global affine map ``x = a*A + b`` (default a=2, b=-1: [0, 1] -> [-1, 1]), never
  per patch, so a network value always means the same abundance.
* Padding: a p < p_max patch fills channels p..p_max-1 with 0 in network space; the loss ignores them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simhsi.diffusion.config import TrainConfig
from simhsi.errors import DataError, FormatError, InputFileError

log = logging.getLogger(__name__)

GROUNDTRUTH = "groundtruth"
BUNDLED_ABUNDANCES = ("samson", "jasper_ridge", "wdc_mall")


# ---------------------------------------------------------------------------------------------
# global scaling
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GlobalScaling:
    """The one global affine map between abundances A and network values x: ``x = a*A + b``."""

    a: float = 2.0
    b: float = -1.0

    @classmethod
    def from_meta(cls, meta_or_cfg: dict[str, Any] | TrainConfig) -> GlobalScaling:
        """From a model's ``meta["scaling"]`` or a :class:`TrainConfig`."""
        if isinstance(meta_or_cfg, TrainConfig):
            return cls(meta_or_cfg.scale_a, meta_or_cfg.scale_b)
        s = meta_or_cfg["scaling"]
        return cls(float(s["a"]), float(s["b"]))

    def forward(self, abundances: Any) -> Any:
        """A -> x (numpy or torch, any shape)."""
        return abundances * self.a + self.b

    def inverse(self, x: Any) -> Any:
        """x -> A (numpy or torch, any shape); exact inverse of :meth:`forward`."""
        return (x - self.b) / self.a


# ---------------------------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------------------------
@dataclass
class Scene:
    """One abundance map used for training: (p, H, W) float32 (NaN = nodata) and its label."""

    abundances: np.ndarray
    method: str
    source: str
    p_original: int = 0

    def __post_init__(self) -> None:
        if not self.p_original:
            self.p_original = self.p

    @property
    def p(self) -> int:
        """Number of channels."""
        return int(self.abundances.shape[0])


def merge_to(abundances: np.ndarray, p_max: int) -> np.ndarray:
    """Reduce (p, H, W) abundances to ``p_max`` channels by summing the least abundant ones."""
    p = abundances.shape[0]
    if p <= p_max:
        return abundances
    means = np.nanmean(abundances.reshape(p, -1), axis=1)
    order = np.argsort(-means, kind="stable")
    keep, merge = order[: p_max - 1], order[p_max - 1 :]
    merged = np.sum(abundances[merge], axis=0, keepdims=True)
    return np.concatenate([abundances[np.sort(keep)], merged], axis=0)


def _scene_from_array(a: Any, method: str, source: str, cfg: TrainConfig) -> Scene | None:
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim != 3:
        raise DataError(f"abundances must be (endmember, y, x); got shape {arr.shape}", path=source)
    # drop endmember rows that are entirely NaN (NaN padding of unmix outputs beyond p)
    arr = arr[~np.all(np.isnan(arr.reshape(arr.shape[0], -1)), axis=1)]
    p = arr.shape[0]
    if p > cfg.p_max:
        arr = merge_to(arr, cfg.p_max)
    elif p not in cfg.p_values:
        log.warning("%s (%s): p=%d is not in p_values %s; skipped", source, method, p, cfg.p_values)
        return None
    if min(arr.shape[1:]) < cfg.patch_size:
        log.warning("%s (%s): %dx%d px is smaller than patch_size %d; skipped", source, method,
                    arr.shape[1], arr.shape[2], cfg.patch_size)
        return None
    return Scene(arr, str(method), source, p_original=p)


def read_abundance_scenes(path: str | os.PathLike[str], cfg: TrainConfig) -> list[Scene]:
    """Scenes from one file: a ``simhsi unmix`` output (dim ``run``) or an abundance file."""

    p = Path(path)
    if not p.is_file():
        raise InputFileError("training data file not found; check the --data path", path=p)
    from simhsi.io.netcdf import open_dataset

    ds = open_dataset(p, chunks=None)  # clear InputFileError / FormatError for bad files
    with ds:
        if "abundances" in ds.data_vars:
            da = ds["abundances"]
        elif len(ds.data_vars) == 1:
            da = next(iter(ds.data_vars.values()))
        else:
            raise FormatError(f"no 'abundances' variable (found {list(ds.data_vars)}); pass a 'simhsi unmix' "
                              "output or an abundance file", path=p)
        scenes: list[Scene] = []
        if "run" in da.dims:
            if set(da.dims) != {"run", "endmember", "y", "x"}:
                raise FormatError(f"'abundances' must have dims (run, endmember, y, x); got {da.dims}", path=p)
            da = da.transpose("run", "endmember", "y", "x").load()
            methods = da["method"].values if "method" in da.coords else [ds.attrs.get("method", "unknown")] * da.sizes["run"]
            for i in range(da.sizes["run"]):
                s = _scene_from_array(da.values[i], str(methods[i]), f"{p}#run{i}", cfg)
                if s is not None:
                    scenes.append(s)
        else:
            if set(da.dims) != {"endmember", "y", "x"}:
                raise FormatError(f"abundances must have dims (endmember, y, x) or (run, endmember, y, x); "
                                  f"got {da.dims}", path=p)
            da = da.transpose("endmember", "y", "x").load()
            method = da.attrs.get("method", ds.attrs.get("method", GROUNDTRUTH))
            s = _scene_from_array(da.values, str(method), str(p), cfg)
            if s is not None:
                scenes.append(s)
    return scenes


def bundled_scenes(cfg: TrainConfig, names: Sequence[str] = BUNDLED_ABUNDANCES) -> list[Scene]:
    """The ground-truth abundance maps shipped in :mod:`simhsi.data`, labelled ``groundtruth``."""
    import simhsi.data

    out = []
    for name in names:
        ab = simhsi.data.load(name)["abundances"].transpose("endmember", "y", "x")
        s = _scene_from_array(ab.values, GROUNDTRUTH, f"simhsi.data:{name}", cfg)
        if s is not None:
            out.append(s)
    return out


def load_scenes(
    paths: Iterable[str | os.PathLike[str]], cfg: TrainConfig, *, include_bundled: bool = False
) -> list[Scene]:
    """All training scenes from ``paths`` (and the bundled maps); :class:`DataError` if none is usable."""
    scenes: list[Scene] = []
    paths = list(paths)
    for p in paths:
        scenes.extend(read_abundance_scenes(p, cfg))
    if include_bundled:
        scenes.extend(bundled_scenes(cfg))
    if not paths and not include_bundled:
        raise DataError("no training data: give --data FILE (repeatable) and/or --include-bundled")
    if not scenes:
        raise DataError(f"no usable scene in the training data (p must be in {cfg.p_values} or larger, "
                        f"scenes at least {cfg.patch_size} px); check --data / --patch-size")
    return scenes


# ---------------------------------------------------------------------------------------------
# patches
# ---------------------------------------------------------------------------------------------
def _starts(n: int, size: int, stride: int) -> list[int]:
    s = list(range(0, n - size + 1, stride))
    if s[-1] != n - size:
        s.append(n - size)
    return s


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of the last two axes: rot90 by ``k % 4``, then a flip if ``k >= 4``."""
    out = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return out


def order_channels(a: np.ndarray) -> np.ndarray:
    """Indices sorting the channels of (p, H, W) by decreasing mean abundance (stable)."""
    return np.argsort(-np.nanmean(a.reshape(a.shape[0], -1), axis=1), kind="stable")


@dataclass
class PatchDataset:
    """All training patches, as windows into the scenes (memory: the scenes only).

    ``index`` rows are (scene, y0, x0); a patch of an oversampled scene (``cfg.oversample``) is listed
    :meth:`repeats` times. :meth:`batch` returns network-ready arrays.
    """

    scenes: list[Scene]
    cfg: TrainConfig
    index: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        size, stride = self.cfg.patch_size, self.cfg.effective_stride
        rows = []
        for si, s in enumerate(self.scenes):
            valid = np.all(np.isfinite(s.abundances), axis=0)
            k = self.repeats(s)
            for y0 in _starts(valid.shape[0], size, stride):
                for x0 in _starts(valid.shape[1], size, stride):
                    if valid[y0 : y0 + size, x0 : x0 + size].mean() >= self.cfg.min_valid_fraction:
                        rows.extend([(si, y0, x0)] * k)
        if not rows:
            raise DataError(f"no patch of {size} px with >= {self.cfg.min_valid_fraction:.0%} valid pixels in "
                            "the training data; lower --patch-size or min_valid_fraction")
        self.index = np.asarray(rows, dtype=np.int64)
        self._scene_order = [order_channels(s.abundances) for s in self.scenes]

    def __len__(self) -> int:
        return len(self.index)

    def repeats(self, scene: Scene) -> int:
        """How many times each patch of ``scene`` is listed per epoch (``cfg.oversample``; default 1)."""
        return max([f for key, f in self.cfg.oversample.items() if key in scene.source], default=1)

    @property
    def methods(self) -> list[str]:
        """Sorted training methods."""
        return sorted({s.method for s in self.scenes})

    def summary(self) -> dict[str, Any]:
        """Counts of patches per (method, p) and the sources (for the model's provenance)."""
        counts: dict[str, int] = {}
        distinct = np.unique(self.index, axis=0)
        for si in distinct[:, 0]:
            s = self.scenes[si]
            key = f"{s.method}|p={s.p}"
            counts[key] = counts.get(key, 0) + 1
        out = {"n_patches": len(distinct), "n_scenes": len(self.scenes), "patches_per_label": counts,
               "sources": sorted({s.source.split("#")[0] for s in self.scenes})}
        if len(distinct) != len(self):
            out["n_listed_per_epoch"] = len(self)  # with cfg.oversample
        return out

    def fingerprint(self) -> str:
        """SHA-1 of the scenes, labels and patch index (to check that a resume uses the same data)."""
        cached = getattr(self, "_fingerprint", None)
        if cached is not None:
            return cached
        h = hashlib.sha1()
        for s in self.scenes:
            h.update(s.method.encode())
            h.update(np.ascontiguousarray(s.abundances).tobytes())
        h.update(self.index.tobytes())
        self._fingerprint: str = h.hexdigest()
        return self._fingerprint

    def patch(self, i: int, k: int = 0) -> tuple[np.ndarray, str, int]:
        """Patch ``i`` after dihedral transform ``k``: ((p, P, P) abundances, method, p), channels ordered."""
        si, y0, x0 = self.index[i]
        s = self.scenes[si]
        P = self.cfg.patch_size
        a = s.abundances[:, y0 : y0 + P, x0 : x0 + P]
        order = order_channels(a) if self.cfg.channel_order_scope == "patch" else self._scene_order[si]
        a = np.array(dihedral(a[order], k), dtype=np.float32)
        bad = ~np.isfinite(a)
        if bad.any():
            a[bad] = 1.0 / s.p
        return a, s.method, s.p

    def batch(
        self, indices: Sequence[int], rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(x, p, methods)``: x (B, p_max, P, P) float32 in network space (padding 0), p (B,) int.

        ``rng`` draws the augmentation (None: no augmentation).
        """
        scaling = GlobalScaling.from_meta(self.cfg)
        P, pm = self.cfg.patch_size, self.cfg.p_max
        x = np.zeros((len(indices), pm, P, P), dtype=np.float32)
        ps = np.empty(len(indices), dtype=np.int64)
        methods = []
        ks = rng.integers(0, 8, size=len(indices)) if (rng is not None and self.cfg.augment) else np.zeros(
            len(indices), dtype=np.int64)
        for j, i in enumerate(indices):
            a, m, p = self.patch(int(i), int(ks[j]))
            x[j, :p] = scaling.forward(a)
            ps[j] = p
            methods.append(m)
        return x, ps, methods


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> np.ndarray:
    """Patch indices of global batch ``step`` (0-based): consecutive slices of per-epoch permutations.

    Stateless (a function of ``seed`` and ``step`` only), so a resumed run sees exactly the same batches.
    """
    start = step * batch_size
    out = np.empty(batch_size, dtype=np.int64)
    filled = 0
    while filled < batch_size:
        epoch, pos = divmod(start + filled, n)
        perm = np.random.default_rng([seed, epoch, 0xDA7A]).permutation(n)
        take = min(batch_size - filled, n - pos)
        out[filled : filled + take] = perm[pos : pos + take]
        filled += take
    return out
