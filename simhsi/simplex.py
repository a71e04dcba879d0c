"""Exact Euclidean projection onto the probability simplex, vectorised over pixels.

Used wherever abundances must be valid (A >= 0, sum to 1): FCLS solvers, diffusion samples,
abundance repair before rendering.
"""

from __future__ import annotations

import numpy as np


def project_simplex(v: np.ndarray, axis: int = 0) -> np.ndarray:
    """Project each vector along ``axis`` onto {a : a >= 0, sum(a) = 1} (Euclidean, exact).

    Sort-based algorithm (Held et al. 1974; Duchi et al. 2008), O(p log p) per vector. NaN vectors
    stay NaN. Works for numpy float arrays of any shape; returns a new array of the same dtype.
    """
    x = np.moveaxis(np.asarray(v), axis, -1)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    x64 = x.astype(np.float64, copy=False)
    shape = x64.shape
    p = shape[-1]
    flat = x64.reshape(-1, p)
    u = -np.sort(-flat, axis=1)  # descending
    css = np.cumsum(u, axis=1) - 1.0
    k = np.arange(1, p + 1, dtype=np.float64)
    cond = u - css / k > 0
    # rho: last index where cond holds (cond is True at index 0 for finite input)
    rho = p - 1 - np.argmax(cond[:, ::-1], axis=1)
    theta = css[np.arange(flat.shape[0]), rho] / (rho + 1.0)
    out = np.maximum(flat - theta[:, None], 0.0)
    # renormalise away the last ulp so sums are 1 to float precision
    s = out.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(s > 0, out / s, out)
    out = out.reshape(shape).astype(dtype, copy=False)
    return np.moveaxis(out, -1, axis)


def project_simplex_torch(v, dim: int = 1):
    """Torch version of :func:`project_simplex` (same algorithm, on the tensor's device)."""
    import torch

    x = v.movedim(dim, -1)
    p = x.shape[-1]
    u, _ = torch.sort(x, dim=-1, descending=True)
    css = torch.cumsum(u, dim=-1) - 1.0
    k = torch.arange(1, p + 1, device=x.device, dtype=x.dtype)
    cond = (u - css / k) > 0
    rho = p - 1 - torch.argmax(cond.flip(-1).to(torch.uint8), dim=-1, keepdim=True)
    theta = torch.gather(css, -1, rho) / (rho.to(x.dtype) + 1.0)
    out = torch.clamp(x - theta, min=0.0)
    out = out / out.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return out.movedim(-1, dim)
