"""The DDPM training loop: learning, exact resume after Ctrl-C, EMA, CLI, DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from simhsi.diffusion.config import tiny_config
from simhsi.errors import OutputError, ParameterError


def _write_data(folder):
    import xarray as xr

    rng = np.random.default_rng(0)
    files = []
    for p, method in ((3, "vca"), (4, "nmfqmv")):
        # smooth-ish maps: Dirichlet weights of a coarse grid, upsampled
        a = rng.dirichlet(np.full(p, 0.5), size=(5, 5)).transpose(2, 0, 1)
        a = np.kron(a, np.ones((1, 4, 4))).astype(np.float32)  # (p, 20, 20)
        f = folder / f"{method}.nc"
        xr.DataArray(a, dims=("endmember", "y", "x"), name="abundances", attrs={"method": method}).to_netcdf(f)
        files.append(f)
    return files


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A: 4 steps via the CLI. Run B: Ctrl-C at step 2 via the API, then --resume to 4 via the CLI."""
    import yaml
    from click.testing import CliRunner

    from simhsi.cli.main import cli
    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import train

    d = tmp_path_factory.mktemp("train")
    files = _write_data(d)
    cfg = tiny_config(p_values=[3, 4], steps=4, sample_every=4)
    (d / "cfg.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    data_args = [a for f in files for a in ("--data", str(f))]
    r = CliRunner().invoke(cli, ["-q", "train", *data_args, "--out", str(d / "A"), "--config", str(d / "cfg.yaml")])
    assert r.exit_code == 0, r.output

    def ctrl_c_at_2(step, loss):
        if step == 2:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(cfg.replace(sample_every=0), load_scenes(files, cfg), d / "B", progress=False, callback=ctrl_c_at_2)
    interrupted_steps = sorted(p.name for p in (d / "B" / "checkpoints").iterdir())
    r2 = CliRunner().invoke(cli, ["-q", "train", *data_args, "--out", str(d / "B"), "--resume", "--steps", "4"])
    assert r2.exit_code == 0, r2.output
    return d, files, cfg, interrupted_steps


def _ckpt(folder, step):
    import torch

    return torch.load(folder / "checkpoints" / f"step_{step:09d}.pt", map_location="cpu", weights_only=False)


def test_resume_after_ctrl_c_is_bit_identical(runs):
    import torch

    d, _, _, interrupted = runs
    assert interrupted == ["step_000000001.pt", "step_000000002.pt"]  # Ctrl-C checkpoint at step 2
    a, b = _ckpt(d / "A", 4), _ckpt(d / "B", 4)
    assert a["step"] == b["step"] == 4
    for k in a["unet"]:
        assert torch.equal(a["unet"][k], b["unet"][k]), k
    for x, y in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"], strict=True):
        assert torch.equal(x, y)
    assert a["losses"] == b["losses"]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_ema_differs_from_raw_and_follows_decay_formula(runs):
    import torch

    d, _, cfg, _ = runs
    c3, c4 = _ckpt(d / "A", 3), _ckpt(d / "A", 4)
    # diffusers EMAModel with warm-up: decay at optimisation step k is min(decay, 1 - (1 + (k - 1))^-power)
    decay = min(cfg.ema_decay, 1 - (1 + 3 / cfg.ema_inv_gamma) ** -cfg.ema_power)
    assert c4["ema"]["optimization_step"] == 4
    raw4 = [v for v in c4["unet"].values() if v.dtype.is_floating_point]
    differ = 0
    for e3, e4, w4 in zip(c3["ema"]["shadow_params"], c4["ema"]["shadow_params"], raw4, strict=True):
        assert torch.allclose(e4, decay * e3 + (1 - decay) * w4, atol=1e-6)
        differ += not torch.equal(e4, w4)
    assert differ > len(raw4) // 2


def test_model_directory_and_outputs(runs):
    import torch

    from simhsi.diffusion.model import class_label, load_model

    d = runs[0] / "A"
    m = load_model(d, device="cpu")
    assert m.meta["methods"] == ["nmfqmv", "vca"] and m.meta["p_values"] == [3, 4]
    assert m.meta["training"]["steps"] == 4 and m.meta["training"]["finished"]
    assert m.meta["training"]["data"]["patches_per_label"] == {"vca|p=3": 4, "nmfqmv|p=4": 4}
    assert (d / "loss.png").stat().st_size > 1000 and (d / "samples" / "step_000000004.png").is_file()
    ema = _ckpt(d, 4)["ema"]["shadow_params"]
    assert torch.equal(next(m.unet.parameters()), ema[0])
    x = torch.zeros(1, 4, 16, 16)
    with torch.no_grad():
        out = m.unet(x, torch.tensor([5]), class_labels=torch.tensor([class_label(m.meta, "vca", 3)])).sample
    assert torch.isfinite(out).all()


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    import torch

    from simhsi.diffusion.data import PatchDataset, Scene
    from simhsi.diffusion.model import build_scheduler, build_unet
    from simhsi.diffusion.train import masked_loss

    cfg = tiny_config(p_values=[3, 4], dropout=0.0)
    rng = np.random.default_rng(1)
    a = np.kron(rng.dirichlet(np.ones(3), size=(4, 4)).transpose(2, 0, 1), np.ones((1, 4, 4))).astype(np.float32)
    ds = PatchDataset([Scene(a, "vca", "t")], cfg)
    x0, ps, _ = ds.batch([0, 0, 0, 0], None)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([100, 500, 1000, 1500])
    ab = build_scheduler(cfg).alphas_cumprod[t].view(-1, 1, 1, 1)
    xt = ab.sqrt() * torch.from_numpy(x0) + (1 - ab).sqrt() * noise
    torch.manual_seed(0)
    unet = build_unet(cfg, ["vca"])
    opt = torch.optim.Adam(unet.parameters(), lr=1e-3)
    labels, ps_t = torch.zeros(4, dtype=torch.long), torch.from_numpy(ps)
    losses = []
    for _ in range(6):
        loss = masked_loss(unet(xt, t, class_labels=labels).sample, noise, ps_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach().item())
    assert losses[-1] < 0.9 * losses[0]
    # the padded channel (p=3 of p_max=4) does not enter the loss
    pred = unet(xt, t, class_labels=labels).sample.detach()
    pred2 = pred.clone()
    pred2[:, 3] += 100.0
    assert torch.equal(masked_loss(pred, noise, ps_t), masked_loss(pred2, noise, ps_t))


def test_timestep_normaliser_weights_are_inverse_running_band_means():
    import torch

    from simhsi.diffusion.train import TimestepNormaliser

    norm = TimestepNormaliser(100, buckets=4, decay=0.5)
    t = torch.tensor([0, 10, 30, 60, 99])  # bands 0, 0, 1, 2, 3
    w = norm.weights(t, torch.tensor([1.0, 3.0, 4.0, 8.0, 0.5]))
    assert torch.allclose(w, torch.tensor([0.5, 0.5, 0.25, 0.125, 2.0]))  # first values taken as is
    w = norm.weights(torch.tensor([5, 60]), torch.tensor([6.0, 2.0]))  # 0.5 * old + 0.5 * new; bands 1, 3 kept
    assert torch.allclose(w, torch.tensor([1 / 4.0, 1 / 5.0]))
    assert torch.allclose(norm.mean, torch.tensor([4.0, 4.0, 5.0, 0.5], dtype=torch.float64))


def test_l2_adaptive_loss_trains_and_resumes_exactly(runs, tmp_path):
    """loss="l2-adaptive": the band means are checkpointed, so an interrupted run resumes bit-identically."""
    import torch

    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import train

    _, files, cfg, _ = runs
    c = cfg.replace(loss="l2-adaptive", sample_every=0)
    scenes = load_scenes(files, c)
    train(c, scenes, tmp_path / "A", progress=False)
    train(c.replace(steps=2), scenes, tmp_path / "B", progress=False)
    r = train(c, scenes, tmp_path / "B", resume=True, progress=False)
    a, b = _ckpt(tmp_path / "A", 4), _ckpt(tmp_path / "B", 4)
    assert r.step == 4 and a["losses"] == b["losses"] and np.isfinite(r.final_loss)
    assert all(torch.equal(a["unet"][k], b["unet"][k]) for k in a["unet"])
    assert torch.equal(a["loss_normaliser"]["mean"], b["loss_normaliser"]["mean"])
    assert int((a["loss_normaliser"]["mean"] > 0).sum()) >= 2


def test_lr_schedule_values_and_validation():
    from simhsi.diffusion.config import small_config

    c = small_config(lr=2e-4, lr_schedule="cosine", lr_decay_start=100, steps=201, lr_min=1e-5)
    assert c.lr_at(0) == c.lr_at(99) == c.lr_at(100) == 2e-4
    assert c.lr_at(150) == pytest.approx(1e-5 + (2e-4 - 1e-5) / 2)  # half way: cos(pi/2) = 0
    assert c.lr_at(200) == c.lr_at(10_000) == pytest.approx(1e-5)  # the last update uses lr_min
    lin = c.replace(lr_schedule="linear")
    assert lin.lr_at(125) == pytest.approx(2e-4 - 0.25 * (2e-4 - 1e-5))
    assert c.replace(lr_schedule="constant").lr_at(200) == 2e-4
    assert small_config(lr_decay_start=10**9).lr_at(5) == 1e-4  # constant: the start is not checked
    for bad in ({"lr_schedule": "step"}, {"lr_decay_start": 20_000, "lr_schedule": "cosine"},
                {"lr_min": 1.0}, {"lr_decay_start": -1}):
        with pytest.raises(ParameterError, match=f"'{next(iter(bad))}'"):
            small_config(**bad)


def test_lr_decay_added_on_resume_is_applied_and_resumes_exactly(runs, tmp_path):
    """A constant-rate run continued with a decay phase (warmup-stable-decay): the schedule may change on
    --resume, each update uses lr_at(its step), and an interrupted decay phase resumes bit-identically."""
    import torch

    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import train

    _, files, cfg, _ = runs
    c = cfg.replace(sample_every=0, keep_checkpoints=10)
    scenes = load_scenes(files, c)
    decay = c.replace(steps=6, lr_schedule="linear", lr_decay_start=2, lr_min=1e-5)
    for run in ("A", "B"):
        train(c.replace(steps=2), scenes, tmp_path / run, progress=False)
    train(decay, scenes, tmp_path / "A", resume=True, progress=False)

    def ctrl_c_at_4(step, loss):
        if step == 4:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(decay, scenes, tmp_path / "B", resume=True, progress=False, callback=ctrl_c_at_4)
    train(decay, scenes, tmp_path / "B", resume=True, progress=False)
    lr = {k: _ckpt(tmp_path / "A", k)["optimizer"]["param_groups"][0]["lr"] for k in (2, 3, 4, 6)}
    assert lr[2] == lr[3] == c.lr  # updates 1-3 (0-based 0-2) at the constant rate
    assert lr[4] == pytest.approx(c.lr - (c.lr - 1e-5) / 3) and lr[6] == pytest.approx(1e-5)
    a, b = _ckpt(tmp_path / "A", 6), _ckpt(tmp_path / "B", 6)
    assert a["losses"] == b["losses"] and all(torch.equal(a["unet"][k], b["unet"][k]) for k in a["unet"])
    assert not all(torch.equal(a["unet"][k], _ckpt(tmp_path / "A", 4)["unet"][k]) for k in a["unet"])


def test_bad_inputs(runs, tmp_path):
    from click.testing import CliRunner

    from simhsi.cli.main import cli
    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import train

    d, files, cfg, _ = runs
    r = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "missing.nc" in r.output and "not found" in r.output
    r = CliRunner().invoke(cli, ["train", "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "no training data" in r.output
    r = CliRunner().invoke(cli, ["train", "--data", str(files[0]), "--out", str(d / "A"), "--steps", "1"])
    assert r.exit_code == 2 and "--resume" in r.output and "--overwrite" in r.output
    r = CliRunner().invoke(cli, ["train", "--data", str(files[0]), "--out", str(tmp_path / "m"), "--patch-size", "15"])
    assert r.exit_code == 2 and "patch_size" in r.output
    scenes = load_scenes(files, cfg)
    with pytest.raises(OutputError):
        train(cfg, scenes, d / "A", progress=False)
    with pytest.raises(ParameterError, match=r"differs from the checkpoint in \['lr'\]"):
        train(cfg.replace(lr=1e-3), scenes, d / "A", resume=True, progress=False)
    with pytest.raises(ParameterError, match="different training data"):
        train(cfg, scenes[:1], d / "A", resume=True, progress=False)
    with pytest.raises(ParameterError, match="multiple of the 2 processes"):
        os.environ["WORLD_SIZE"] = "2"
        try:
            train(cfg.replace(batch_size=3), scenes, tmp_path / "x", progress=False)
        finally:
            del os.environ["WORLD_SIZE"]


def test_bf16_autocast_path_runs(runs, tmp_path):
    """The bf16 autocast path (default on CUDA) also runs on CPU when asked for."""
    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import train

    _, files, cfg, _ = runs
    c = cfg.replace(mixed_precision="bf16", steps=1, sample_every=0)
    r = train(c, load_scenes(files, c), tmp_path / "bf16", progress=False)
    assert r.step == 1 and np.isfinite(r.final_loss)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["l1", "l2-adaptive"])
def test_ddp_two_cpu_processes_match_single_process(runs, tmp_path, loss):
    """torchrun with 2 gloo ranks gives the same weights as one process (same global batch, no dropout); with
    l2-adaptive the band means are all-reduced, so both ranks weight the loss as one process does."""
    import torch
    import yaml

    d, files, cfg, _ = runs
    c = cfg.replace(dropout=0.0, steps=2, sample_every=0, loss=loss)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c.to_dict()))
    base = [a for f in files for a in ("--data", str(f))] + ["--config", str(tmp_path / "c.yaml")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "simhsi.cli.main", "-q", "train", *base, "--out", str(tmp_path / "ddp")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import train

    train(c, load_scenes(files, c), tmp_path / "one", progress=False)
    a, b = _ckpt(tmp_path / "ddp", 2), _ckpt(tmp_path / "one", 2)
    for k in a["unet"]:
        assert torch.allclose(a["unet"][k], b["unet"][k], atol=1e-5), k
    if loss == "l2-adaptive":
        assert torch.allclose(a["loss_normaliser"]["mean"], b["loss_normaliser"]["mean"], rtol=1e-5)
