"""Geometric endmember extraction: VCA, N-FINDR and SISAL (functions on Y = bands × pixels).

All functions take the data matrix ``Y`` (B × N, any float dtype; computations in float64 per
chunk) and the number of endmembers ``p``, and return the endmembers ``E`` (B × p, same units
as ``Y``). Randomness comes only from the ``rng`` argument (a ``numpy.random.Generator``).

* :func:`vca` — Vertex Component Analysis (Nascimento & Bioucas-Dias, IEEE TGRS 2005).
* :func:`nfindr` — N-FINDR (Winter 1999): maximum-volume simplex of pixels by swaps.
* :func:`sisal` — Simplex Identification via Split Augmented Lagrangian (Bioucas-Dias, WHISPERS 2009):
  minimum-volume simplex with a soft (hinge) positivity constraint.

Large scenes: the subspaces (SVD of the B × B correlation) are estimated on a random sample of at most
``max_subspace_pixels`` pixels (default 100,000); every pixel is then projected (in chunks) so the
extreme-pixel searches of VCA and N-FINDR see the whole scene. SISAL fits on at most ``max_pixels``.
"""

from __future__ import annotations

import warnings

import numpy as np

from simhsi.errors import ConvergenceWarning, DataError, check_param

#: Pixels per chunk for the projections of big scenes.
CHUNK = 65_536


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _check_y(Y: np.ndarray, p: int, owner: str) -> np.ndarray:
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.dtype.kind not in "fiu":
        raise DataError(f"{owner}: Y must be a 2-D numeric array (bands × pixels); got shape {Y.shape}")
    B, N = Y.shape
    check_param("p", p, isinstance(p, int | np.integer) and 2 <= p < B, f"an int in [2, {B}) (bands)", owner)
    if N < p:
        raise DataError(f"{owner}: only {N} pixels for p = {p} endmembers; need at least p pixels")
    return Y


def _sample_columns(Y: np.ndarray, max_pixels: int | None, rng: np.random.Generator) -> np.ndarray:
    """Y itself or a random subset of at most ``max_pixels`` of its columns (float64)."""
    N = Y.shape[1]
    if max_pixels is None or N <= max_pixels:
        return np.asarray(Y, dtype=np.float64)
    idx = np.sort(rng.choice(N, size=int(max_pixels), replace=False))
    return np.asarray(Y[:, idx], dtype=np.float64)


def _project(U: np.ndarray, Y: np.ndarray, shift: np.ndarray | None = None, chunk: int = CHUNK) -> np.ndarray:
    """Uᵀ (Y − shift) computed in pixel chunks (float64 result, d × N).

    float32 data are multiplied in float32 (no per-chunk conversion; relative error ~1e-7).
    """
    d, N = U.shape[1], Y.shape[1]
    out = np.empty((d, N))
    Ut = U.T.astype(np.float32) if Y.dtype == np.float32 else U.T
    for s in range(0, N, chunk):
        out[:, s:s + chunk] = Ut @ Y[:, s:s + chunk]
    if shift is not None:
        out -= (U.T @ shift)[:, None]
    return out


def _top_eigvecs(S: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``d`` leading eigenvectors (columns) and eigenvalues of a symmetric matrix."""
    w, V = np.linalg.eigh((S + S.T) / 2)
    order = np.argsort(w)[::-1][:d]
    return V[:, order], w[order]


def estimate_snr(Y: np.ndarray, p: int, *, rng: np.random.Generator | None = None,
                 max_pixels: int | None = 100_000) -> float:
    """SNR of the data (dB) as estimated by VCA: signal power in the p-dim subspace vs the rest.

    ``SNR = 10·log10((P_x − p/B·P_y) / (P_y − P_x))`` with P_y the mean power of the pixels and
    P_x the power of their projection onto the p leading principal directions (plus the mean).
    Computed on a random sample of at most ``max_pixels`` pixels.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    Ys = _sample_columns(np.asarray(Y), max_pixels, rng)
    B, N = Ys.shape
    mean = Ys.mean(axis=1)
    R = Ys @ Ys.T / N
    _, w = _top_eigvecs(R - np.outer(mean, mean), p)
    p_y = float(np.trace(R))
    p_x = float(np.sum(w) + mean @ mean)
    num, den = p_x - p / B * p_y, p_y - p_x
    if den <= 0:
        return float("inf")
    if num <= 0:
        return float("-inf")
    return float(10 * np.log10(num / den))


def affine_subspace(Y: np.ndarray, d: int, *, rng: np.random.Generator | None = None,
                    max_pixels: int | None = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Mean (B,) and the ``d`` leading principal directions (B × d) of the pixels (PCA, sampled)."""
    rng = np.random.default_rng(0) if rng is None else rng
    Ys = _sample_columns(np.asarray(Y), max_pixels, rng)
    mean = Ys.mean(axis=1)
    Yo = Ys - mean[:, None]
    U, _ = _top_eigvecs(Yo @ Yo.T / Ys.shape[1], d)
    return mean, U


# ---------------------------------------------------------------------------------------------
# VCA
# ---------------------------------------------------------------------------------------------
def vca(
    Y: np.ndarray,
    p: int,
    *,
    rng: np.random.Generator | None = None,
    snr_input: float | None = None,
    max_subspace_pixels: int | None = 100_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex Component Analysis (Nascimento & Bioucas-Dias 2005).

    Parameters
    ----------
    Y : (B, N) array
        Data, bands × pixels (any units; float32 is fine).
    p : int
        Number of endmembers, 2 <= p < B.
    rng : numpy Generator
        Source of the random directions (default ``default_rng(0)``).
    snr_input : float, optional
        Known SNR in dB; estimated from the data when None.
    max_subspace_pixels : int, optional
        Pixels sampled to estimate the subspace and the SNR (None: all). Every pixel is then
        projected and searched.

    Returns
    -------
    E : (B, p) float64
        Endmembers: the selected pixels projected onto the signal subspace (as in the reference).
    indices : (p,) int
        Column indices of the selected pixels in ``Y``.
    """
    Y = _check_y(Y, p, "vca")
    rng = np.random.default_rng(0) if rng is None else rng
    B, N = Y.shape
    Ys = _sample_columns(Y, max_subspace_pixels, rng)
    ns = Ys.shape[1]
    mean = Ys.mean(axis=1)
    R = Ys @ Ys.T / ns  # correlation; the covariance is R − mean·meanᵀ (one pass over the sample)
    del Ys
    C = R - np.outer(mean, mean)
    U_o, w_o = _top_eigvecs(C, p)
    if snr_input is None:
        p_y = float(np.trace(R))  # mean pixel power
        p_x = float(np.sum(w_o) + mean @ mean)  # power in the p-dim principal subspace, plus the mean
        num, den = p_x - p / B * p_y, p_y - p_x
        snr = float("inf") if den <= 0 else (float("-inf") if num <= 0 else 10 * np.log10(num / den))
    else:
        snr = float(snr_input)
    snr_th = 15 + 10 * np.log10(p)

    if snr < snr_th:  # low SNR: project onto the (p-1)-dim affine subspace, lift with a constant
        d = p - 1
        U = U_o[:, :d]
        x = _project(U, Y, mean)  # d × N
        c = float(np.sqrt(np.max(np.sum(x**2, axis=0))))
        y = np.vstack([x, np.full((1, N), c)])

        def to_bands(idx: np.ndarray) -> np.ndarray:
            return U @ x[:, idx] + mean[:, None]
    else:  # high SNR: project onto the p-dim linear subspace, then onto the hyperplane uᵀx = 1
        d = p
        U, _ = _top_eigvecs(R, d)
        x = _project(U, Y)  # p × N
        u = x.mean(axis=1)
        denom = u @ x
        # pixels with (almost) no signal along the mean direction cannot be vertices: score them 0
        ok = np.abs(denom) > 1e-9 * float(np.max(np.abs(denom)))
        y = np.where(ok, x / np.where(ok, denom, 1.0), 0.0)

        def to_bands(idx: np.ndarray) -> np.ndarray:
            return U @ x[:, idx]

    indices = np.zeros(p, dtype=np.int64)
    Amat = np.zeros((p, p))
    Amat[-1, 0] = 1.0
    for i in range(p):
        w = rng.random(p)
        f = w - Amat @ (np.linalg.pinv(Amat) @ w)
        nf = np.linalg.norm(f)
        if nf < 1e-12:  # pathological: fall back to a fresh normal direction
            f = rng.standard_normal(p)
            f -= Amat @ (np.linalg.pinv(Amat) @ f)
            nf = np.linalg.norm(f)
        f /= max(nf, 1e-300)
        v = f @ y
        indices[i] = int(np.argmax(np.abs(v)))
        Amat[:, i] = y[:, indices[i]]
    return to_bands(indices), indices


# ---------------------------------------------------------------------------------------------
# N-FINDR
# ---------------------------------------------------------------------------------------------
def nfindr(
    Y: np.ndarray,
    p: int,
    *,
    rng: np.random.Generator | None = None,
    init: str = "random",
    max_iter: int = 20,
    max_subspace_pixels: int | None = 100_000,
) -> tuple[np.ndarray, np.ndarray]:
    """N-FINDR (Winter 1999): the p pixels spanning the largest simplex in the (p−1)-dim PCA space.

    Sweeps over the p vertices; at each vertex the pixel maximising the volume replaces it (all
    pixels scored at once: the volume is linear in the replaced vertex, so the scores are one
    solve with the current vertex matrix). Stops when a full sweep changes nothing or after
    ``max_iter`` sweeps. ``init``: "random" (p random pixels; VCA if they are degenerate) or "vca".

    Returns ``E`` (B × p, the selected pixels, float64) and their column ``indices``.
    """
    Y = _check_y(Y, p, "nfindr")
    check_param("init", init, init in ("random", "vca"), "'random' or 'vca'", "nfindr")
    check_param("max_iter", max_iter, isinstance(max_iter, int | np.integer) and max_iter >= 1,
                "an int >= 1", "nfindr")
    rng = np.random.default_rng(0) if rng is None else rng
    N = Y.shape[1]
    mean, U = affine_subspace(Y, p - 1, rng=rng, max_pixels=max_subspace_pixels)
    Z = np.vstack([np.ones((1, N)), _project(U, Y, mean)])  # p × N, homogeneous coordinates

    def well_posed(idx: np.ndarray) -> bool:
        M = Z[:, idx]
        s = np.linalg.svd(M, compute_uv=False)
        return bool(s[-1] > 1e-10 * s[0])

    idx = None
    if init == "random":
        for _ in range(10):
            cand = rng.choice(N, size=p, replace=False)
            if well_posed(cand):
                idx = cand
                break
    if idx is None:
        idx = vca(Y, p, rng=rng, max_subspace_pixels=max_subspace_pixels)[1]
    if not well_posed(idx):
        raise DataError(f"nfindr: the data do not span a {p - 1}-dim simplex (degenerate pixels); "
                        "lower n_endmembers")
    idx = np.array(idx, dtype=np.int64)
    converged = False
    for _ in range(max_iter):
        changed = False
        for i in range(p):
            M = Z[:, idx]
            # det(M with column i := z) = det(M) · (M⁻¹ z)_i, for every pixel z at once
            coef = np.linalg.solve(M, Z)[i]
            best = int(np.argmax(np.abs(coef)))
            if abs(coef[best]) > 1.0 + 1e-9 and best not in idx:
                idx[i] = best
                changed = True
        if not changed:
            converged = True
            break
    if not converged:
        warnings.warn(f"nfindr did not converge in {max_iter} sweeps", ConvergenceWarning, stacklevel=2)
    return np.asarray(Y[:, idx], dtype=np.float64), idx


# ---------------------------------------------------------------------------------------------
# SISAL
# ---------------------------------------------------------------------------------------------
def _soft_neg(x: np.ndarray, t: float) -> np.ndarray:
    """Proximal operator of t·Σ max(−x, 0) (the hinge): shift negatives up by t, clip the band (−t, 0] to 0."""
    return np.where(x >= 0, x, np.where(x < -t, x + t, 0.0))


def sisal(
    Y: np.ndarray,
    p: int,
    *,
    rng: np.random.Generator | None = None,
    tau: float = 1e-6,
    mu: float | None = 1.0,
    mm_iters: int = 40,
    al_iters: int = 4,
    final_al_iters: int = 100,
    lam_quad: float = 1e-6,
    M0: np.ndarray | None = None,
    n_init: int = 1,
    max_pixels: int | None = 100_000,
) -> np.ndarray:
    """Simplex Identification via Split Augmented Lagrangian (Bioucas-Dias, WHISPERS 2009).

    Solves ``min_Q −log|det Q| + τ·Σ hinge(Q·y)`` s.t. ``1ᵀQ = q_m`` in the (p−1)-dim affine subspace of
    the data lifted to R^p (Q = M⁻¹, so Q·y are the abundances and the hinge softly keeps them ≥ 0).
    Each of the ``mm_iters`` outer steps linearises −log|det Q| at the current Q (plus a small proximal
    term ``lam_quad``) and runs ``al_iters − 1`` split augmented Lagrangian (ADMM) steps on Z = QY; the
    last outer step runs ``final_al_iters``. A step that increases the true objective is halved back
    toward the previous Q (line search). Defaults follow HySUPP's Python SISAL at the commit whose scores
    are the project's anchors (BehnoodRasti/HySUPP cb7d633): τ = 1e-6, µ = 1, 40 outer steps, 4 inner,
    no spherization, VCA start. (An earlier HySUPP commit used τ = 10, µ = 1000·p/N: pass
    ``mu=None`` for µ = 1000·p/N.)

    ``M0``: starting endmembers (B × p); by default the largest-volume simplex (in the lifted data
    subspace) of ``n_init`` VCA runs drawn from ``rng`` (HySUPP: one). ``max_pixels``: fit on a random
    sample of at most this many pixels (None: all). Returns E (B × p).
    """
    Y = _check_y(Y, p, "sisal")
    for name, val, ok, exp in (
        ("tau", tau, np.isfinite(tau) and tau > 0, "a number > 0"),
        ("mm_iters", mm_iters, isinstance(mm_iters, int | np.integer) and mm_iters >= 1, "an int >= 1"),
        ("al_iters", al_iters, isinstance(al_iters, int | np.integer) and al_iters >= 2, "an int >= 2"),
        ("n_init", n_init, isinstance(n_init, int | np.integer) and n_init >= 1, "an int >= 1"),
    ):
        check_param(name, val, bool(ok), exp, "sisal")
    rng = np.random.default_rng(0) if rng is None else rng
    Ys = _sample_columns(Y, max_pixels, rng)
    N = Ys.shape[1]
    mu = 1000.0 * p / N if mu is None else float(mu)
    check_param("mu", mu, np.isfinite(mu) and mu > 0, "a number > 0", "sisal")

    # affine set of the data: mean + span(U), lifted to R^p with the direction of the mean's remainder
    mean = Ys.mean(axis=1)
    Yo = Ys - mean[:, None]
    U, _ = _top_eigvecs(Yo @ Yo.T / N, p - 1)
    m_ortho = mean - U @ (U.T @ mean)
    nrm = float(np.linalg.norm(m_ortho))
    if nrm < 1e-12 * max(float(np.linalg.norm(mean)), 1e-300):  # mean inside the subspace: any orthogonal dir
        v = rng.standard_normal(Ys.shape[0])
        m_ortho = v - U @ (U.T @ v)
        nrm = float(np.linalg.norm(m_ortho))
    Up = np.hstack([U, (m_ortho / nrm)[:, None]])  # B × p, orthonormal

    def to_p(X: np.ndarray) -> np.ndarray:
        """Coordinates in R^p of the projection of X (B × k) onto the affine set."""
        Xa = U @ (U.T @ (X - mean[:, None])) + mean[:, None]
        return Up.T @ Xa

    Z0 = to_p(Ys)  # p × N; last row is constant (the affine set)
    if M0 is None:
        best = -np.inf
        for _ in range(n_init):
            Mi = vca(Ys, p, rng=rng, max_subspace_pixels=None)[0]
            vol = abs(np.linalg.det(to_p(Mi)))
            if vol > best:
                best, M0 = vol, Mi
    M = to_p(np.asarray(M0, dtype=np.float64))
    if np.linalg.cond(M) > 1e12:
        raise DataError("sisal: the initial simplex is degenerate; the data may not span p endmembers")
    Q = np.linalg.inv(M)
    S = Z0 @ Z0.T
    qm = np.linalg.solve(S + 1e-12 * np.trace(S) / p * np.eye(p), Z0.sum(axis=1))  # qmᵀ·Z0 ≈ 1ᵀ
    R = np.linalg.inv(lam_quad * np.eye(p) + mu * S)
    R = (R + R.T) / 2

    def objective(Qm: np.ndarray) -> float:
        sign, logdet = np.linalg.slogdet(Qm)
        if sign == 0:
            return float("inf")
        return float(-logdet + tau * np.sum(np.maximum(-(Qm @ Z0), 0.0)))

    Zs = Q @ Z0
    D = np.zeros_like(Zs)
    for k in range(mm_iters):
        Q0 = Q.copy()
        g = -np.linalg.inv(Q0).T  # gradient of −log|det Q| at Q0
        f0 = objective(Q0)
        n_inner = (final_al_iters if k == mm_iters - 1 else al_iters) - 1
        for _ in range(max(n_inner, 1)):
            # Q-step: min <g, Q> + lam/2 |Q − Q0|² + mu/2 |QY − (Z + D)|²  s.t. 1ᵀQ = qmᵀ
            Qu = (lam_quad * Q0 - g + mu * (Zs + D) @ Z0.T) @ R
            Q = Qu - (Qu.sum(axis=0) - qm)[None, :] / p
            QY = Q @ Z0
            Zs = _soft_neg(QY - D, tau / mu)
            D = D - (QY - Zs)
        f = objective(Q)
        for _ in range(50):  # backtracking toward Q0 while the true objective went up
            if f <= f0:
                break
            Q = (Q + Q0) / 2
            f = objective(Q)
        else:
            Q = Q0
    return Up @ np.linalg.inv(Q)
