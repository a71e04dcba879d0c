"""CNNAEU: convolutional autoencoder unmixing (Palsson, Ulfarsson & Sveinsson, IEEE TGRS 59(1), 2021).

Architecture (as in the paper and HySUPP's port; written from the paper's description):

* encoder: Conv 3×3 (bands → 48, no bias, reflect padding) → LeakyReLU(0.02) → BatchNorm → SpatialDropout(0.2)
  → Conv 1×1 (48 → p, no bias) → LeakyReLU(0.02) → BatchNorm → SpatialDropout(0.2);
* abundances: softmax(3·x) over the p channels (≥ 0, sum to one);
* decoder: one Conv d×d (p → bands, no bias, reflect padding) whose weights are kept **non-negative**
  (clipped at 0 after every update, like Keras' ``NonNeg`` constraint); the endmembers are the
  decoder weights averaged over the kernel window;
* loss: mean spectral angle (SAD) between input and reconstruction per pixel;
* optimiser: RMSprop with TensorFlow's update (ε inside the square root, :class:`RMSpropTF`);
* training data: random square patches of the (max-scaled) image; weights drawn from N(0, 0.3²).

Our defaults differ from the paper's (320 epochs of 250 patches, lr 3e-3, d = 13) and HySUPP's (320 epochs,
~25–32 patches, batch 15, lr 3e-4, d = 11) to run fast on a CPU: HySUPP's patch count and kernel, 90 epochs
(3.6× fewer passes over the patches) in batches of 5 patches (1.4–1.5× fewer optimiser steps: 450 on Samson,
630 on Jasper Ridge, vs 640 and 960) at lr 1e-2; see ``docs/unmixing_deep.md`` for the measured accuracy and
runtime (60 epochs, the default until session 6, left Samson's mean SAD at 3.62° with one seed at 5.8°).

Geometry and masks: the network needs the image grid. Masked (nodata) pixels are filled with the spectrum of
their nearest valid pixel before the convolutions (``scipy.ndimage.distance_transform_edt``), are left out
of the loss, and get NaN abundances in the result (done by the base class). Abundances for the whole image
come from the encoder applied in tiles with a one-pixel halo, which gives exactly the full-image result
(the encoder's receptive field is 3×3) in bounded memory.

Output (``abundances="fcls"``, default; :func:`output_estimates`): the SAD loss fixes the shapes of the
endmembers (the kernel-averaged decoder weights) but not their magnitudes (each pixel's scale is free).
We fit one magnitude per endmember by least squares of the data on the encoder's abundances
(:func:`endmember_scales`), so the endmembers are in the cube's units, and return the exact FCLS
abundances with them — as the other least-squares methods of this package do. ``"sclsu"`` returns
SCLSU abundances (Veganzones et al. 2014: NNLS, divided by the coefficients' sum, the pixel's scale);
``"encoder"`` the encoder's softmax output, as in the paper (endmembers then scaled by one least-squares
factor ``c = <Y, E A> / ||E A||²``). Measured differences: ``docs/unmixing_deep.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simhsi.errors import check_param
from simhsi.unmixing._base import Prepared, TorchUnmixer, register

#: Output abundance estimators of :class:`CNNAEU`.
ABUNDANCE_ESTIMATORS = ("fcls", "sclsu", "encoder")


def endmember_scales(Y: np.ndarray, E: np.ndarray, A: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Per-endmember magnitudes d >= 0 minimising ``‖Y − E diag(d) A‖²_F`` (Y (B, N), E (B, p), A (p, N)).

    The normal equations only need ``H = (EᵀE) ∘ (AAᵀ)`` and ``g_i = Σ_n (EᵀY)_in A_in`` (accumulated
    over pixel chunks, so memory stays O(p·chunk)); the p-variable NNLS is solved exactly.
    """
    from scipy.optimize import nnls as scipy_nnls

    p = E.shape[1]
    AAt = np.zeros((p, p))
    g = np.zeros(p)
    for s0 in range(0, Y.shape[1], chunk):
        a = A[:, s0:s0 + chunk]
        AAt += a @ a.T
        g += np.einsum("in,in->i", E.T @ Y[:, s0:s0 + chunk], a)
    H = (E.T @ E) * AAt
    w, V = np.linalg.eigh(H)
    if w[-1] <= 0:
        return np.zeros(p)
    w = np.maximum(w, 1e-12 * w[-1])
    R = (V * np.sqrt(w)).T  # H = RᵀR
    return scipy_nnls(R, (V.T @ g) / np.sqrt(w))[0]


def output_estimates(Y: np.ndarray, E: np.ndarray, A_enc: np.ndarray, estimator: str
                     ) -> tuple[np.ndarray, np.ndarray, str]:
    """CNNAEU's outputs from the decoder's (kernel-averaged) endmember shapes E (B, p) and the encoder's
    abundances A_enc (p, N): ``(E in the units of Y, A (p, N), estimator used)``.

    * ``"fcls"``: each endmember's magnitude (which the SAD loss leaves free) is fitted by
      :func:`endmember_scales` with the encoder's abundances, then A = FCLS with the scaled endmembers;
    * ``"sclsu"``: A = SCLSU(Y, E) (:mod:`simhsi.unmixing.sclsu`); E scaled by one least-squares factor;
    * ``"encoder"``: A = A_enc, E scaled by one least-squares factor (the paper's output).

    ``"fcls"`` falls back to ``"sclsu"`` when a fitted magnitude is 0, and both to ``"encoder"`` when E is
    rank deficient; the third value says which estimator was used.
    """
    p = E.shape[1]
    full_rank = np.linalg.matrix_rank(E) == p
    if estimator == "fcls" and full_rank:
        from simhsi.unmixing.fcls import fcls

        d = endmember_scales(Y, E, A_enc)
        if np.all(d > 0):
            return E * d, fcls(Y, E * d), "fcls"
        estimator = "sclsu"  # an endmember the encoder never uses: no magnitude to fit
    A, used = A_enc, "encoder"
    if estimator == "sclsu" and full_rank:
        from simhsi.unmixing.sclsu import sclsu

        A, used = sclsu(Y, E)[0], "sclsu"
    EA = E @ A
    denom = float(np.sum(EA * EA))
    c = float(np.sum(Y * EA)) / denom if denom > 0 else 1.0
    return E * max(c, 0.0), A, used


def _fill_masked(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of ``img`` (B, H, W) where pixels with ``mask`` False take their nearest valid pixel's spectrum."""
    if mask.all():
        return img
    from scipy.ndimage import distance_transform_edt

    _, (iy, ix) = distance_transform_edt(~mask, return_distances=True, return_indices=True)
    return img[:, iy, ix]


def auto_n_patches(h: int, w: int, n_bands: int) -> int:
    """HySUPP's patch count rule ``250 · H·W·B / (307·307·162)`` (the paper used 250 patches on Urban,
    307×307×162), clipped to [16, 250]."""
    return int(np.clip(round(250 * h * w * n_bands / (307 * 307 * 162)), 16, 250))


def _build_model(n_bands: int, p: int, kernel: int, scale: float, dropout: float):
    """The CNNAEU network as a torch module (imports torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from simhsi.unmixing._torch import conv2d_few_in

    class SpatialDropout(nn.Module):
        """Drops whole channels (like Keras' SpatialDropout2D) using an explicit torch.Generator."""

        def __init__(self, rate: float) -> None:
            super().__init__()
            self.rate = rate
            self.generator: torch.Generator | None = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.rate == 0:
                return x
            keep = torch.empty(x.shape[0], x.shape[1], 1, 1, device=x.device, dtype=x.dtype)
            keep.bernoulli_(1.0 - self.rate, generator=self.generator)
            return x * keep / (1.0 - self.rate)

    class CNNAEUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = scale
            self.encoder = nn.Sequential(
                nn.Conv2d(n_bands, 48, kernel_size=3, padding=1, padding_mode="reflect", bias=False),
                nn.LeakyReLU(0.02),
                nn.BatchNorm2d(48),
                SpatialDropout(dropout),
                nn.Conv2d(48, p, kernel_size=1, bias=False),
                nn.LeakyReLU(0.02),
                nn.BatchNorm2d(p),
                SpatialDropout(dropout),
            )
            self.decoder = nn.Conv2d(p, n_bands, kernel_size=kernel, padding=kernel // 2,
                                     padding_mode="reflect", bias=False)

        def abundances(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.scale * self.encoder(x), dim=1)

        def decode(self, a: torch.Tensor) -> torch.Tensor:
            """The decoder convolution (reflect padding) with a faster CPU backward; same result."""
            pad = self.decoder.kernel_size[0] // 2
            return conv2d_few_in(F.pad(a, (pad,) * 4, mode="reflect"), self.decoder.weight)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            a = self.abundances(x)
            return a, self.decode(a)

        def set_generator(self, g: torch.Generator) -> None:
            for m in self.modules():
                if isinstance(m, SpatialDropout):
                    m.generator = g

        def clip_decoder(self) -> None:
            with torch.no_grad():
                self.decoder.weight.clamp_(min=0.0)

    return CNNAEUNet()


@register
class CNNAEU(TorchUnmixer):
    """Convolutional autoencoder unmixing (Palsson et al. 2021) with a non-negative decoder and SAD loss.

    Parameters
    ----------
    n_endmembers: number of endmembers p.
    epochs: passes over the training patches.
    n_patches: random training patches per fit; None → HySUPP's rule, clipped to [16, 250].
    patch_size: side of the square patches, pixels (reduced to the image size for small images).
    batch_size: patches per optimiser step.
    lr: RMSprop (TensorFlow semantics) learning rate.
    kernel: decoder kernel side d (odd; reduced for tiny images).
    scale: softmax sharpness (abundances = softmax(scale · code)).
    dropout: spatial-dropout rate in the encoder.
    init_std: standard deviation of the N(0, init_std²) weight initialisation.
    tile: side of the tiles used to infer abundances over the whole image, pixels.
    abundances: "fcls" (default): each endmember's magnitude fitted by least squares with the encoder's
        abundances, then FCLS abundances with those endmembers (:func:`output_estimates`); "sclsu": SCLSU
        abundances (NNLS divided by its sum, :mod:`simhsi.unmixing.sclsu`); "encoder": the encoder's
        softmax output (the paper's).
    device: "auto" (CUDA if present, else CPU), "cpu", "cuda", "cuda:N".
    num_threads: torch CPU threads during the fit (None: torch's setting; restored afterwards).
    seed: seed of every random draw (weights, patches, shuffling, dropout); deterministic on CPU.
    """

    name = "cnnaeu"
    family = "deep"
    #: diagnostics only: called as ``hook(epoch, net, image, mask, loss_history)`` after every epoch (train mode).
    _epoch_hook: Any = None

    def __init__(
        self,
        n_endmembers: int = 3,
        *,
        epochs: int = 90,
        n_patches: int | None = None,
        patch_size: int = 40,
        batch_size: int = 5,
        lr: float = 1e-2,
        kernel: int = 11,
        scale: float = 3.0,
        dropout: float = 0.2,
        init_std: float = 0.3,
        tile: int = 256,
        abundances: str = "fcls",
        device: str = "auto",
        num_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(n_endmembers, seed=seed)
        self.epochs = epochs
        self.n_patches = n_patches
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.lr = lr
        self.kernel = kernel
        self.scale = scale
        self.dropout = dropout
        self.init_std = init_std
        self.tile = tile
        self.abundances = abundances
        self.device = device
        self.num_threads = num_threads

    def _check(self) -> None:
        own = type(self).__name__
        isint = (int, np.integer)
        check_param("epochs", self.epochs, isinstance(self.epochs, isint) and self.epochs >= 1, "an int >= 1", own)
        check_param("n_patches", self.n_patches,
                    self.n_patches is None or (isinstance(self.n_patches, isint) and self.n_patches >= 1),
                    "None or an int >= 1", own)
        check_param("patch_size", self.patch_size, isinstance(self.patch_size, isint) and self.patch_size >= 3,
                    "an int >= 3", own)
        check_param("batch_size", self.batch_size, isinstance(self.batch_size, isint) and self.batch_size >= 1,
                    "an int >= 1", own)
        check_param("lr", self.lr, isinstance(self.lr, float | int) and self.lr > 0, "a float > 0", own)
        check_param("kernel", self.kernel, isinstance(self.kernel, isint) and self.kernel >= 1 and self.kernel % 2 == 1,
                    "an odd int >= 1", own)
        check_param("scale", self.scale, isinstance(self.scale, float | int) and self.scale > 0, "a float > 0", own)
        check_param("dropout", self.dropout, isinstance(self.dropout, float | int) and 0 <= self.dropout < 1,
                    "a float in [0, 1)", own)
        check_param("init_std", self.init_std, isinstance(self.init_std, float | int) and self.init_std > 0,
                    "a float > 0", own)
        check_param("tile", self.tile, isinstance(self.tile, isint) and self.tile >= 8, "an int >= 8", own)
        check_param("abundances", self.abundances, self.abundances in ABUNDANCE_ESTIMATORS,
                    f"one of {', '.join(ABUNDANCE_ESTIMATORS)}", own)

    def _fit_impl(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from tqdm.auto import tqdm

        from simhsi.errors import DataError
        from simhsi.unmixing._torch import RMSpropTF, resolve_device, sad_loss, torch_generator

        self._check()
        dev = resolve_device(self.device)
        h, w = prep.shape_yx
        p = self.n_endmembers
        n_bands = prep.Y.shape[0]
        if min(h, w) < 3:
            raise DataError(f"CNNAEU needs an image of at least 3×3 pixels; got {h}×{w}")
        mask = prep.mask
        img = np.zeros((n_bands, h, w), dtype=np.float32)
        img[:, mask] = prep.Y
        img = _fill_masked(img, mask)

        ps = min(self.patch_size, h, w)
        kernel = min(self.kernel, 2 * ps - 1)  # reflect padding needs pad < patch side
        n_patches = self.n_patches if self.n_patches is not None else auto_n_patches(h, w, n_bands)
        ys = rng.integers(0, h - ps + 1, n_patches)
        xs = rng.integers(0, w - ps + 1, n_patches)
        patches = np.stack([img[:, y:y + ps, x:x + ps] for y, x in zip(ys, xs, strict=True)])
        pmask = np.stack([mask[y:y + ps, x:x + ps] for y, x in zip(ys, xs, strict=True)])[:, None]
        X = torch.from_numpy(patches).to(dev)
        M = torch.from_numpy(pmask).to(dev)

        gen_cpu = torch_generator(rng, "cpu")
        gen_dev = gen_cpu if dev.type == "cpu" else torch_generator(rng, dev)
        net = _build_model(n_bands, p, kernel, float(self.scale), float(self.dropout))
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.normal_(0.0, float(self.init_std), generator=gen_cpu)
        net.clip_decoder()
        net.to(dev)
        net.set_generator(gen_dev)
        opt = RMSpropTF(net.parameters(), lr=float(self.lr))
        net.train()
        history: list[float] = []
        bar = tqdm(range(self.epochs), desc="cnnaeu", disable=not progress, leave=False)
        for _ in bar:
            order = torch.randperm(n_patches, generator=gen_cpu).to(dev)
            total = 0.0
            for start in range(0, n_patches, self.batch_size):
                idx = order[start:start + self.batch_size]  # BatchNorm2d is fine with one patch
                xb = X[idx]
                _, out = net(xb)
                loss = sad_loss(xb, out, dim=1, weight=M[idx][:, 0])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                net.clip_decoder()
                total += float(loss.detach()) * idx.numel()
            history.append(total / n_patches)
            bar.set_postfix(sad_rad=f"{history[-1]:.4f}")
            if self._epoch_hook is not None:
                self._epoch_hook(len(history), net, img, mask, history)
        net.eval()
        E = net.decoder.weight.detach().mean(dim=(2, 3)).cpu().numpy().astype(np.float64)  # (B, p)
        A_enc = self._infer(net, img, dev).reshape(p, h * w)[:, mask.ravel()].astype(np.float64)
        E, A, self.abundance_estimator_ = output_estimates(prep.Y, E, A_enc, self.abundances)
        self.net_ = net
        self.loss_history_ = history
        self.kernel_ = kernel
        self.n_patches_ = n_patches
        return E, A

    def fit(self, cube: Any, progress: bool = False) -> Any:
        """Unmix ``cube``; the result's ``abundance_estimator`` attr says how A was computed."""
        ds = super().fit(cube, progress=progress)
        ds.attrs["abundance_estimator"] = self.abundance_estimator_
        return ds

    def _infer(self, net: Any, img: np.ndarray, dev: Any) -> np.ndarray:
        """Abundance maps (p, H, W) of the whole image, encoder applied tile by tile with a 1-pixel halo."""
        import torch

        _, h, w = img.shape
        out = np.empty((self.n_endmembers, h, w), dtype=np.float32)
        t = int(self.tile)
        with torch.no_grad():
            for y0 in range(0, h, t):
                for x0 in range(0, w, t):
                    y1, x1 = min(y0 + t, h), min(x0 + t, w)
                    ya, xa = max(y0 - 1, 0), max(x0 - 1, 0)
                    yb, xb = min(y1 + 1, h), min(x1 + 1, w)
                    # a tile needs >= 2 pixels per side for reflect padding; widen it if it is 1 thick
                    if yb - ya < 2:
                        ya = max(yb - 2, 0)
                    if xb - xa < 2:
                        xa = max(xb - 2, 0)
                    x = torch.from_numpy(np.ascontiguousarray(img[:, ya:yb, xa:xb]))[None].to(dev)
                    a = net.abundances(x)[0].cpu().numpy()
                    out[:, y0:y1, x0:x1] = a[:, y0 - ya:y1 - ya, x0 - xa:x1 - xa]
        return out
