"""The generator's U-Net, class labels and model directory."""

from __future__ import annotations

import json

import pytest

from simhsi.diffusion.config import tiny_config
from simhsi.diffusion.model import (
    build_scheduler,
    build_unet,
    channel_mask,
    class_label,
    downsample_factor,
    export_model,
    load_model,
    make_meta,
    null_label,
    padded_epsilon,
    save_model,
)
from simhsi.errors import ModelError, ParameterError

METHODS = ["vca", "fcls"]


@pytest.fixture(scope="module")
def tiny():
    import torch

    cfg = tiny_config()
    torch.manual_seed(0)
    return cfg, build_unet(cfg, METHODS), build_scheduler(cfg), make_meta(cfg, METHODS)


def test_unet_architecture_and_labels(tiny):
    import torch

    cfg, unet, sched, meta = tiny
    assert unet.config.down_block_types == ("DownBlock2D", "AttnDownBlock2D")  # attention at 8x8
    assert unet.config.up_block_types == ("AttnUpBlock2D", "UpBlock2D")
    assert unet.config.in_channels == unet.config.out_channels == 5
    # labels: (fcls|vca|any) x p in (3, 4, 5), + null
    assert meta["methods"] == ["fcls", "vca"] and null_label(meta) == 9 == unet.config.num_class_embeds - 1
    assert len({class_label(meta, m, p) for m in [*METHODS, None] for p in (3, 4, 5)}) == 9
    assert class_label(meta, "any", 4) == class_label(meta, None, 4)
    assert downsample_factor(cfg) == 2 == downsample_factor(meta)
    assert sched.config.num_train_timesteps == 2000 and sched.config.beta_schedule == "linear"
    assert (sched.config.beta_start, sched.config.beta_end) == (1e-6, 1e-2)
    x = torch.randn(2, 5, 16, 16)
    with torch.no_grad():
        unet.eval()
        a = unet(x, torch.tensor([10, 10]), class_labels=torch.tensor([0, 0])).sample
        b = unet(x, torch.tensor([10, 10]), class_labels=torch.tensor([0, null_label(meta)])).sample
    assert a.shape == x.shape
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])  # the label conditions the output


def test_class_label_errors(tiny):
    meta = tiny[3]
    with pytest.raises(ParameterError, match=r"p in \[3, 4, 5\].*p=7"):
        class_label(meta, "vca", 7)
    with pytest.raises(ParameterError, match="not trained on method 'sisal'"):
        class_label(meta, "sisal", 3)


def test_padding_helpers():
    import torch

    assert channel_mask(3, 5).tolist() == [True, True, True, False, False]
    ab = torch.tensor([0.3, 0.8])
    x0 = torch.zeros(2, 1, 4, 4)
    eps = torch.randn(2, 1, 4, 4)
    xt = ab.sqrt().view(-1, 1, 1, 1) * x0 + (1 - ab).sqrt().view(-1, 1, 1, 1) * eps
    assert torch.allclose(padded_epsilon(xt, ab), eps, atol=1e-6)


def test_save_load_round_trip(tiny, tmp_path):
    import copy

    import torch

    cfg, unet, sched, meta = tiny
    ema = copy.deepcopy(unet)
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.5)
    save_model(tmp_path / "m", unet, ema, sched, meta, cfg)
    got = load_model(tmp_path / "m", device="cpu")
    raw = load_model(tmp_path / "m", device="cpu", ema=False)
    assert got.meta == json.loads(json.dumps(meta)) and got.config["patch_size"] == 16
    for a, b in zip(got.unet.parameters(), ema.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(next(raw.unet.parameters()), next(unet.parameters()))
    assert got.make_scheduler().config.num_train_timesteps == 2000
    # fp16 storage: half the bytes, loaded back as float32 within fp16 precision
    save_model(tmp_path / "h", unet, ema, sched, meta, cfg, fp16=True)
    h = load_model(tmp_path / "h", device="cpu")
    w16 = next(h.unet.parameters())
    assert w16.dtype == torch.float32 and torch.allclose(w16, next(ema.parameters()), atol=2e-3)
    s32 = (tmp_path / "m/unet_ema/diffusion_pytorch_model.safetensors").stat().st_size
    s16 = (tmp_path / "h/unet_ema/diffusion_pytorch_model.safetensors").stat().st_size
    assert s16 < 0.6 * s32


def test_load_model_errors(tiny, tmp_path):
    cfg, unet, sched, meta = tiny
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a simhsi model directory"):
        load_model(tmp_path / "empty")
    d = save_model(tmp_path / "m", unet, None, sched, meta, cfg)
    bad = dict(meta, p_max=4)
    (d / "simhsi_model.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="channels but p_max is 4"):
        load_model(d)
    (d / "simhsi_model.json").write_text(json.dumps(dict(meta, format_version=99)))
    with pytest.raises(ModelError, match="newer"):
        load_model(d)
    (d / "simhsi_model.json").write_text(json.dumps(meta))
    import shutil

    shutil.rmtree(d / "scheduler")
    with pytest.raises(ModelError, match="incomplete"):
        load_model(d)


def test_export_model_keeps_what_sampling_needs(tiny, tmp_path):
    import torch

    cfg, unet, sched, meta = tiny
    save_model(tmp_path / "m", unet, None, sched, meta, cfg)
    (tmp_path / "m" / "checkpoints").mkdir()
    d = export_model(tmp_path / "m", tmp_path / "ship")
    assert sorted(p.name for p in d.iterdir()) == ["config.yaml", "scheduler", "simhsi_model.json", "unet_ema"]
    assert torch.equal(next(load_model(d, device="cpu").unet.parameters()), next(unet.parameters()))
    with pytest.raises(ModelError, match="unet/config.json"):
        load_model(d, ema=False)
