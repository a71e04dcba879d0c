"""Samplers on a tiny random-weight model: validity, determinism, shapes, seams, conditioning, errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simhsi.diffusion.config import TrainConfig  # noqa: E402
from simhsi.diffusion.generate import generate_abundances, window_starts  # noqa: E402
from simhsi.diffusion.model import build_scheduler, build_unet, load_model, make_meta, save_model  # noqa: E402
from simhsi.errors import ModelError, ParameterError  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    cfg = TrainConfig(patch_size=16, block_out_channels=[16, 32], attention_resolutions=[8],
                      norm_num_groups=8, attention_head_dim=8, layers_per_block=1, p_values=[3, 4],
                      num_train_timesteps=40, dropout=0.0)
    torch.manual_seed(0)
    unet = build_unet(cfg, methods=["vca-fcls", "cnnaeu"])
    # random weights are tiny in diffusers' zero-initialised output conv: make the net non-trivial
    with torch.no_grad():
        for prm in unet.parameters():
            prm.add_(0.05 * torch.randn_like(prm))
    d = tmp_path_factory.mktemp("model")
    save_model(d, unet, None, build_scheduler(cfg), make_meta(cfg, ["vca-fcls", "cnnaeu"]), cfg)
    return load_model(d, device="cpu")


@pytest.mark.parametrize("sampler,steps", [("dpmpp", 5), ("dpmpp-sde", 5), ("ddim", 5), ("ddpm", None)])
def test_outputs_on_simplex_and_seeded(tiny_model, sampler, steps):
    kw = dict(n=2, size=(16, 16), p=3, sampler=sampler, steps=steps, seed=3, progress=False)
    a = generate_abundances(tiny_model, **kw)
    assert a.dims == ("sample", "endmember", "y", "x") and a.shape == (2, 3, 16, 16)
    v = a.values.astype(np.float64)
    assert v.min() >= 0 and np.abs(v.sum(axis=1) - 1).max() < 1e-5
    b = generate_abundances(tiny_model, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.attrs["sampler"] == sampler and a.attrs["seed"] == 3


@pytest.mark.parametrize("sampler", ["ddpm", "dpmpp-sde"])
def test_sample_independent_of_batching(tiny_model, sampler):
    kw = dict(size=(16, 16), p=4, sampler=sampler, steps=10, seed=1, progress=False)
    a = generate_abundances(tiny_model, n=3, batch_size=3, **kw)
    b = generate_abundances(tiny_model, n=1, batch_size=1, **kw)
    np.testing.assert_allclose(a.values[0], b.values[0], atol=1e-5)
    # the stochastic samplers draw fresh noise at every step: not the deterministic path from the same start
    c = generate_abundances(tiny_model, n=1, **{**kw, "sampler": "dpmpp"})
    assert np.abs(c.values[0] - b.values[0]).max() > 1e-3


def test_conditioning_and_guidance_change_output(tiny_model):
    kw = dict(n=1, size=(16, 16), p=3, sampler="ddim", steps=5, seed=0, progress=False)
    a = generate_abundances(tiny_model, method="vca-fcls", **kw).values
    b = generate_abundances(tiny_model, method="cnnaeu", **kw).values
    c = generate_abundances(tiny_model, method="cnnaeu", guidance=3.0, **kw).values
    assert np.abs(a - b).max() > 1e-4
    assert np.abs(b - c).max() > 1e-4


def _border_vs_interior_gradient(maps, starts, win, axis):
    g = np.abs(np.diff(maps, axis=axis))  # (.., n-1) along axis
    borders = sorted({s for s in starts if s > 0} | {s + win for s in starts if s + win < maps.shape[axis]})
    idx = [b - 1 for b in borders]
    g_border = np.take(g, idx, axis=axis).mean()
    return g_border, g.mean()


def test_large_scene_shape_and_no_seams(tiny_model):
    a = generate_abundances(tiny_model, n=2, size=(48, 40), p=3, sampler="ddim", steps=8, seed=0,
                            progress=False, window_batch=5)
    assert a.shape == (2, 3, 48, 40)
    v = a.values.astype(np.float64)
    assert np.abs(v.sum(axis=1) - 1).max() < 1e-5
    for axis, length in ((2, 48), (3, 40)):
        starts = window_starts(length, 16, 8)
        g_border, g_all = _border_vs_interior_gradient(v, starts, 16, axis + 0)
        assert g_border <= 1.2 * g_all, (axis, g_border, g_all)


def test_bad_inputs(tiny_model, tmp_path):
    with pytest.raises(ParameterError, match="p in"):
        generate_abundances(tiny_model, p=5, progress=False)
    with pytest.raises(ParameterError, match="multiples"):
        generate_abundances(tiny_model, size=(17, 16), p=3, progress=False)
    with pytest.raises(ParameterError, match="steps"):
        generate_abundances(tiny_model, p=3, steps=0, progress=False)
    with pytest.raises(ParameterError, match="sampler"):
        generate_abundances(tiny_model, p=3, sampler="euler", progress=False)
    with pytest.raises(ModelError, match="not found"):
        generate_abundances(tmp_path / "nope", p=3, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a simhsi model"):
        generate_abundances(tmp_path / "empty", p=3, progress=False)


def test_cli_generate_ddpm_and_grf(tiny_model, tmp_path):
    from click.testing import CliRunner

    from simhsi.cli.main import cli
    from simhsi.io.netcdf import open_dataset

    out = tmp_path / "a.nc"
    r = CliRunner().invoke(cli, ["-q", "generate-abundances", "--model", str(tiny_model.path), "--n", "2",
                                 "--endmembers", "4", "--method", "cnnaeu", "--steps", "3", "--out", str(out),
                                 "--quicklook", str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    ds = open_dataset(out)
    a = ds["abundances"].values
    assert a.shape == (2, 4, 16, 16) and np.abs(a.sum(axis=1) - 1).max() < 1e-5
    assert ds.attrs["sampler"] == "dpmpp-sde" and ds.attrs["steps"] == 3
    assert (tmp_path / "a.png").stat().st_size > 1000
    # refuses to overwrite, exit 2, one line
    r = CliRunner().invoke(cli, ["generate-abundances", "--generator", "grf", "--out", str(out)])
    assert r.exit_code == 2 and "already exists" in r.output
    r = CliRunner().invoke(cli, ["generate-abundances", "--generator", "grf", "--size", "32", "32", "--n", "1",
                                 "--out", str(tmp_path / "g.nc")])
    assert r.exit_code == 0, r.output
    # p beyond the model, size not a multiple: exit 2
    r = CliRunner().invoke(cli, ["generate-abundances", "--model", str(tiny_model.path), "--endmembers", "6",
                                 "--out", str(tmp_path / "b.nc")])
    assert r.exit_code == 2 and "p in" in r.output
    assert not (tmp_path / "b.nc").exists()


def test_dpmpp_clips_the_clean_prediction_like_ddpm(tiny_model):
    from simhsi.diffusion.generate import make_sampler

    assert tiny_model.scheduler_config.get("clip_sample") is True  # simhsi's training schedule clips
    sched, steps = make_sampler(tiny_model, "dpmpp", 4)
    assert steps == 4 and sched.config.thresholding and sched.config.algorithm_type == "dpmsolver++"
    x0 = torch.tensor([[[[-3.0, -0.5], [0.25, 2.0]]]])
    np.testing.assert_array_equal(sched._threshold_sample(x0).numpy(), [[[[-1.0, -0.5], [0.25, 1.0]]]])
    # one solver step on a sample whose clean prediction lies beyond the range stays bounded
    t = sched.timesteps[-1]
    out = sched.step(torch.zeros_like(x0), t, 5 * x0).prev_sample
    assert float(out.abs().max()) <= 1.0 + 1e-6
    sde, _ = make_sampler(tiny_model, "dpmpp-sde", 4)
    assert sde.config.algorithm_type == "sde-dpmsolver++" and sde.config.thresholding
    # Karras sigmas: the steps crowd at low noise (last gap far smaller than the first), Heun's 2M update
    assert all(s.config.use_karras_sigmas and s.config.solver_type == "heun" for s in (sde, sched))
    ts = sde.timesteps.numpy().astype(float)
    assert ts[0] - ts[1] > 3 * (ts[-2] - ts[-1]) > 0
    assert [make_sampler(tiny_model, s, None)[1] for s in ("dpmpp-sde", "dpmpp")] == [30, 20]  # default steps
    unclipped = dict(tiny_model.scheduler_config, clip_sample=False)
    sched2, _ = make_sampler(type(tiny_model)(**{**vars(tiny_model), "scheduler_config": unclipped}), "dpmpp", 4)
    assert not sched2.config.thresholding


def test_cli_choices_match_the_library():
    """The CLI lists samplers and GRF kernels literally (``simhsi --help`` imports no numpy): keep them in step."""
    from simhsi.cli.generate import command
    from simhsi.diffusion.generate import DEFAULT_STEPS, SAMPLERS
    from simhsi.diffusion.grf import KERNELS

    opts = {o.name: o for o in command.params}
    assert set(opts["sampler"].type.choices) == set(SAMPLERS) == set(DEFAULT_STEPS)
    assert set(opts["kernel"].type.choices) == set(KERNELS)
