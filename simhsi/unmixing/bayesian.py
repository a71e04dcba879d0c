"""Bayesian joint endmember extraction and unmixing by a hybrid Gibbs sampler.

Dobigeon, Moussaoui, Coulon, Tourneret & Hero, "Joint Bayesian endmember extraction and linear
unmixing for hyperspectral imagery", IEEE Trans. Signal Processing 57(11), 2009. The authors' code is
MATLAB; this is an independent numpy implementation, vectorised over pixels.

Model (Y: bands × pixels, max-scaled by :func:`simhsi.unmixing.prepare`)::

    y_n = M a_n + noise,   noise ~ N(0, σ² I)
    m_r = ȳ + U t_r         U (bands × (p−1)): PCA basis of Y, t_r: projected endmember r
    t_r ~ N(e_r, s² I) truncated to {t : ȳ + U t >= 0}   (non-negative spectra; e_r from VCA)
    a_n ~ uniform on the simplex;   σ² ~ Jeffreys (1/σ²)

Gibbs sweep (all conditionals sampled exactly, so no Metropolis step is needed):

1. abundances: for every pixel the conditional of p−1 free abundances is a Gaussian truncated to the
   simplex; one component-wise sweep of univariate truncated Gaussians, vectorised over pixels (the
   eliminated endmember is drawn at random each sweep, which keeps the target and helps mixing);
2. σ² | rest ~ inverse-gamma(B·N/2, ‖Y − M A‖²/2);
3. each t_r | rest is an isotropic Gaussian truncated to a polytope; its components are drawn one at
   a time from univariate truncated Gaussians on the interval allowed by the band constraints.

Estimates are the MMSE (posterior means) of M and A over the samples after burn-in. Defaults as
HySUPP's wrapper of the authors' code (100 samples, burn-in 33, prior variance s² = 10 in units of the
max-scaled data) except the initialisation: N-FINDR as in the paper (HySUPP uses VCA, available as
``init="vca"``; on Jasper Ridge the chain stays near its start, and VCA starts 8° worse). Big scenes:
the sampler runs on a seeded random sample of at most ``max_pixels`` pixels; abundances of every pixel
are then FCLS with the MMSE endmembers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simhsi.errors import check_param
from simhsi.unmixing._base import Prepared, Unmixer, register

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr


def truncated_normal(
    mu: np.ndarray | float,
    sd: np.ndarray | float,
    lo: np.ndarray | float,
    hi: np.ndarray | float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw N(mu, sd²) truncated to [lo, hi] elementwise, by exact inverse-CDF sampling in log space.

    Intervals are mirrored to the lower tail before inverting, so draws far in either tail stay
    accurate (``scipy.special.log_ndtr`` / ``ndtri_exp``). Empty intervals (lo >= hi) return lo.
    """
    from scipy.special import log_ndtr, ndtri_exp

    mu, sd, lo, hi = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (mu, sd, lo, hi)))
    a = (lo - mu) / sd
    b = (hi - mu) / sd
    flip = (a + b) > 0
    a2 = np.where(flip, -b, a)
    b2 = np.where(flip, -a, b)
    u = rng.random(a.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.logaddexp(log_ndtr(a2) + np.log1p(-u), log_ndtr(b2) + np.log(u))
        x = ndtri_exp(lx)
    x = np.clip(np.nan_to_num(x, nan=0.0), a2, b2)
    z = np.where(flip, -x, x)
    out = mu + sd * z
    empty = ~(hi > lo)
    if np.any(empty):
        out = np.where(empty, lo, out)
    return out


class _Stats:
    """Sufficient statistics of Y (B × N) for the sampler: everything it needs lives in the PCA subspace."""

    def __init__(self, Y: np.ndarray, U: np.ndarray, ybar: np.ndarray) -> None:
        self.B, self.N = Y.shape
        self.U = U  # (B, K)
        self.ybar = ybar  # (B,)
        self.Z = U.T @ Y  # (K, N) projections of the pixels
        self.yb = ybar @ Y  # (N,) ȳᵀ y_n
        self.uy = U.T @ ybar  # (K,) Uᵀ ȳ
        self.yy = float(ybar @ ybar)
        self.norm_y2 = float(np.einsum("ij,ij->", Y, Y))

    def gram(self, T: np.ndarray) -> np.ndarray:
        """MᵀM for M = ȳ1ᵀ + U T."""
        p = T.shape[1]
        c = self.uy @ T  # (p,)
        return self.yy * np.ones((p, p)) + c[None, :] + c[:, None] + T.T @ T

    def my(self, T: np.ndarray) -> np.ndarray:
        """MᵀY (p × N)."""
        return self.yb[None, :] + T.T @ self.Z

    def residual2(self, T: np.ndarray, A: np.ndarray) -> float:
        """‖Y − M A‖²_F without forming M A."""
        return max(self.norm_y2 - 2.0 * float(np.sum(self.my(T) * A)) + float(np.sum(self.gram(T) * (A @ A.T))),
                   0.0)


def _sample_abundances(st: _Stats, T: np.ndarray, A: np.ndarray, sigma2: float,
                       rng: np.random.Generator) -> np.ndarray:
    """One Gibbs sweep over the abundances of every pixel (A: p × N, updated copy returned)."""
    p = T.shape[1]
    last = int(rng.integers(p))  # endmember eliminated by the sum-to-one constraint in this sweep
    free = np.array([j for j in range(p) if j != last])
    Dk = T[:, free] - T[:, [last]]  # D = M_free − m_last 1ᵀ = U Dk  (the ȳ parts cancel)
    DtD = Dk.T @ Dk
    Q = DtD / sigma2  # precision of the free abundances
    # Dᵀ(y_n − m_last) = Dkᵀ(Uᵀy_n − Uᵀȳ − t_last)
    rhs = Dk.T @ (st.Z - (st.uy + T[:, last])[:, None])
    psi = np.linalg.solve(DtD, rhs)  # (p-1, N) unconstrained conditional mean
    C = A[free].copy()
    for k in range(p - 1):
        others = [j for j in range(p - 1) if j != k]
        mu = psi[k] - (Q[k, others] @ (C[others] - psi[others])) / Q[k, k]
        upper = np.maximum(1.0 - C[others].sum(axis=0), 0.0)
        C[k] = truncated_normal(mu, 1.0 / np.sqrt(Q[k, k]), 0.0, upper, rng)
    out = np.empty_like(A)
    out[free] = C
    out[last] = np.maximum(1.0 - C.sum(axis=0), 0.0)
    return out


def _sample_endmembers(
    st: _Stats,
    T: np.ndarray,
    A: np.ndarray,
    prior_mean: np.ndarray,
    prior_var: float,
    sigma2: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One Gibbs sweep over the projected endmembers T ((p−1) × p), component by component.

    t_r | rest is N(mean, v I) (isotropic because Uᵀ U = I) truncated to {t : ȳ + U t >= 0}; each
    component is drawn on the interval that the B band constraints leave it.
    """
    K, p = T.shape
    T = T.copy()
    ZAt = st.Z @ A.T  # (K, p)
    AAt = A @ A.T
    U, ybar = st.U, st.ybar
    for r in range(p):
        # Uᵀ Σ_n a_rn (y_n − Σ_{j≠r} a_jn m_j − a_rn ȳ)
        ub = ZAt[:, r] - st.uy * AAt[:, r].sum() - T @ AAt[:, r] + T[:, r] * AAt[r, r]
        v = 1.0 / (AAt[r, r] / sigma2 + 1.0 / prior_var)
        mean = v * (ub / sigma2 + prior_mean[:, r] / prior_var)
        t = T[:, r]
        spec = ybar + U @ t
        for k in range(K):
            u = U[:, k]
            c = spec - u * t[k]  # spectrum without component k
            with np.errstate(divide="ignore", invalid="ignore"):
                bound = -c / u
            lo = np.max(bound[u > 0], initial=-np.inf)
            hi = np.min(bound[u < 0], initial=np.inf)
            t[k] = float(truncated_normal(mean[k], np.sqrt(v), lo, hi, rng))
            spec = c + u * t[k]
        T[:, r] = t
    return T


def _initial_endmembers(Y: np.ndarray, p: int, init: str, rng: np.random.Generator) -> np.ndarray:
    from simhsi.unmixing.geometric import nfindr, vca

    if init == "vca":
        E0, _ = vca(Y, p, rng=rng)
    else:
        E0, _ = nfindr(Y, p, rng=rng)
    return np.asarray(E0, dtype=np.float64)


def bayesian_unmix(
    Y: np.ndarray,
    p: int,
    *,
    rng: np.random.Generator,
    n_samples: int = 100,
    burn_in: int = 33,
    prior_var: float = 10.0,
    init: str = "nfindr",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run the Gibbs sampler on Y (B × N). Returns MMSE ``(E (B × p), A (p × N), info)``.

    ``init``: "nfindr" (as in the paper) or "vca" (as HySUPP's wrapper) for the initial endmembers,
    which are also the prior means. ``info``: ``sigma2`` (posterior mean noise variance, units of Y²)
    and ``n_kept`` samples.
    """
    from tqdm.auto import tqdm

    from simhsi.unmixing.fcls import fcls

    B, N = Y.shape
    ybar = Y.mean(axis=1)
    Yc = Y - ybar[:, None]
    w, V = np.linalg.eigh(Yc @ Yc.T / N)
    U = V[:, np.argsort(w)[::-1][: p - 1]]  # (B, p-1) orthonormal PCA basis
    st = _Stats(Y, U, ybar)
    E0 = _initial_endmembers(Y, p, init, rng)
    T = U.T @ (E0 - ybar[:, None])
    # make the initial endmembers feasible (ȳ + U t >= 0) by shrinking toward the mean if needed
    for r in range(p):
        d = U @ T[:, r]
        neg = d < 0
        if np.any(ybar[neg] + d[neg] < 0):
            T[:, r] *= 0.999 * float(np.min(ybar[neg] / -d[neg]))
    prior_mean = T.copy()
    A = fcls(Y, ybar[:, None] + U @ T)
    sigma2 = st.residual2(T, A) / (B * N)
    sum_T = np.zeros_like(T)
    sum_A = np.zeros((p, N))
    sum_s2 = 0.0
    kept = 0
    for it in tqdm(range(n_samples), desc="bayes Gibbs", disable=not progress, leave=False):
        A = _sample_abundances(st, T, A, sigma2, rng)
        sigma2 = 0.5 * st.residual2(T, A) / rng.gamma(0.5 * B * N)
        T = _sample_endmembers(st, T, A, prior_mean, prior_var, sigma2, rng)
        if it >= burn_in:
            sum_T += T
            sum_A += A
            sum_s2 += sigma2
            kept += 1
    E = ybar[:, None] + U @ (sum_T / kept)
    return E, sum_A / kept, {"sigma2": sum_s2 / kept, "n_kept": kept}


@register
class BayesianUnmixer(Unmixer):
    """Bayesian joint endmember extraction + unmixing (Dobigeon et al. 2009), hybrid Gibbs sampler.

    Parameters: ``n_samples`` (Gibbs iterations, 100), ``burn_in`` (33), ``prior_var`` (variance s² of
    the truncated Gaussian prior on the projected endmembers, max-scaled data units, 10), ``init``
    ("nfindr" as in the paper — the default — or "vca" as HySUPP's wrapper: the initial endmembers,
    also the prior means),
    ``max_pixels`` (the sampler runs on at most this many randomly sampled pixels, 10,000; when the
    scene is larger, all abundances are FCLS with the MMSE endmembers, otherwise they are the MMSE
    abundances). Endmembers are the posterior means.
    """

    name = "bayes"
    family = "statistical"

    def __init__(
        self,
        n_endmembers: int = 3,
        *,
        seed: int = 0,
        n_samples: int = 100,
        burn_in: int = 33,
        prior_var: float = 10.0,
        init: str = "nfindr",
        max_pixels: int = 10_000,
    ) -> None:
        super().__init__(n_endmembers, seed=seed)
        owner = "BayesianUnmixer"
        check_param("n_samples", n_samples, isinstance(n_samples, int | np.integer) and n_samples >= 1,
                    "an int >= 1", owner)
        check_param("burn_in", burn_in, isinstance(burn_in, int | np.integer) and 0 <= burn_in < n_samples,
                    f"an int in [0, n_samples={n_samples})", owner)
        check_param("prior_var", prior_var, isinstance(prior_var, int | float) and np.isfinite(prior_var)
                    and prior_var > 0, "a finite float > 0", owner)
        check_param("init", init, init in ("nfindr", "vca"), "'nfindr' or 'vca'", owner)
        check_param("max_pixels", max_pixels, isinstance(max_pixels, int | np.integer) and max_pixels >= 2,
                    "an int >= 2", owner)
        self.n_samples = int(n_samples)
        self.burn_in = int(burn_in)
        self.prior_var = float(prior_var)
        self.init = init
        self.max_pixels = int(max_pixels)

    def _fit(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        from simhsi.unmixing._base import sample_pixels
        from simhsi.unmixing.fcls import fcls

        Y = prep.Y
        Ys, sampled = sample_pixels(Y, self.max_pixels, rng)
        E, A, info = bayesian_unmix(Ys, self.n_endmembers, rng=rng, n_samples=self.n_samples,
                                    burn_in=self.burn_in, prior_var=self.prior_var, init=self.init,
                                    progress=progress)
        self.sigma2_ = info["sigma2"]
        self.n_fit_pixels_ = int(Ys.shape[1])
        if sampled:
            A = fcls(Y, E)
        return E, A

    def fit(self, cube: xr.DataArray, progress: bool = False) -> xr.Dataset:
        """Unmix ``cube``; the result attrs also record the noise variance and estimator."""
        ds = super().fit(cube, progress=progress)
        ds.attrs["noise_variance"] = float(self.sigma2_) * float(ds.attrs["scale"]) ** 2
        ds.attrs["n_fit_pixels"] = int(self.n_fit_pixels_)
        ds.attrs["abundance_estimator"] = "mmse" if self.n_fit_pixels_ == int(ds["mask"].sum()) else "fcls"
        return ds
