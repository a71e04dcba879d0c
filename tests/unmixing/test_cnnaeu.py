"""CNNAEU (convolutional autoencoder unmixing) and the shared torch helpers (SAD loss, TF-style RMSprop)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from simhsi.errors import DataError, ParameterError
from simhsi.unmixing import available_methods, get_method

torch = pytest.importorskip("torch")

FAST = {"epochs": 3, "n_patches": 4, "patch_size": 10, "batch_size": 2, "kernel": 3, "device": "cpu"}


def _fit(cube, seed=0, p=3, **kw):
    params = {**FAST, **kw}
    model = get_method("cnnaeu")(p, seed=seed, **params)
    return model, model.fit(cube)


# -- shared torch helpers ------------------------------------------------------------------------
def test_sad_loss_hand_values():
    from simhsi.unmixing._torch import sad_loss, spectral_angle

    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    o = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    ang = spectral_angle(t, o, dim=1)
    assert ang.tolist() == pytest.approx([math.pi / 4, math.pi / 2], abs=1e-6)
    assert float(sad_loss(t, o, dim=1)) == pytest.approx(3 * math.pi / 8, abs=1e-6)
    # weighted: only the first pixel counts
    assert float(sad_loss(t, o, dim=1, weight=torch.tensor([1.0, 0.0]))) == pytest.approx(math.pi / 4, abs=1e-6)
    # scale invariance, and a finite gradient on an exact fit (acos is clamped)
    x = torch.tensor([[0.2, 0.5, 0.3]], requires_grad=True)
    loss = sad_loss(3.0 * x.detach(), x, dim=1)
    loss.backward()
    assert float(loss.detach()) < 1e-3 and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        sad_loss(t, o[:1], dim=1)


def test_rmsprop_tf_formula_by_hand():
    """TF: ms = rho*ms + (1-rho) g²; w -= lr g / sqrt(ms + eps). Hand values for lr .01, rho .9, eps 1e-7."""
    from simhsi.unmixing._torch import RMSpropTF

    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = RMSpropTF([w], lr=0.01, rho=0.9, eps=1e-7)
    w.grad = torch.tensor([1e-4], dtype=torch.float64)
    opt.step()
    # ms = 1e-9; step = 0.01 * 1e-4 / sqrt(1.01e-7) = 3.146583...e-3
    assert float(w.detach()) == pytest.approx(-3.1465838776377e-3, rel=1e-9)
    w.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    # ms = 0.9e-9 + 0.1*4 = 0.4000000009; step = 0.01 * 2 / sqrt(0.4000001009)
    assert float(w.detach()) == pytest.approx(-3.1465838776377e-3 - 0.02 / math.sqrt(0.4000001009), rel=1e-9)

    # torch's RMSprop puts eps outside the sqrt: a 10x larger first step for this tiny gradient
    v = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    ref = torch.optim.RMSprop([v], lr=0.01, alpha=0.9, eps=1e-7)
    v.grad = torch.tensor([1e-4], dtype=torch.float64)
    ref.step()
    assert abs(float(v.detach())) > 9 * 3.1465838776377e-3

    # momentum variant: mom = m*mom + lr g / sqrt(ms + eps); w -= mom
    u = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = RMSpropTF([u], lr=0.1, rho=0.5, momentum=0.5, eps=0.0)
    for _ in range(2):
        u.grad = torch.tensor([1.0], dtype=torch.float64)
        opt.step()
    m1 = 0.1 / math.sqrt(0.5)
    m2 = 0.5 * m1 + 0.1 / math.sqrt(0.75)
    assert float(u.detach()) == pytest.approx(-(m1 + m2), rel=1e-12)
    with pytest.raises(ParameterError):
        RMSpropTF([u], lr=-1.0)


def test_conv2d_few_in_matches_conv2d():
    """The decoder convolution's custom backward (GEMM + fold) gives torch's conv2d gradients."""
    import torch.nn.functional as F

    from simhsi.unmixing._torch import conv2d_few_in

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 11, 9, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(7, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv2d_few_in, (x, w))
    go = torch.rand(2, 7, 7, 5, generator=g, dtype=torch.float64)
    ref = torch.autograd.grad(F.conv2d(x, w), (x, w), go)
    out = conv2d_few_in(x, w)
    np.testing.assert_allclose(out.detach().numpy(), F.conv2d(x, w).detach().numpy(), rtol=1e-12)
    got = torch.autograd.grad(out, (x, w), go)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    # only the weight needs a gradient (the decoder's input always does in training, but check both paths)
    gw = torch.autograd.grad(conv2d_few_in(x.detach(), w), w, go)[0]
    np.testing.assert_allclose(gw.numpy(), ref[1].numpy(), rtol=1e-10)


def test_resolve_device():
    from simhsi.unmixing._torch import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParameterError):
        resolve_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA"):
            resolve_device("cuda")


def test_import_is_light():
    code = "import sys, simhsi.unmixing; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- CNNAEU ----------------------------------------------------------------------------------------
def test_registered():
    assert "cnnaeu" in available_methods()
    assert get_method("cnnaeu").family == "deep"


def test_runs_valid_output(mixture):
    cube, _, _ = mixture(h=14, w=14, n_bands=24, p=3, seed=1)
    model, res = _fit(cube)
    A = res["abundances"].values
    E = res["endmembers"].values
    assert A.shape == (3, 14, 14) and E.shape == (3, 24)
    assert A.min() >= 0 and np.allclose(A.sum(axis=0), 1.0, atol=1e-5)
    assert E.min() >= 0 and np.all(np.isfinite(E))
    assert res.attrs["method"] == "cnnaeu" and res.attrs["param_epochs"] == 3
    # the decoder stays non-negative after every update, and E is its kernel average (times one scale per
    # endmember)
    w = model.net_.decoder.weight.detach().numpy()
    assert w.min() >= 0
    raw = w.mean(axis=(2, 3))  # (B, p)
    ratio = model.endmembers_ / np.where(raw > 0, raw, np.nan)
    assert np.all(np.nanstd(ratio, axis=0) / np.nanmean(ratio, axis=0) < 1e-5)


def test_endmember_scales_exact():
    from scipy.optimize import nnls

    from simhsi.unmixing.cnnaeu import endmember_scales

    rng = np.random.default_rng(0)
    E, A = rng.random((12, 3)), rng.dirichlet(np.ones(3), 50).T
    d_true = np.array([0.5, 2.0, 1.3])
    np.testing.assert_allclose(endmember_scales(E @ np.diag(d_true) @ A, E, A, chunk=7), d_true, rtol=1e-10)
    Y = rng.standard_normal((12, 50))  # general case: the NNLS on the vectorised problem
    cols = np.stack([np.outer(E[:, i], A[i]).ravel() for i in range(3)], axis=1)
    np.testing.assert_allclose(endmember_scales(Y, E, A), nnls(cols, Y.ravel())[0], atol=1e-10)


def test_abundance_estimators(mixture):
    """Default: per-endmember magnitudes fitted on the encoder's abundances, then FCLS; "sclsu" and
    "encoder" (the network's softmax output) from the same training run."""
    from simhsi.unmixing import prepare
    from simhsi.unmixing.cnnaeu import endmember_scales
    from simhsi.unmixing.fcls import fcls
    from simhsi.unmixing.sclsu import sclsu

    cube, _, _ = mixture(h=12, w=12, n_bands=16, p=3, seed=7)
    prep = prepare(cube, 3)
    img = cube.transpose("band", "y", "x").values.astype(np.float32) / prep.scale
    enc_model, enc = _fit(cube, abundances="encoder")
    assert enc.attrs["abundance_estimator"] == "encoder"
    A_enc = enc_model._infer(enc_model.net_, img, torch.device("cpu")).reshape(3, -1).astype(float)
    np.testing.assert_allclose(enc["abundances"].values.reshape(3, -1), A_enc, atol=1e-6)
    E = enc_model.net_.decoder.weight.detach().double().mean(dim=(2, 3)).numpy()

    model, res = _fit(cube)
    assert res.attrs["abundance_estimator"] == "fcls" and res.attrs["param_abundances"] == "fcls"
    # the same training run whichever output is asked for
    np.testing.assert_array_equal(model.net_.decoder.weight.detach().numpy(),
                                  enc_model.net_.decoder.weight.detach().numpy())
    Es = E * endmember_scales(prep.Y, E, A_enc)
    np.testing.assert_allclose(res["endmembers"].values.T / prep.scale, Es, rtol=1e-5)
    np.testing.assert_allclose(res["abundances"].values.reshape(3, -1), fcls(prep.Y, Es), atol=1e-6)

    _, sc = _fit(cube, abundances="sclsu")
    assert sc.attrs["abundance_estimator"] == "sclsu"
    np.testing.assert_allclose(sc["abundances"].values.reshape(3, -1), sclsu(prep.Y, E)[0], atol=1e-6)
    with pytest.raises(ParameterError):
        _fit(cube, abundances="mean")


def test_seed_determinism(mixture):
    cube, _, _ = mixture(h=12, w=12, n_bands=16, p=3, seed=2)
    _, r1 = _fit(cube, seed=5)
    _, r2 = _fit(cube, seed=5)
    _, r3 = _fit(cube, seed=6)
    np.testing.assert_array_equal(r1["abundances"].values, r2["abundances"].values)
    np.testing.assert_array_equal(r1["endmembers"].values, r2["endmembers"].values)
    assert not np.allclose(r1["endmembers"].values, r3["endmembers"].values)


def test_learns_a_clean_mixture(mixture):
    """Training lowers the SAD loss well below the untrained network's on a noise-free scene."""
    cube, _, _ = mixture(h=16, w=16, n_bands=20, p=3, seed=3)
    _, r0 = _fit(cube, epochs=1, lr=1e-6)
    _, r1 = _fit(cube, epochs=40, n_patches=6, patch_size=12, batch_size=3, lr=3e-3)
    assert r1.attrs["rmse"] < 0.5 * r0.attrs["rmse"]


def test_tiled_inference_is_exact(mixture):
    cube, _, _ = mixture(h=13, w=11, n_bands=12, p=3, seed=4)
    model, _ = _fit(cube, abundances="encoder")
    img = cube.transpose("band", "y", "x").values.astype(np.float32) / float(np.max(cube.values))
    full = model._infer(model.net_, img, torch.device("cpu"))
    model.tile = 8  # tiles 8×8 with 1-pixel halos and a 1-pixel-wide remainder strip
    tiled = model._infer(model.net_, img, torch.device("cpu"))
    np.testing.assert_allclose(tiled, full, atol=1e-5)


def test_masked_pixels(mixture):
    cube, _, _ = mixture(h=12, w=12, n_bands=16, p=3, seed=5)
    cube = cube.copy()
    cube[3, 4, :] = np.nan
    cube[7:9, 0:3, 5] = np.nan
    _, res = _fit(cube)
    A = res["abundances"].values
    m = res["mask"].values
    assert m.sum() == 144 - 1 - 6
    assert np.isnan(A[:, ~m]).all() and np.isfinite(A[:, m]).all()
    np.testing.assert_allclose(A[:, m].sum(axis=0), 1.0, atol=1e-5)


def test_small_image_and_bad_parameters(mixture):
    cube, _, _ = mixture(h=6, w=7, n_bands=10, p=2, seed=6)
    _, res = _fit(cube, p=2, patch_size=40, kernel=13)  # patch and kernel shrink to the image
    assert res["abundances"].shape == (2, 6, 7)
    for bad in ({"epochs": 0}, {"kernel": 4}, {"lr": 0.0}, {"dropout": 1.0}, {"n_patches": 0}, {"tile": 2}):
        with pytest.raises(ParameterError):
            _fit(cube, p=2, **bad)
    tiny, _, _ = mixture(h=2, w=9, n_bands=10, p=2, seed=6)
    with pytest.raises(DataError, match="3×3"):
        _fit(tiny, p=2)
