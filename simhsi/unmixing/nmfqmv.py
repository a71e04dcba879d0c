"""NMF-QMV: minimum-volume NMF with quadratic volume terms and automatic β selection.

Zhuang, Lin, Figueiredo & Bioucas-Dias, "Regularization parameter selection in minimum volume
hyperspectral unmixing", IEEE TGRS 57(12), 2019. The authors' code is MATLAB
(github.com/LinaZhuang/NMF-QMV_demo); this is an independent numpy implementation of the algorithm
described there.

Problem, solved in the (p−1)-dimensional affine subspace of the data (PCA, then spherized by the
covariance so every direction has unit variance)::

    min_{M, S}  ½‖G − M S‖²_F + ½β‖M B − O‖²_F      s.t.  S ≥ 0,  1ᵀS = 1ᵀ

with (B, O) giving a *quadratic* minimum-volume term:

* ``"boundary"``: B = I, O = the VCA vertices (pulls the endmembers toward extreme pixels);
* ``"center"``:   B = I, O = 0 = the data centroid (pulls them toward the centre of mass);
* ``"totalVar"``: B = I − 11ᵀ/p, O = 0 (shrinks the spread of the endmembers around their mean).

Proximal alternating optimisation: the M step is closed form
``M = (G Sᵀ + β O Bᵀ + µ_M M)(S Sᵀ + β B Bᵀ + µ_M I)⁻¹``; the S step solves the proximal fully
constrained least squares ``½‖G − M S‖² + ½µ_S‖S − S_prev‖²`` on the simplex with a SUnSAL-style ADMM
vectorised over pixels. β is chosen among candidates by the criterion of the paper: the mean distance
of the boundary pixels (FastBPI) to the nearest facet of the estimated simplex — the smaller, the
better the simplex hugs the data. Two additions to the reference:

* admissibility: candidates whose endmember spectra are negative (below −``neg_tol`` × data max,
  default 0: reflectance is non-negative) are not admissible. Weakly regularised solutions can fit the
  data with a simplex that has a negative vertex; on Samson the plain criterion prefers such a solution
  (water endmember at −8 % of the data max, 14.1° SAD);
* debiasing (``debias=True``): the volume term pulls the vertices toward the data centre, so the
  selected endmembers are refitted once without it — non-negative least squares of the data on the FCLS
  abundances of the selected simplex (:func:`refit_endmembers`), in the full band space — like the
  debiasing phase of penalised least squares (the unpenalised refit on the estimated support, e.g.
  GPSR's, Figueiredo, Nowak & Wright 2007). The abundances are then FCLS with the refitted endmembers.

Large scenes: the fit runs on a seeded random sample of at most ``max_pixels`` pixels; abundances of
all pixels are then the exact FCLS solution with the fitted endmembers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from simhsi.errors import check_param
from simhsi.unmixing._base import Prepared, Unmixer, register

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

#: β candidates of the authors' demo, 10^-5 … 10^5.
DEFAULT_BETAS: tuple[float, ...] = tuple(float(10.0**k) for k in range(-5, 6))
TERMS = ("boundary", "center", "totalVar")


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
def subspace(Y: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of Y (B × N) to p−1 dimensions.

    Returns ``(mean (B,), U (B, p−1) orthonormal, eigenvalues (p−1,))`` of the sample covariance.
    """
    my = Y.mean(axis=1)
    Yc = Y - my[:, None]
    cov = Yc @ Yc.T / Y.shape[1]
    w, V = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1][: p - 1]
    return my, V[:, order], np.maximum(w[order], 0.0)


def fast_bpi(
    X: np.ndarray, rng: np.random.Generator, *, n_projections: int = 100, max_dim: int = 5
) -> np.ndarray:
    """FastBPI boundary-pixel identification (Zhuang et al. 2019, Alg. 1).

    ``X`` (d × N) are the pixels in the (p−1)-dim subspace. If d <= ``max_dim`` the boundary pixels are
    the vertices of the convex hull of X; otherwise the union of the hull vertices of
    ``n_projections`` random orthogonal projections to ``max_dim`` dimensions. Returns sorted indices.
    """
    from scipy.spatial import ConvexHull, QhullError

    d, n = X.shape
    if d == 1:
        return np.unique([int(np.argmin(X[0])), int(np.argmax(X[0]))])

    def hull(P: np.ndarray) -> np.ndarray:
        try:
            return ConvexHull(P.T).vertices
        except QhullError:  # degenerate (flat) data: joggle the input
            return ConvexHull(P.T, qhull_options="QJ").vertices

    if d <= max_dim:
        return np.sort(hull(X))
    idx: set[int] = set()
    for _ in range(n_projections):
        Q, R = np.linalg.qr(rng.standard_normal((d, d)))
        Q = Q * np.sign(np.diag(R))  # Haar-distributed orthogonal matrix
        idx.update(hull(Q[:, :max_dim].T @ X).tolist())
    return np.array(sorted(idx), dtype=np.int64)


def facet_distance(M: np.ndarray, X: np.ndarray) -> float:
    """Mean over the pixels X (d × n) of the distance to the nearest facet of the simplex M (d × p), d = p−1.

    Distance of x to the facet opposite vertex i is ``|α_i(x)| / ‖∇α_i‖`` with α the barycentric
    coordinates of x: exact for any p and free of the "plane through the origin" special case.
    """
    d, p = M.shape
    Minv = np.linalg.pinv(np.vstack([M, np.ones((1, p))]))  # (p, d+1): α = Minv @ [x; 1]
    alpha = Minv @ np.vstack([X, np.ones((1, X.shape[1]))])
    grad = np.linalg.norm(Minv[:, :d], axis=1)  # (p,)
    dist = np.abs(alpha) / np.maximum(grad, 1e-300)[:, None]
    return float(np.mean(dist.min(axis=0)))


def simplex_ls_admm(
    M: np.ndarray,
    G: np.ndarray,
    *,
    S0: np.ndarray | None = None,
    mu_s: float = 0.0,
    iters: int = 100,
    state: tuple[np.ndarray, np.ndarray] | None = None,
    rho: float | None = None,
    tol: float = 1e-6,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """min_S ½‖G − M S‖² + ½µ_S‖S − S0‖²  s.t. S ≥ 0, 1ᵀS = 1 — ADMM vectorised over pixels.

    SUnSAL-style splitting S = Z with Z ≥ 0; the S step keeps the sum-to-one constraint exactly
    (equality-constrained least squares, closed form). ``state`` = (Z, D) warm-starts the ADMM
    (returned for the next call). Stops early by SUnSAL's rule (primal and dual residuals below
    ``tol``·sqrt(p·N), checked every 10 iterations). Returns ``(Z, state)``; Z is non-negative and
    sums to one (use FCLS when the exact minimiser is needed).
    """
    p = M.shape[1]
    MtM = M.T @ M
    if rho is None:
        rho = max(float(np.trace(MtM)) / p, 1e-8)
    H = MtM + (mu_s + rho) * np.eye(p)
    Hinv = np.linalg.inv(H)
    h1 = Hinv @ np.ones(p)
    # the S step is affine in (Z − D): S = c + K (Z − D), with the sum-to-one projection in the H metric
    P = np.eye(p) - np.outer(h1, np.ones(p)) / float(h1.sum())
    K = rho * (P @ Hinv)
    base = M.T @ G
    if S0 is not None and mu_s > 0:
        base = base + mu_s * S0
    c = P @ (Hinv @ base) + (h1 / float(h1.sum()))[:, None]
    if state is None:
        Z = np.full((p, G.shape[1]), 1.0 / p) if S0 is None else S0.copy()
        D = np.zeros_like(Z)
    else:
        Z, D = state
    W = np.empty_like(Z)
    stop = tol * np.sqrt(Z.size)
    for it in range(iters):
        check = (it % 10 == 9) or it == iters - 1
        if check:
            Z_old = Z.copy()
        np.subtract(Z, D, out=W)
        S = K @ W
        S += c
        D += S  # D ← D + S − Z, with Z = max(S + D, 0) computed from the same S + D
        np.maximum(D, 0.0, out=Z)
        D -= Z
        # SUnSAL stopping rule: primal ‖S − Z‖ and dual ρ‖Z − Z_old‖ residuals below tol·sqrt(pN)
        if check and np.linalg.norm(S - Z) < stop and rho * np.linalg.norm(Z - Z_old) < stop:
            break
    # renormalise the non-negative iterate onto the sum-to-one plane (tiny correction at convergence)
    s = Z.sum(axis=0, keepdims=True)
    Zn = np.where(s > 0, Z / np.where(s > 0, s, 1.0), 1.0 / p)
    return Zn, (Z, D)


def refit_endmembers(Y: np.ndarray, A: np.ndarray, *, max_cond: float = 1e10) -> np.ndarray | None:
    """Non-negative least-squares endmembers for fixed abundances: ``argmin_{E >= 0} ‖Y − E A‖²_F``.

    Y (B × N), A (p × N). One exact NNLS per band on the p × p normal equations (Cholesky factor R of
    A Aᵀ: ``min_e ‖R e − R⁻ᵀ A y_b‖²``), so the cost is O(p²N + B·p³). Returns None when A Aᵀ is
    ill-conditioned (condition number above ``max_cond``: an endmember with ~no abundance anywhere).
    """
    from scipy.linalg import cholesky, solve_triangular
    from scipy.optimize import nnls

    AAt = A @ A.T
    w = np.linalg.eigvalsh(AAt)
    if not np.isfinite(w).all() or w[0] <= 0 or w[-1] / w[0] > max_cond:
        return None
    R = cholesky(AAt, lower=False)  # AAt = Rᵀ R
    rhs = solve_triangular(R, A @ Y.T, trans="T", lower=False)  # (p, B) = R⁻ᵀ A Yᵀ
    E = np.empty((Y.shape[0], A.shape[0]))
    for b in range(Y.shape[0]):
        E[b] = nnls(R, rhs[:, b])[0]
    return E


def _volume_score(M: np.ndarray) -> float:
    """log-volume proxy of the simplex with vertices M (d × p) used to pick the best VCA run."""
    sv = np.linalg.svd(np.vstack([M, np.ones((1, M.shape[1]))]), compute_uv=False)
    return float(np.sum(np.log(sv + 1e-4)))


def nmf_qmv_subspace(
    G: np.ndarray,
    M0: np.ndarray,
    S0: np.ndarray,
    *,
    beta: float,
    term: str,
    ao_iters: int = 100,
    admm_iters: int = 100,
    mu_m: float | None = None,
    mu_s: float = 0.1,
    tol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray]:
    """Proximal alternating optimisation of NMF-QMV in the (spherized) subspace.

    G (d × N), M0 (d × p) initial vertices (also O for the ``"boundary"`` term), S0 (p × N) initial
    abundances. ``mu_m`` (default 1e-4·N·p, as the authors) and ``mu_s`` are the proximal weights.
    Returns ``(M, S)``.
    """
    d, p = M0.shape
    n = G.shape[1]
    if mu_m is None:
        mu_m = 1e-4 * n * p
    eye = np.eye(p)
    if term == "boundary":
        Tgt, Bm = M0.copy(), eye
    elif term == "center":
        Tgt, Bm = np.zeros((d, p)), eye
    else:
        Tgt, Bm = np.zeros((d, p)), eye - np.ones((p, p)) / p
    c1 = beta * Tgt @ Bm.T
    c2 = beta * Bm @ Bm.T + mu_m * eye
    M, S = M0.copy(), S0.copy()
    norm_g = float(np.linalg.norm(G)) or 1.0
    state = None
    for _ in range(ao_iters):
        M = np.linalg.solve((S @ S.T + c2).T, (G @ S.T + c1 + mu_m * M).T).T
        S, state = simplex_ls_admm(M, G, S0=S, mu_s=mu_s, iters=admm_iters, state=state)
        if np.linalg.norm(G - M @ S) / norm_g <= tol:
            break
    return M, S


def _vca_init(Y: np.ndarray, Gs: np.ndarray, p: int, rng: np.random.Generator, runs: int) -> np.ndarray:
    """Best of ``runs`` VCA runs (largest simplex volume), as vertices in the spherized subspace."""
    from simhsi.unmixing.geometric import vca

    best, best_vol = None, -np.inf
    for _ in range(runs):
        _, idx = vca(Y, p, rng=rng)
        Mv = Gs[:, np.asarray(idx, dtype=np.int64)]
        vol = _volume_score(Mv)
        if vol > best_vol:
            best, best_vol = Mv, vol
    assert best is not None
    return best


def nmf_qmv(
    Y: np.ndarray,
    p: int,
    *,
    betas: Sequence[float] = DEFAULT_BETAS,
    term: str = "center",
    rng: np.random.Generator,
    ao_iters: int = 100,
    admm_iters: int = 100,
    vca_runs: int = 30,
    mu_s: float = 0.1,
    neg_tol: float | None = 0.0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """NMF-QMV on Y (B × N). Returns ``(E (B × p), S (p × N), info)``.

    β is the candidate with the smallest boundary-pixel criterion among the *admissible* ones: those
    whose endmember spectra are >= −``neg_tol``·max|Y| (None: all candidates, the reference rule; if
    none is admissible, the least negative ones). ``info`` holds ``beta`` (the selected one),
    ``betas``, ``criterion`` (mean boundary-pixel distance to the facets, one per candidate, subspace
    units), ``admissible``, ``lowest`` (each candidate's lowest spectral value / max|Y|) and
    ``n_boundary``.
    """
    from tqdm.auto import tqdm

    my, U, lam = subspace(Y, p)
    G = U.T @ (Y - my[:, None])  # (p-1, N)
    c = 1.0 / (np.sqrt(lam) + 1e-6)  # spherize by the covariance ('cov' in the reference)
    Gs = c[:, None] * G
    M0 = _vca_init(Y, Gs, p, rng, vca_runs)
    S0, _ = simplex_ls_admm(M0, Gs, iters=1000)
    boundary = fast_bpi(G, rng)
    crit, cands = [], []
    for beta in tqdm(list(betas), desc="nmfqmv β", disable=not progress, leave=False):
        M, S = nmf_qmv_subspace(Gs, M0, S0, beta=float(beta), term=term, ao_iters=ao_iters,
                                admm_iters=admm_iters, mu_s=mu_s)
        Mu = M / c[:, None]  # undo the spherization
        crit.append(facet_distance(Mu, G[:, boundary]))
        cands.append((Mu, S))
    # admissible candidates: spectra non-negative up to neg_tol × data max (reflectance is >= 0; the
    # reference works in the subspace and never checks it)
    lowest = np.array([float((U @ Mu + my[:, None]).min()) for Mu, _ in cands])
    if neg_tol is None:
        ok = np.ones(len(cands), dtype=bool)
    else:
        ok = lowest >= -neg_tol * float(np.max(np.abs(Y)))
        if not ok.any():
            ok = lowest == lowest.max()
    k = int(np.argmin(np.where(ok, crit, np.inf)))
    Mu, S = cands[k]
    E = U @ Mu + my[:, None]
    info = {"beta": float(betas[k]), "betas": [float(b) for b in betas], "criterion": crit,
            "admissible": ok.tolist(), "lowest": (lowest / float(np.max(np.abs(Y)))).tolist(),
            "n_boundary": int(boundary.size)}
    return E, S, info


# ---------------------------------------------------------------------------------------------
# estimator
# ---------------------------------------------------------------------------------------------
@register
class NMFQMV(Unmixer):
    """NMF-QMV min-volume unmixing with automatic β (Zhuang et al. 2019), VCA initialisation.

    Parameters: ``term`` ("boundary" | "center" | "totalVar"; default "center", the term HySUPP's
    benchmark configuration uses), ``betas`` (candidates; default 10^-5 … 10^5 as in the authors'
    demo), ``ao_iters`` (outer iterations, 100), ``admm_iters`` (ADMM iterations per abundance step,
    100), ``vca_runs`` (VCA restarts for the initial simplex, 30), ``neg_tol`` (β candidates whose
    spectra go below −neg_tol × data max are not admissible; default 0, i.e. non-negative spectra;
    None: every candidate, the reference rule), ``debias`` (refit the selected endmembers by
    non-negative least squares on their FCLS abundances, without the volume term; default True),
    ``max_pixels`` (fit on at most this many randomly sampled pixels, 20,000). Endmembers are clipped
    at 0 (reflectance), then all abundances are the exact FCLS solution with those endmembers.
    After ``fit``: ``beta_`` (selected β), ``criterion_`` (one value per candidate), ``debiased_``.
    """

    name = "nmfqmv"
    family = "least-squares"

    def __init__(
        self,
        n_endmembers: int = 3,
        *,
        seed: int = 0,
        term: str = "center",
        betas: Sequence[float] = DEFAULT_BETAS,
        ao_iters: int = 100,
        admm_iters: int = 100,
        vca_runs: int = 30,
        neg_tol: float | None = 0.0,
        debias: bool = True,
        max_pixels: int = 20_000,
    ) -> None:
        super().__init__(n_endmembers, seed=seed)
        owner = "NMFQMV"
        check_param("term", term, term in TERMS, f"one of {', '.join(TERMS)}", owner)
        b = np.atleast_1d(np.asarray(betas, dtype=float)) if np.size(betas) else np.array([])
        check_param("betas", betas, b.size >= 1 and bool(np.all(np.isfinite(b) & (b >= 0))),
                    "a non-empty list of finite β >= 0", owner)
        for nm, v, lo in (("ao_iters", ao_iters, 1), ("admm_iters", admm_iters, 1), ("vca_runs", vca_runs, 1),
                          ("max_pixels", max_pixels, 2)):
            check_param(nm, v, isinstance(v, int | np.integer) and v >= lo, f"an int >= {lo}", owner)
        check_param("neg_tol", neg_tol, neg_tol is None or (isinstance(neg_tol, int | float) and neg_tol >= 0),
                    "None or a float >= 0", owner)
        check_param("debias", debias, isinstance(debias, bool | np.bool_), "True or False", owner)
        self.term = term
        self.debias = bool(debias)
        self.neg_tol = None if neg_tol is None else float(neg_tol)
        self.betas = [float(x) for x in b]
        self.ao_iters = int(ao_iters)
        self.admm_iters = int(admm_iters)
        self.vca_runs = int(vca_runs)
        self.max_pixels = int(max_pixels)

    def _fit(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        from simhsi.unmixing._base import sample_pixels
        from simhsi.unmixing.fcls import fcls

        Y = prep.Y
        Ys, _ = sample_pixels(Y, self.max_pixels, rng)
        E, _, info = nmf_qmv(Ys, self.n_endmembers, betas=self.betas, term=self.term, rng=rng,
                             ao_iters=self.ao_iters, admm_iters=self.admm_iters, vca_runs=self.vca_runs,
                             neg_tol=self.neg_tol, progress=progress)
        E = np.maximum(E, 0.0)
        self.debiased_ = False
        if self.debias:
            # debiasing: the volume term biases the vertices toward the data centre; refit the endmembers
            # without it, by non-negative least squares for the FCLS abundances of the fitted simplex
            E2 = refit_endmembers(Ys, fcls(Ys, E))
            if E2 is not None and np.all(E2.max(axis=0) > 0):
                E, self.debiased_ = E2, True
        self.beta_ = info["beta"]
        self.criterion_ = info["criterion"]
        self.admissible_ = info["admissible"]
        self.lowest_ = info["lowest"]
        self.n_fit_pixels_ = int(Ys.shape[1])
        return E, fcls(Y, E)

    def fit(self, cube: xr.DataArray, progress: bool = False) -> xr.Dataset:
        """Unmix ``cube``; the result attrs also record the β selection."""
        ds = super().fit(cube, progress=progress)
        ds.attrs["selected_beta"] = float(self.beta_)
        ds.attrs["beta_candidates"] = [float(v) for v in self.betas]
        ds.attrs["beta_criterion"] = [float(v) for v in self.criterion_]
        ds.attrs["beta_admissible"] = [int(v) for v in self.admissible_]
        ds.attrs["beta_lowest"] = [float(v) for v in self.lowest_]
        ds.attrs["n_fit_pixels"] = int(self.n_fit_pixels_)
        ds.attrs["debiased"] = int(self.debiased_)
        return ds
