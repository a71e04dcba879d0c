"""Torch helpers shared by the deep unmixing methods (CNNAEU, PGMSU).

Import this module only inside ``fit``/``_fit``: it imports torch at the top, and
``import simhsi.unmixing`` must stay light.

* :func:`resolve_device` — ``"auto"`` → CUDA when present, else CPU; any torch device string otherwise.
* :func:`torch_generator` / :func:`seed_from_rng` — torch randomness derived from the method's numpy
  ``Generator`` (no global seeding).
* :func:`cpu_threads` — torch's intra-op CPU thread count inside a ``with`` block only.
* :func:`spectral_angle` / :func:`sad_loss` — spectral angle distance (radians).
* :class:`RMSpropTF` — RMSprop with TensorFlow's update rule (ε inside the square root).
* :func:`conv2d_few_in` — ``F.conv2d`` with a faster CPU backward for convolutions with few input channels
  and a large kernel (CNNAEU's decoder).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from simhsi.errors import ParameterError

#: Margin kept from ±1 before ``acos``: its derivative is infinite at ±1 (NaN gradients on exact fits).
ACOS_CLAMP = 1e-7


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``device``: ``"auto"``/None → ``cuda`` when available, else ``cpu``."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(
            f"The 'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def seed_from_rng(rng: np.random.Generator) -> int:
    """A 63-bit seed drawn from ``rng`` (advances it by one draw)."""
    return int(rng.integers(0, 2**63 - 1))


def torch_generator(rng: np.random.Generator, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from the numpy ``rng``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed_from_rng(rng))
    return g


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Within the block torch uses ``n`` intra-op CPU threads (None: leave torch's setting); restored after.

    Small networks on a busy machine run much faster on one thread (measured: PGMSU on Samson took 27 CPU s
    with 1 thread, 189 CPU s with 2 while other jobs loaded the 2 cores). Results are bit-for-bit repeatable
    for a seed at a fixed thread count; a different count changes the float summation order.
    """
    if n is None:
        yield
        return
    if not isinstance(n, int) or n < 1:
        raise ParameterError(f"The 'num_threads' parameter must be None or an int >= 1. Got {n!r} instead.")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def spectral_angle(a: torch.Tensor, b: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """Angle (radians) between the spectra of ``a`` and ``b`` along ``dim`` (other dims kept).

    The cosine is clamped to ``[-1 + 1e-7, 1 - 1e-7]`` so the gradient stays finite on exact fits.
    """
    dot = (a * b).sum(dim=dim)
    norm = a.norm(dim=dim) * b.norm(dim=dim)
    cos = dot / (norm + eps)
    return torch.acos(torch.clamp(cos, -1.0 + ACOS_CLAMP, 1.0 - ACOS_CLAMP))


def sad_loss(
    target: torch.Tensor, output: torch.Tensor, dim: int = 1, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean spectral angle (radians) between ``target`` and ``output`` along ``dim``.

    ``weight`` (broadcastable to the angle tensor, e.g. a 0/1 mask of valid pixels) makes it a weighted mean.
    """
    if target.shape != output.shape:
        raise ValueError(f"sad_loss: target {tuple(target.shape)} and output {tuple(output.shape)} differ")
    ang = spectral_angle(target, output, dim=dim)
    if weight is None:
        return ang.mean()
    w = weight.to(ang.dtype).expand_as(ang)
    return (ang * w).sum() / w.sum().clamp_min(1.0)


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop with TensorFlow/Keras semantics (``tf.raw_ops.ApplyRMSProp``, Keras ``RMSprop``)::

        ms  <- rho * ms + (1 - rho) * g**2           (ms starts at 0, as in Keras)
        mom <- momentum * mom + lr * g / sqrt(ms + eps)
        w   <- w - mom

    ``torch.optim.RMSprop`` divides by ``sqrt(ms) + eps`` instead: with Keras' eps = 1e-7 the TF rule
    caps the step at ``lr * g / sqrt(1e-7)`` for tiny gradients, where torch's rule lets it grow to
    ``lr * g / 1e-7``. CNNAEU was published with the Keras optimizer, hence this class.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        rho: float = 0.9,
        momentum: float = 0.0,
        eps: float = 1e-7,
    ) -> None:
        if lr <= 0 or not 0 <= rho < 1 or momentum < 0 or eps < 0:
            raise ParameterError(f"RMSpropTF: invalid lr={lr}, rho={rho}, momentum={momentum} or eps={eps}")
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, momentum, eps = group["lr"], group["rho"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["ms"] = torch.zeros_like(p)
                    if momentum > 0:
                        state["mom"] = torch.zeros_like(p)
                ms = state["ms"]
                ms.mul_(rho).addcmul_(g, g, value=1.0 - rho)
                delta = g / (ms + eps).sqrt()
                if momentum > 0:
                    mom = state["mom"]
                    mom.mul_(momentum).add_(delta, alpha=lr)
                    p.sub_(mom)
                else:
                    p.sub_(delta, alpha=lr)
        return loss


class _Conv2dFewIn(torch.autograd.Function):
    """``F.conv2d(x, w)`` (no padding, stride 1) whose input gradient is one GEMM + ``F.fold`` (col2im) and
    whose weight gradient is one batched GEMM with ``F.unfold`` (im2col).

    On CPU, oneDNN's transposed convolution for a p-channel output (p = 3–6) and an 11×11 kernel is slow
    (measured: 130 ms vs 72 ms for CNNAEU's Samson batch, one thread). ``fold`` is the exact adjoint of
    ``unfold`` and ``conv2d(x, w) = w.reshape(O, -1) @ unfold(x)``, so the gradient is the same up to
    float rounding.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return F.conv2d(x, w)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            n, o = grad_out.shape[:2]
            cols = w.reshape(o, -1).T @ grad_out.reshape(n, o, -1)  # (n, c·kh·kw, L)
            gx = F.fold(cols, x.shape[-2:], w.shape[-2:])
        if ctx.needs_input_grad[1]:
            # dL/dw = Σ_n grad_out(n) · unfold(x)(n)ᵀ: one batched GEMM (2-3× faster on CPU than
            # torch.nn.grad.conv2d_weight for these shapes)
            n, o = grad_out.shape[:2]
            cols = F.unfold(x, w.shape[-2:])  # (n, c·kh·kw, L)
            gw = torch.bmm(grad_out.reshape(n, o, -1), cols.transpose(1, 2)).sum(0).reshape(w.shape)
        return gx, gw


def conv2d_few_in(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, w)`` (already padded input, stride 1, no bias); on CPU with the faster backward of
    :class:`_Conv2dFewIn`, elsewhere torch's own (cuDNN is fast here)."""
    if x.device.type == "cpu":
        return _Conv2dFewIn.apply(x, w)
    return F.conv2d(x, w)
