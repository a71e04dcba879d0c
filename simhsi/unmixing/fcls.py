"""Fully constrained least squares (FCLS), exact and batched over pixels, and the geometric+FCLS methods.

FCLS (Heinz & Chang 2001) solves, for every pixel y,

    min_a ‖y − E a‖²   s.t.  a ≥ 0,  1ᵀa = 1.

With G = EᵀE (shared by all pixels) and c = Eᵀy (one matrix product for all pixels) each pixel is a
p-dimensional strictly convex QP. :func:`fcls` solves them all at once with a primal active-set method
run in lock step over the pixels: at each step every unfinished pixel solves the equality-constrained
problem on its free set (closed form with the inverse of G restricted to that set; pixels sharing a
free set share one small inverse, so the work is a few matrix products per step), then either steps to
the first blocking bound (and fixes it at 0) or, if feasible, releases the bound with the most negative
multiplier, or stops when all multipliers are ≥ 0 (KKT). The start is the sum-to-one least squares
solution projected onto the simplex, which is usually right or one step away. The result is exact up
to round-off (checked against scipy's SLSQP and NNLS in the tests).
"""

from __future__ import annotations

import warnings

import numpy as np

from simhsi.errors import ConvergenceWarning, DataError, check_param
from simhsi.simplex import project_simplex
from simhsi.unmixing._base import Prepared, Unmixer, register

#: Pixels per chunk in :func:`fcls` (bounds the temporary memory to a few × chunk × max(B, p²) floats).
FCLS_CHUNK = 65_536


def _eqp_groups(G: np.ndarray, free: np.ndarray, c: np.ndarray, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """Solve min ½aᵀGa − cᵀa s.t. 1ᵀa = 1, a_j = 0 off ``free``, for every column.

    free: (p, n) bool; c: (p, n). Returns a (p, n) and the multiplier mu (n,) of the sum-to-one
    constraint, with the convention G a − c + mu·1 − lam = 0 (lam ≥ 0 at the optimum).
    """
    p, n = c.shape
    if p <= 15:  # small codes: counting sort (numpy's stable sort is a radix sort for int16)
        codes = ((1 << np.arange(p, dtype=np.int16)) @ free.astype(np.int16)).astype(np.int16)
    else:
        codes = (1 << np.arange(p, dtype=np.int64)) @ free.astype(np.int64)
    a = np.zeros((p, n))
    mu = np.zeros(n)
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    ends = np.r_[starts[1:], n]
    if starts.size == 1:
        groups = [(int(sc[0]), slice(None))]
    else:
        groups = [(int(sc[b]), order[b:e]) for b, e in zip(starts, ends, strict=True)]
    for code, sel in groups:
        code = int(code)
        if code not in cache:
            f = np.flatnonzero([(code >> j) & 1 for j in range(p)])
            H = np.linalg.inv(G[np.ix_(f, f)])
            H = (H + H.T) / 2
            h = H.sum(axis=1)
            cache[code] = (f, H, h, float(h.sum()))
        f, H, h, s = cache[code]
        u = H @ c[f][:, sel]
        m = (u.sum(axis=0) - 1.0) / s
        a[np.ix_(f, np.arange(n)[sel])] = u - h[:, None] * m
        mu[sel] = m
    return a, mu


def _fcls_block(G: np.ndarray, c: np.ndarray, tol: float, max_iter: int, cache: dict) -> tuple[np.ndarray, int]:
    """FCLS for one block: G (p, p), c = EᵀY (p, n). Returns A (p, n) and the count of unconverged pixels."""
    p, n = c.shape
    # start: sum-to-one LS on the full set, projected onto the simplex (feasible)
    a_full, _ = _eqp_groups(G, np.ones((p, n), dtype=bool), c, cache)
    # where the full-set solution is feasible it is the optimum (no bound is active): done already
    feasible = np.all(a_full >= 0, axis=0)
    todo = np.flatnonzero(~feasible)
    a = a_full
    a[:, todo] = project_simplex(a_full[:, todo], axis=0)
    free = a > 0
    gscale = float(np.max(np.abs(np.diag(G))))
    for _ in range(max_iter):
        if todo.size == 0:
            break
        at, ft, ct = a[:, todo], free[:, todo], c[:, todo]
        astar, mu = _eqp_groups(G, ft, ct, cache)
        # candidates blocking the step a -> astar
        neg = ft & (astar < 0)
        blocked = neg.any(axis=0)
        done = np.zeros(todo.size, dtype=bool)
        if blocked.any():
            b = np.flatnonzero(blocked)
            ab, sb, nb = at[:, b], astar[:, b], neg[:, b]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(nb, ab / (ab - sb), np.inf)
            j = np.argmin(ratio, axis=0)
            alpha = np.clip(ratio[j, np.arange(b.size)], 0.0, 1.0)
            newa = ab + alpha * (sb - ab)
            newa[j, np.arange(b.size)] = 0.0
            fb = ft[:, b]
            fb[j, np.arange(b.size)] = False
            newa[~fb] = 0.0
            at[:, b] = newa
            ft[:, b] = fb
        ok = ~blocked
        if ok.any():
            o = np.flatnonzero(ok)
            ao = astar[:, o]
            ao[~ft[:, o]] = 0.0
            at[:, o] = np.maximum(ao, 0.0)
            lam = G @ ao - ct[:, o] + mu[o]
            lam = np.where(ft[:, o], np.inf, lam)
            jmin = np.argmin(lam, axis=0)
            lmin = lam[jmin, np.arange(o.size)]
            release = lmin < -tol * gscale
            if release.any():
                r = np.flatnonzero(release)
                fo = ft[:, o]
                fo[jmin[r], r] = True
                ft[:, o] = fo
            done[o[~release]] = True
        a[:, todo] = at
        free[:, todo] = ft
        todo = todo[~done]
    a = np.maximum(a, 0.0)
    s = a.sum(axis=0)
    a /= np.where(s > 0, s, 1.0)
    return a, int(todo.size)


def fcls(
    Y: np.ndarray,
    E: np.ndarray,
    *,
    tol: float = 1e-12,
    max_iter: int | None = None,
    chunk: int = FCLS_CHUNK,
) -> np.ndarray:
    """Exact fully constrained least squares abundances for every pixel (column) of ``Y``.

    Parameters
    ----------
    Y : (B, N) array
        Pixels (bands × pixels), finite; float32 or float64 (each chunk is used in float64).
    E : (B, p) array
        Endmembers, same units as ``Y``; linearly independent columns.
    tol : float
        KKT tolerance on the bound multipliers, relative to max diag(EᵀE).
    max_iter : int, optional
        Active-set steps per chunk (default 4·p + 10; one step changes one bound per pixel).
    chunk : int
        Pixels per chunk (bounded memory for big scenes).

    Returns
    -------
    A : (p, N) float64 with A ≥ 0 and columns summing to 1.
    """
    E = np.asarray(E, dtype=np.float64)
    Y = np.asarray(Y)
    if Y.ndim != 2 or E.ndim != 2 or Y.shape[0] != E.shape[0]:
        raise DataError(f"fcls: Y (bands × pixels) and E (bands × p) must share the band axis; "
                        f"got Y {Y.shape}, E {E.shape}")
    if not np.all(np.isfinite(E)):
        raise DataError("fcls: the endmembers E contain NaN/inf")
    p = E.shape[1]
    check_param("chunk", chunk, isinstance(chunk, int | np.integer) and chunk >= 1, "an int >= 1", "fcls")
    max_iter = 4 * p + 10 if max_iter is None else max_iter
    check_param("max_iter", max_iter, isinstance(max_iter, int | np.integer) and max_iter >= 1,
                "an int >= 1", "fcls")
    G = E.T @ E
    s = np.linalg.svd(G, compute_uv=False)
    if p > 1 and s[-1] <= 1e-13 * s[0]:
        # collinear endmembers: the QP is not strictly convex; a tiny ridge picks one solution
        G = G + (1e-13 * s[0]) * np.eye(p)
    N = Y.shape[1]
    A = np.empty((p, N))
    cache: dict = {}
    stuck = 0
    # float32 pixels: EᵀY is accumulated in float32 (relative error ~1e-7, the input's own precision;
    # 3x faster than converting every chunk); everything after is float64
    Et = E.T.astype(np.float32) if Y.dtype == np.float32 else E.T
    for s0 in range(0, N, chunk):
        c = np.asarray(Et @ Y[:, s0:s0 + chunk], dtype=np.float64)
        if not np.all(np.isfinite(c)):
            raise DataError("fcls: Y contains NaN/inf; mask such pixels before unmixing")
        A[:, s0:s0 + chunk], k = _fcls_block(G, c, tol, int(max_iter), cache)
        stuck += k
    if stuck:
        warnings.warn(f"fcls: {stuck} pixels did not reach the KKT tolerance in {max_iter} steps",
                      ConvergenceWarning, stacklevel=2)
    return A


# ---------------------------------------------------------------------------------------------
# registered methods: geometric endmembers + FCLS abundances
# ---------------------------------------------------------------------------------------------
class _GeometricFcls(Unmixer):
    """Endmembers from a geometric method, abundances by exact FCLS over every valid pixel."""

    family = "geometric"
    work_dtype = np.float32  # chunked all the way: a 1000×1000×234 scene stays ~2 GB

    def _endmembers(self, Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _fit(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        from tqdm.auto import tqdm

        with tqdm(total=2, desc=f"{self.name} p={self.n_endmembers} seed={self.seed}", disable=not progress,
                  leave=True) as bar:
            bar.set_postfix_str("endmembers")
            E = self._endmembers(prep.Y, rng)
            bar.update()
            bar.set_postfix_str("fcls")
            A = fcls(prep.Y, E)
            bar.update()
        return E, A


@register
class VcaFcls(_GeometricFcls):
    """VCA endmembers (Nascimento & Bioucas-Dias 2005) + FCLS abundances.

    ``max_subspace_pixels``: pixels sampled for VCA's subspace/SNR estimate (all pixels are searched).
    """

    name = "vca-fcls"

    def __init__(self, n_endmembers: int = 3, *, seed: int = 0, snr_input: float | None = None,
                 max_subspace_pixels: int | None = 100_000) -> None:
        super().__init__(n_endmembers, seed=seed)
        self.snr_input = snr_input
        self.max_subspace_pixels = max_subspace_pixels

    def _endmembers(self, Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from simhsi.unmixing.geometric import vca

        return vca(Y, self.n_endmembers, rng=rng, snr_input=self.snr_input,
                   max_subspace_pixels=self.max_subspace_pixels)[0]


@register
class NfindrFcls(_GeometricFcls):
    """N-FINDR endmembers (Winter 1999; random start, volume-increasing swaps) + FCLS abundances."""

    name = "nfindr-fcls"

    def __init__(self, n_endmembers: int = 3, *, seed: int = 0, init: str = "random", max_iter: int = 20,
                 max_subspace_pixels: int | None = 100_000) -> None:
        super().__init__(n_endmembers, seed=seed)
        self.init = init
        self.max_iter = max_iter
        self.max_subspace_pixels = max_subspace_pixels

    def _endmembers(self, Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from simhsi.unmixing.geometric import nfindr

        return nfindr(Y, self.n_endmembers, rng=rng, init=self.init, max_iter=self.max_iter,
                      max_subspace_pixels=self.max_subspace_pixels)[0]


@register
class SisalFcls(_GeometricFcls):
    """SISAL endmembers (Bioucas-Dias 2009; HySUPP cb7d633 defaults τ = 1e-6, µ = 1) + FCLS.

    SISAL's endmembers may lie outside the data (minimum-volume simplex); FCLS then gives the
    abundances of every pixel. ``max_pixels``: SISAL fits on a random sample of this many pixels.
    ``n_init``: SISAL starts from the largest-volume simplex of ``n_init`` seeded VCA runs (HySUPP: one
    VCA run; a single VCA start can miss an endmember and SISAL does not recover from it — Jasper Ridge,
    seed 1: 28° SAD; see docs/benchmarks/unmixing.md).
    """

    name = "sisal-fcls"

    def __init__(self, n_endmembers: int = 3, *, seed: int = 0, tau: float = 1e-6, mu: float | None = 1.0,
                 mm_iters: int = 40, n_init: int = 5, max_pixels: int | None = 100_000) -> None:
        super().__init__(n_endmembers, seed=seed)
        self.tau = tau
        self.mu = mu
        self.mm_iters = mm_iters
        self.n_init = n_init
        self.max_pixels = max_pixels

    def _endmembers(self, Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from simhsi.unmixing.geometric import sisal

        return sisal(Y, self.n_endmembers, rng=rng, tau=self.tau, mu=self.mu, mm_iters=self.mm_iters,
                     n_init=self.n_init, max_pixels=self.max_pixels)
