"""Batched non-negative least squares (NNLS) and SCLSU abundances.

SCLSU (scaled constrained least squares unmixing; Veganzones, Drumetz, Tochon, Dalla Mura, Plaza,
Bioucas-Dias & Chanussot, "A new extended linear mixing model to address spectral variability",
WHISPERS 2014; Drumetz et al., IEEE TIP 2016) models each pixel as ``y = ψ · E a`` with a per-pixel
scale ψ > 0 (illumination, topography) and abundances on the simplex. Its estimate is the NNLS
solution ``x = argmin_{x >= 0} ‖y − E x‖`` followed by ``ψ = 1ᵀx``, ``a = x / ψ``.

This is the abundance estimator consistent with a model fitted with a scale-invariant loss (e.g. the
spectral-angle loss of CNNAEU, which leaves each pixel's scale free).

:func:`nnls` solves all pixels at once, exactly: for p <= ``MAX_ENUM_P`` it enumerates the 2^p − 1
candidate supports (the optimum of a strictly convex NNLS is the unconstrained least-squares solution on
its support, and it is the feasible one with the smallest objective); each support costs one p × p solve
shared by every pixel and one small matrix product. For larger p it falls back to scipy's NNLS per pixel.
"""

from __future__ import annotations

import itertools

import numpy as np

from simhsi.errors import DataError

#: Largest p solved by support enumeration (2^p − 1 supports); above it, scipy's NNLS per pixel.
MAX_ENUM_P = 10
#: Pixels per chunk (bounds temporary memory to a few × chunk × p floats).
CHUNK = 65_536


def nnls(Y: np.ndarray, E: np.ndarray, *, chunk: int = CHUNK) -> np.ndarray:
    """Exact ``argmin_{X >= 0} ‖Y − E X‖²_F`` column by column: Y (B, N), E (B, p) → X (p, N) float64.

    E must have linearly independent columns (a tiny ridge is added to EᵀE otherwise).
    """
    E = np.asarray(E, dtype=np.float64)
    Y = np.asarray(Y)
    if Y.ndim != 2 or E.ndim != 2 or Y.shape[0] != E.shape[0]:
        raise DataError(f"nnls: Y (bands × pixels) and E (bands × p) must share the band axis; got Y {Y.shape}, "
                        f"E {E.shape}")
    if not (np.all(np.isfinite(E)) and np.all(np.isfinite(Y))):
        raise DataError("nnls: Y and E must be finite; mask NaN pixels first")
    p, n = E.shape[1], Y.shape[1]
    X = np.zeros((p, n))
    if p > MAX_ENUM_P:
        from scipy.optimize import nnls as scipy_nnls

        for j in range(n):
            X[:, j] = scipy_nnls(E, np.asarray(Y[:, j], dtype=np.float64))[0]
        return X
    G = E.T @ E
    s = np.linalg.svd(G, compute_uv=False)
    if s[-1] <= 1e-13 * s[0]:
        G = G + (1e-13 * s[0]) * np.eye(p)
    supports = [list(S) for k in range(1, p + 1) for S in itertools.combinations(range(p), k)]
    inverses = [np.linalg.inv(G[np.ix_(S, S)]) for S in supports]
    for s0 in range(0, n, chunk):
        c = E.T @ np.asarray(Y[:, s0:s0 + chunk], dtype=np.float64)  # (p, m)
        best = np.zeros(c.shape[1])  # objective ½xᵀGx − cᵀx of x = 0
        Xc = np.zeros_like(c)
        for S, Ginv in zip(supports, inverses, strict=True):
            xs = Ginv @ c[S]
            # at the least-squares solution on S the objective is −½ c_Sᵀ x_S
            f = -0.5 * np.einsum("ij,ij->j", c[S], xs)
            take = (xs.min(axis=0) >= 0) & (f < best)
            if take.any():
                best[take] = f[take]
                Xc[:, take] = 0.0
                Xc[np.ix_(S, np.flatnonzero(take))] = xs[:, take]
        X[:, s0:s0 + chunk] = Xc
    return X


def sclsu(Y: np.ndarray, E: np.ndarray, *, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """SCLSU abundances: ``(A (p, N) on the simplex, ψ (N,) per-pixel scale)`` for Y (B, N), E (B, p).

    A = NNLS(Y, E) / ψ with ψ the sum of the NNLS coefficients; pixels with ψ = 0 (no non-negative
    fit at all, e.g. a zero spectrum) get A = 1/p.
    """
    X = nnls(Y, E, chunk=chunk)
    psi = X.sum(axis=0)
    ok = psi > 0
    A = np.full_like(X, 1.0 / X.shape[0])
    A[:, ok] = X[:, ok] / psi[ok]
    return A, psi
