"""EDAA: entropic descent archetypal analysis (Zouaoui, Muhawenayo, Rasti, Chanussot & Mairal 2023).

A. Zouaoui et al., "Entropic Descent Archetypal Analysis for Blind Hyperspectral Unmixing", IEEE TIP 32,
2023 (authors' PyTorch code: github.com/inria-thoth/EDAA; HySUPP ships a wrapper). This is an
independent torch implementation of the algorithm described there.

Archetypal analysis writes the endmembers as convex combinations of pixels, E = Y B, and solves

    min_{A, B}  ½‖Y − Y B A‖²_F   s.t.  every column of A (p × N) and of B (N × p) lies on its simplex.

EDAA alternates ``K1`` entropic (mirror / exponentiated) gradient steps on A and ``K2`` on B, ``T``
times: ``A ← softmax(log A − η_A ∇_A)`` (columns of A), ``B ← softmax(log B − η_B ∇_B)`` (columns of B),
with η_A = f / σ_max(Y B₀)², η_B = η_A·sqrt(p/N) and a random step factor f ∈ {2⁻³, …, 2³} per run.
Starts: A = 1/p, B = softmax over pixels of 0.1·U(0, 1). ``M`` runs with different random starts and
step factors; model selection as in the paper: among the runs whose L1 residual ‖Y − Y B A‖₁ is within
5 % of the best one, the run whose endmembers have the smallest maximal pairwise correlation.

Implementation notes (documented deviations; the objective is the same):

* the ``M`` runs are optimised together, batched (one matrix product serves all runs);
* T = 300 outer iterations by default (HySUPP: 100): the batched runs are cheap enough to run longer,
  and after 100 iterations the archetypes are not converged (Samson mean SAD 4.95° at 100, 4.41° at 300);
* the iterations work on the projection of the pixels onto their ``n_components`` leading (uncentred)
  singular directions (by default 32, or all bands when fewer): ‖Y − YBA‖² only depends on YᵀY, and the
  discarded directions hold the noise (0.01–0.02 % of the energy of Samson / Jasper Ridge beyond 20);
  ``n_components=None`` uses the full data. The model selection uses the full data;
* the entropic steps are done in place as W ← W·exp(S − max S) / Σ (= softmax(log W + S), as the
  reference), with the weights floored at 1e-30 so that no column underflows to all zeros (float32);
* the output abundances are the exact FCLS solution with the selected endmembers (the optimum of the
  A sub-problem), so they lie exactly on the simplex;
* large scenes: the fit runs on a seeded random sample of at most ``max_pixels`` pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simhsi.errors import ModelError, check_param
from simhsi.unmixing._base import Prepared, TorchUnmixer, register

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray as xr


#: Smallest weight kept by the entropic steps (float32): avoids all-zero columns (0/0) after underflow.
FLOOR = 1e-30


def _reduce(Y: np.ndarray, n_components: int | None) -> np.ndarray:
    """Y (B × N) → X (d × N) with XᵀX the best rank-d approximation of YᵀY (d = n_components)."""
    B, N = Y.shape
    if n_components is None or n_components >= min(B, N):
        return Y
    # eigen-decomposition of the small B × B Gram matrix: X = U_dᵀ Y
    w, V = np.linalg.eigh(Y @ Y.T)
    U = V[:, np.argsort(w)[::-1][:n_components]]
    return U.T @ Y


def edaa_runs(
    X: torch.Tensor,
    p: int,
    *,
    n_runs: int,
    T: int,
    K1: int,
    K2: int,
    step_factors: np.ndarray,
    generator: torch.Generator,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_runs`` EDAA runs on X (d × N), batched. Returns ``(B (M, p, N), A (M, p, N))``.

    ``B[m, j]`` are the convex weights (over pixels) of archetype j of run m; ``A[m, :, n]`` the
    abundances of pixel n. ``step_factors`` (M,) multiply the reference step 1/σ_max(Y B₀)².
    """
    import torch
    from tqdm.auto import tqdm

    d, N = X.shape
    M = n_runs
    dt, dev = X.dtype, X.device
    Xt = X.T.contiguous()  # (N, d)
    # B stored transposed: row m*p + j = weights of archetype j of run m over the pixels
    Bt = torch.softmax(0.1 * torch.rand((M * p, N), generator=generator, device=dev, dtype=dt), dim=1)
    A = torch.full((M, p, N), 1.0 / p, dtype=dt, device=dev)
    Et = (Bt @ Xt).view(M, p, d)  # archetypes (rows) in the reduced space
    smax = torch.linalg.matrix_norm(Et.double(), ord=2)  # σ_max(Y B₀), one per run
    eta_a = torch.as_tensor(step_factors, dtype=torch.float64, device=dev) / smax**2
    eta_b = (eta_a * np.sqrt(p / N)).to(dt).repeat_interleave(p)[:, None]  # (M p, 1)
    neg_eta_a = (-eta_a).to(dt)[:, None, None]

    def entropic_step(W: torch.Tensor, S: torch.Tensor, dim: int) -> None:
        """W ← softmax(log W + S) along ``dim``, in place (S is overwritten).

        Weights are floored at ``FLOOR`` first, so a column never underflows to all zeros.
        """
        S.sub_(S.amax(dim=dim, keepdim=True)).exp_()
        W.clamp_(min=FLOOR).mul_(S)
        W.div_(W.sum(dim=dim, keepdim=True))

    for _ in tqdm(range(T), desc="edaa", disable=not progress, leave=False):
        # A steps (B fixed): ∇_A = EᵀE A − EᵀY
        Et = (Bt @ Xt).view(M, p, d)
        C = (Et.reshape(M * p, d) @ X).view(M, p, N)
        Q = torch.bmm(Et, Et.transpose(1, 2))
        for _ in range(K1):
            G = torch.baddbmm(C, Q, A, beta=-1.0)
            entropic_step(A, G.mul_(neg_eta_a), 1)
        # B steps (A fixed): ∇_Bᵀ = −(P − A Aᵀ Eᵀ) X with P = A Xᵀ and Eᵀ = Bᵀ Xᵀ
        P = (A.reshape(M * p, N) @ Xt).view(M, p, d)
        AAt = torch.bmm(A, A.transpose(1, 2))
        for _ in range(K2):
            Et = (Bt @ Xt).view(M, p, d)
            Z = P - torch.bmm(AAt, Et)
            G = Z.reshape(M * p, d) @ X  # = −∇_Bᵀ
            entropic_step(Bt, G.mul_(eta_b), 1)
    return Bt.view(M, p, N), A


def select_run(Y: np.ndarray, E: np.ndarray, A: np.ndarray, tol: float = 0.05) -> tuple[int, np.ndarray, np.ndarray]:
    """EDAA model selection. Y (B × N), E (M, B, p) endmembers and A (M, p, N) abundances of M runs.

    Among the runs with ``‖Y − E A‖₁`` within ``tol`` (relative) of the smallest, the run whose endmembers
    have the smallest maximal pairwise (Pearson) correlation. Returns ``(index, fit_l1 (M,), max_corr (M,))``.
    """
    M, _, p = E.shape
    fit = np.array([float(np.abs(Y - E[m] @ A[m]).sum()) for m in range(M)])
    fit = np.where(np.isfinite(fit), fit, np.inf)  # a diverged run is never selected
    if not np.isfinite(fit).any():
        raise ModelError("EDAA: every run diverged (non-finite residual); check the cube for extreme values")
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.array([float(np.max(np.corrcoef(E[m].T) - np.eye(p))) for m in range(M)])
    corr = np.nan_to_num(corr, nan=1.0)  # a constant endmember has no correlation: rank it last
    ok = np.abs(fit - fit.min()) / np.maximum(np.abs(fit), 1e-300) < tol
    idx = np.flatnonzero(ok)
    return int(idx[np.argmin(corr[idx])]), fit, corr


@register
class EDAA(TorchUnmixer):
    """Entropic descent archetypal analysis (Zouaoui et al. 2023), ensemble of runs + model selection.

    Parameters (defaults: HySUPP's EDAA configuration, except T = 300 instead of 100)
    ----------
    n_endmembers: number of endmembers p.
    n_runs: number of runs M (random starts and step factors) of the ensemble.
    T: outer iterations (HySUPP: 100; 300 converge further: Samson SAD 4.95° → 4.41°, Jasper Ridge
        6.07° → 5.86°, see docs/benchmarks/unmixing.md); K1, K2: entropic steps on A, then on B, per outer
        iteration.
    n_components: dimension of the pixel projection used by the iterations (None: all bands).
    max_pixels: fit on at most this many randomly sampled pixels; abundances of all pixels by FCLS.
    device: "auto" (CUDA if present, else CPU), "cpu", "cuda", "cuda:N".
    num_threads: torch CPU threads during the fit (None: torch's setting; restored afterwards).
    seed: seed of every random draw (starts, step factors, pixel sample).

    After ``fit``: ``selected_run_``, ``step_factor_``, ``fit_l1_`` and ``max_corr_`` (one per run).
    """

    name = "edaa"
    family = "least-squares"

    def __init__(
        self,
        n_endmembers: int = 3,
        *,
        n_runs: int = 50,
        T: int = 300,
        K1: int = 5,
        K2: int = 5,
        n_components: int | None = 32,
        max_pixels: int = 20_000,
        device: str = "auto",
        num_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(n_endmembers, seed=seed)
        own = "EDAA"
        isint = (int, np.integer)
        for nm, v, lo in (("n_runs", n_runs, 1), ("T", T, 1), ("K1", K1, 1), ("K2", K2, 1),
                          ("max_pixels", max_pixels, 2)):
            check_param(nm, v, isinstance(v, isint) and v >= lo, f"an int >= {lo}", own)
        check_param("n_components", n_components,
                    n_components is None or (isinstance(n_components, isint) and n_components >= 1),
                    "None or an int >= 1", own)
        self.n_runs = int(n_runs)
        self.T = int(T)
        self.K1 = int(K1)
        self.K2 = int(K2)
        self.n_components = None if n_components is None else int(n_components)
        self.max_pixels = int(max_pixels)
        self.device = device
        self.num_threads = num_threads

    def _fit_impl(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from simhsi.unmixing._base import sample_pixels
        from simhsi.unmixing._torch import resolve_device, torch_generator
        from simhsi.unmixing.fcls import fcls

        dev = resolve_device(self.device)
        p = self.n_endmembers
        Ys, _ = sample_pixels(prep.Y, self.max_pixels, rng)
        Ys = np.asarray(Ys, dtype=np.float64)
        # the reduced problem keeps at least p directions (it must be able to hold p archetypes)
        nc = None if self.n_components is None else max(self.n_components, p)
        X = torch.as_tensor(_reduce(Ys, nc), dtype=torch.float32, device=dev)
        factors = 2.0 ** rng.integers(-3, 4, size=self.n_runs)
        gen = torch_generator(rng, dev)
        with torch.no_grad():
            Bw, A = edaa_runs(X, p, n_runs=self.n_runs, T=self.T, K1=self.K1, K2=self.K2,
                              step_factors=factors, generator=gen, progress=progress)
        Bw = Bw.double().cpu().numpy()  # (M, p, N)
        A = A.double().cpu().numpy()
        E_runs = np.einsum("bn,mpn->mbp", Ys, Bw)  # archetypes: convex combinations of pixels
        k, fit, corr = select_run(Ys, E_runs, A)
        E = np.maximum(E_runs[k], 0.0)  # already >= 0 for non-negative data
        self.selected_run_ = k
        self.step_factor_ = float(factors[k])
        self.fit_l1_ = fit
        self.max_corr_ = corr
        self.n_fit_pixels_ = int(Ys.shape[1])
        return E, fcls(prep.Y, E)

    def fit(self, cube: xr.DataArray, progress: bool = False) -> xr.Dataset:
        """Unmix ``cube``; the result attrs also record the model selection."""
        ds = super().fit(cube, progress=progress)
        ds.attrs["selected_run"] = int(self.selected_run_)
        ds.attrs["step_factor"] = float(self.step_factor_)
        ds.attrs["n_fit_pixels"] = int(self.n_fit_pixels_)
        return ds
