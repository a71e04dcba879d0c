"""PGMSU: probabilistic generative model for spectral unmixing (Shi, Zhao, Zhang, Altmann & Chen, IEEE TGRS 60, 2022).

A variational autoencoder over pixels that models endmember variability (written from the paper and the
authors' description; no code copied):

* z-encoder: pixel → (μ, log σ²) of a z_dim latent (fully connected 32p → 16p → 4p with BatchNorm + ReLU);
* decoder: z → per-pixel endmembers E_n (p × bands) through a sigmoid (4p → 64p → bands·p), so every
  pixel has its own endmembers (variability) in [0, 1] (the data are scaled by their max);
* a-encoder: pixel → abundances by softmax (32p → 16p → 4p → 4p → p);
* reconstruction y_n ≈ E_n a_n; loss per pixel: squared error + λ_kl · max(KL, 0.2) (the "KL floor"
  stops posterior collapse).
* First half of the epochs: + λ_vca · ‖E_n − E_VCA‖² (pulls the endmembers toward VCA's; the authors use
  λ_vca = 0.1 over 100 epochs, our default is 1.0 over 30: see ``lambda_vca`` below);
  second half: + λ_vol · mean squared spread of each pixel's endmembers around their centroid
  (a minimum-volume surrogate) + λ_sad · mean spectral angle between E_n and the batch-mean endmembers
  (keeps the variability small).
* Adam, batch N/10, z_dim 4 as the authors. They train 200 epochs at lr 1e-3; our defaults are 60 epochs at
  lr 3e-3 (3.3× fewer steps; on Jasper Ridge about as accurate, see docs/unmixing_deep.md; pass
  ``epochs=200, lr=1e-3`` for the published schedule). (λ_kl, λ_sad, λ_vol) default to their Jasper Ridge
  values (0.1, 3, 7); they used (0.001, 4, 6) on Urban and (0.1, 0, 0.5) on synthetic data (HySUPP's
  defaults).

Returned endmembers Ê = mean over pixels of the per-pixel endmembers, decoded at the posterior mean μ
(the authors decode a random draw of z; μ makes the output a deterministic function of the weights).
Big scenes: training uses a seeded random sample of at most ``max_train_pixels`` pixels; abundances and
Ê are then computed over every pixel in batches of ``infer_batch``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simhsi.errors import check_param
from simhsi.unmixing._base import Prepared, TorchUnmixer, register


def _build_model(n_bands: int, p: int, z_dim: int):
    """The PGMSU network as a torch module (imports torch)."""
    import torch
    from torch import nn

    def mlp(sizes: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        return nn.Sequential(*layers)

    class PGMSUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p, self.n_bands = p, n_bands
            self.enc_z = mlp([n_bands, 32 * p, 16 * p, 4 * p])
            self.mu = nn.Linear(4 * p, z_dim)
            self.log_var = nn.Linear(4 * p, z_dim)
            self.enc_a = nn.Sequential(mlp([n_bands, 32 * p, 16 * p, 4 * p, 4 * p]), nn.Linear(4 * p, p))
            self.dec = nn.Sequential(mlp([z_dim, 4 * p, 64 * p]), nn.Linear(64 * p, n_bands * p))

        def encode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            h = self.enc_z(y)
            return self.mu(h), self.log_var(h), torch.softmax(self.enc_a(y), dim=1)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            """Per-pixel endmembers (n, p, bands) in [0, 1]."""
            return torch.sigmoid(self.dec(z)).view(-1, self.p, self.n_bands)

    return PGMSUNet()


@register
class PGMSU(TorchUnmixer):
    """Variational autoencoder unmixing with endmember variability (Shi et al. 2022).

    Parameters
    ----------
    n_endmembers: number of endmembers p.
    epochs: training epochs (the first half pull the endmembers toward VCA).
    lr: Adam learning rate.
    z_dim: latent size of the endmember generator.
    batch_fraction: batch size as a fraction of the training pixels (0.1 → 10 steps per epoch).
    lambda_kl, lambda_sad, lambda_vol: weights of the KL, SAD-variability and min-volume terms.
    lambda_vca: weight of the pull toward VCA in the first half. Default 1.0, ten times the authors' 0.1,
        because our first half is 3.3× shorter: on Samson (5 seeds) 1.0 gave SAD 4.72° against 6.95° with
        0.1 (the water endmember drifted less), on Jasper Ridge 15.51° against 14.26°
        (docs/benchmarks/unmixing.md, session 7).
    kl_floor: lower bound on the KL term (nats per pixel).
    max_train_pixels: train on a seeded random sample of at most this many pixels.
    infer_batch: pixels per batch when computing the outputs over the whole scene.
    device: "auto" (CUDA if present, else CPU), "cpu", "cuda", "cuda:N".
    num_threads: torch CPU threads during the fit (None: torch's setting; restored afterwards). Default 1:
        the network is small, and on a busy 2-core machine 2 threads ran 8× slower (26 s vs 220 s on Samson).
    seed: seed of every random draw (VCA, weights, sampling, shuffling); deterministic on CPU.
    """

    name = "pgmsu"
    family = "deep"

    def __init__(
        self,
        n_endmembers: int = 3,
        *,
        epochs: int = 60,
        lr: float = 3e-3,
        z_dim: int = 4,
        batch_fraction: float = 0.1,
        lambda_kl: float = 0.1,
        lambda_sad: float = 3.0,
        lambda_vol: float = 7.0,
        lambda_vca: float = 1.0,
        kl_floor: float = 0.2,
        max_train_pixels: int = 20000,
        infer_batch: int = 16384,
        device: str = "auto",
        num_threads: int | None = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(n_endmembers, seed=seed)
        self.epochs = epochs
        self.lr = lr
        self.z_dim = z_dim
        self.batch_fraction = batch_fraction
        self.lambda_kl = lambda_kl
        self.lambda_sad = lambda_sad
        self.lambda_vol = lambda_vol
        self.lambda_vca = lambda_vca
        self.kl_floor = kl_floor
        self.max_train_pixels = max_train_pixels
        self.infer_batch = infer_batch
        self.device = device
        self.num_threads = num_threads

    def _check(self) -> None:
        own = type(self).__name__
        isint = (int, np.integer)
        isnum = (int, float, np.integer, np.floating)
        check_param("epochs", self.epochs, isinstance(self.epochs, isint) and self.epochs >= 2, "an int >= 2", own)
        check_param("lr", self.lr, isinstance(self.lr, isnum) and self.lr > 0, "a float > 0", own)
        check_param("z_dim", self.z_dim, isinstance(self.z_dim, isint) and self.z_dim >= 1, "an int >= 1", own)
        check_param("batch_fraction", self.batch_fraction,
                    isinstance(self.batch_fraction, isnum) and 0 < self.batch_fraction <= 1, "a float in (0, 1]", own)
        for name in ("lambda_kl", "lambda_sad", "lambda_vol", "lambda_vca", "kl_floor"):
            v = getattr(self, name)
            check_param(name, v, isinstance(v, isnum) and v >= 0, "a float >= 0", own)
        check_param("max_train_pixels", self.max_train_pixels,
                    isinstance(self.max_train_pixels, isint) and self.max_train_pixels >= 2 * self.n_endmembers,
                    f"an int >= {2 * self.n_endmembers}", own)
        check_param("infer_batch", self.infer_batch, isinstance(self.infer_batch, isint) and self.infer_batch >= 1,
                    "an int >= 1", own)

    def _fit_impl(self, prep: Prepared, rng: np.random.Generator, progress: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from tqdm.auto import tqdm

        from simhsi.unmixing._torch import resolve_device, spectral_angle, torch_generator
        from simhsi.unmixing.geometric import vca

        self._check()
        dev = resolve_device(self.device)
        Y = prep.Y
        n_bands, n = Y.shape
        p = self.n_endmembers

        E_vca, _ = vca(Y, p, rng=rng)
        if n > self.max_train_pixels:
            train_idx = np.sort(rng.choice(n, self.max_train_pixels, replace=False))
            Yt = Y[:, train_idx]
        else:
            Yt = Y
        n_train = Yt.shape[1]
        batch = max(2, int(n_train * self.batch_fraction))

        gen_cpu = torch_generator(rng, "cpu")
        gen_dev = gen_cpu if dev.type == "cpu" else torch_generator(rng, dev)
        net = _build_model(n_bands, p, int(self.z_dim))
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.Linear):
                    # xavier-uniform weights, zero bias (as the authors); drawn from our generator
                    bound = float(np.sqrt(6.0 / (m.in_features + m.out_features)))
                    m.weight.uniform_(-bound, bound, generator=gen_cpu)
                    m.bias.zero_()
                elif isinstance(m, torch.nn.BatchNorm1d):
                    m.weight.normal_(1.0, 0.02, generator=gen_cpu)
                    m.bias.zero_()
        net.to(dev)
        X = torch.from_numpy(np.ascontiguousarray(Yt.T, dtype=np.float32)).to(dev)
        target = torch.from_numpy(np.ascontiguousarray(E_vca.T, dtype=np.float32))[None].to(dev)  # (1, p, B)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.lr))
        floor = torch.tensor(float(self.kl_floor), device=dev)
        half = self.epochs // 2
        net.train()
        bar = tqdm(range(self.epochs), desc="pgmsu", disable=not progress, leave=False)
        for epoch in bar:
            order = torch.randperm(n_train, generator=gen_cpu).to(dev)
            for start in range(0, n_train, batch):
                idx = order[start:start + batch]
                if idx.numel() < 2:  # BatchNorm needs > 1 sample
                    continue
                y = X[idx]
                nb = y.shape[0]
                mu, log_var, a = net.encode(y)
                eps = torch.randn(mu.shape, generator=gen_dev, device=dev, dtype=mu.dtype)
                em = net.decode(mu + eps * torch.exp(0.5 * log_var))  # (nb, p, B)
                y_hat = torch.bmm(a.unsqueeze(1), em).squeeze(1)
                loss_rec = (y_hat - y).square().sum() / nb
                kl = (-0.5 * (1.0 + log_var - mu.square() - log_var.exp())).sum() / nb
                loss = loss_rec + self.lambda_kl * torch.maximum(kl, floor)
                if epoch < half:
                    loss = loss + self.lambda_vca * (em - target).square().sum() / nb
                else:
                    spread = (em - em.mean(dim=1, keepdim=True)).square().sum() / (nb * p * n_bands)
                    sad = spectral_angle(em, em.mean(dim=0, keepdim=True), dim=2).sum() / (nb * p)  # broadcasts
                    loss = loss + self.lambda_vol * spread + self.lambda_sad * sad
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        net.eval()
        E, A = self._infer(net, Y, dev)
        self.net_ = net
        self.n_train_ = n_train
        self.endmembers_vca_ = E_vca
        return E, A

    def _infer(self, net: Any, Y: np.ndarray, dev: Any) -> tuple[np.ndarray, np.ndarray]:
        """Ê (B, p) = mean of per-pixel endmembers at z = μ, and A (p, N), over every pixel in batches."""
        import torch

        n_bands, n = Y.shape
        A = np.empty((self.n_endmembers, n), dtype=np.float64)
        E_sum = torch.zeros(self.n_endmembers, n_bands, dtype=torch.float64, device=dev)
        with torch.no_grad():
            for start in range(0, n, int(self.infer_batch)):
                y = torch.from_numpy(np.ascontiguousarray(Y[:, start:start + self.infer_batch].T,
                                                          dtype=np.float32)).to(dev)
                mu, _, a = net.encode(y)
                E_sum += net.decode(mu).sum(dim=0, dtype=torch.float64)
                A[:, start:start + y.shape[0]] = a.T.cpu().numpy()
        return (E_sum / n).T.cpu().numpy(), A
