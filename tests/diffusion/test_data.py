"""Training data of the DDPM generator: scaling, p handling, patches, channel order, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from simhsi.diffusion.config import TrainConfig, tiny_config
from simhsi.diffusion.data import (
    GlobalScaling,
    PatchDataset,
    Scene,
    batch_indices,
    dihedral,
    load_scenes,
    merge_to,
    read_abundance_scenes,
)
from simhsi.errors import DataError, FormatError, InputFileError, ParameterError


def _dirichlet(p, h, w, seed=0, alpha=None):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(alpha if alpha is not None else np.ones(p), size=(h, w)).transpose(2, 0, 1).astype(
        np.float32)


def test_global_scaling_round_trips_and_is_global():
    import torch

    s = GlobalScaling(2.0, -1.0)
    a = _dirichlet(4, 8, 8)
    x = s.forward(a)
    assert x.min() >= -1 and x.max() <= 1
    np.testing.assert_allclose(s.inverse(x), a, atol=1e-7)
    t = torch.from_numpy(a)
    assert torch.allclose(s.inverse(s.forward(t)), t, atol=1e-7)
    # global, not per patch: a uniform patch keeps its physical value (0.25 -> -0.5)
    np.testing.assert_allclose(s.forward(np.full((4, 2, 2), 0.25)), -0.5)
    assert GlobalScaling.from_meta({"scaling": {"a": 3, "b": 0.5}}) == GlobalScaling(3.0, 0.5)


def test_merge_to_keeps_simplex_and_largest_channels():
    a = _dirichlet(6, 10, 10, alpha=np.array([5, 4, 3, 0.2, 0.1, 0.1]))
    m = merge_to(a, 4)
    assert m.shape == (4, 10, 10)
    np.testing.assert_allclose(m.sum(0), 1, atol=1e-5)
    np.testing.assert_array_equal(m[:3], a[:3])  # the three most abundant kept as they are


def test_patches_grid_nodata_drop_order_and_padding():
    cfg = tiny_config(p_values=[3, 4], augment=False)
    a3 = _dirichlet(3, 20, 24, alpha=np.array([0.5, 1, 4]))
    a3[:, 0, 0] = np.nan  # nodata pixel: the windows containing it are dropped
    ds = PatchDataset([Scene(a3, "vca", "t")], cfg)
    # y starts 0,4 ; x starts 0,4,8 ; all windows with y0=0,x0=0 contain the NaN -> 6 - 1
    assert len(ds) == 5
    assert not np.any((ds.index[:, 1] == 0) & (ds.index[:, 2] == 0))
    x, ps, methods = ds.batch(range(len(ds)), None)
    assert x.shape == (5, 4, 16, 16) and list(ps) == [3] * 5 and methods == ["vca"] * 5
    np.testing.assert_array_equal(x[:, 3], 0.0)  # padded channel: 0 in network space
    a = GlobalScaling().inverse(x[:, :3])
    np.testing.assert_allclose(a.sum(1), 1, atol=1e-5)
    means = a.mean(axis=(2, 3))
    assert np.all(np.diff(means, axis=1) <= 0)  # mean_desc per patch
    assert means[0, 0] > 0.5  # the alpha=4 channel came first


def test_augmentation_is_seeded_and_a_dihedral_transform():
    cfg = tiny_config(p_values=[3])
    ds = PatchDataset([Scene(_dirichlet(3, 16, 16, seed=1), "m", "t")], cfg)
    x1, _, _ = ds.batch([0] * 8, np.random.default_rng(5))
    x2, _, _ = ds.batch([0] * 8, np.random.default_rng(5))
    np.testing.assert_array_equal(x1, x2)
    ref, _, _ = ds.batch([0], None)
    found = {k for j in range(8) for k in range(8) if np.array_equal(x1[j], dihedral(ref[0], k))}
    assert found and all(np.array_equal(np.sort(x1[j].ravel()), np.sort(ref[0].ravel())) for j in range(8))


def test_batch_indices_cover_each_epoch_once():
    n, b = 10, 4
    idx = np.concatenate([batch_indices(s, b, n, seed=3) for s in range(5)])  # 20 = 2 epochs
    assert sorted(idx[:10]) == list(range(10)) and sorted(idx[10:]) == list(range(10))
    np.testing.assert_array_equal(batch_indices(2, b, n, 3), batch_indices(2, b, n, 3))
    assert not np.array_equal(batch_indices(0, b, n, 3), batch_indices(0, b, n, 4))


def test_read_unmix_output_and_abundance_file(tmp_path):
    import xarray as xr

    cfg = tiny_config(p_values=[3, 4, 5])
    # an unmix-style file: run dim, NaN padded beyond p, method/n_endmembers coords on run
    ab = np.full((3, 5, 20, 20), np.nan, dtype=np.float32)
    ab[0, :3] = _dirichlet(3, 20, 20, 1)
    ab[1, :4] = _dirichlet(4, 20, 20, 2)
    ab[2, :2] = _dirichlet(2, 20, 20, 3)  # p=2 is not served: skipped
    ds = xr.Dataset({"abundances": (("run", "endmember", "y", "x"), ab)},
                    coords={"method": ("run", ["vca", "nfindr", "vca"]), "n_endmembers": ("run", [3, 4, 2])})
    f1 = tmp_path / "unmixed.nc"
    ds.to_netcdf(f1)
    scenes = read_abundance_scenes(f1, cfg)
    assert [(s.method, s.p) for s in scenes] == [("vca", 3), ("nfindr", 4)]
    # a plain abundance file with 6 endmembers: merged to p_max=5, label from attrs
    f2 = tmp_path / "a.nc"
    xr.DataArray(_dirichlet(6, 20, 20, 4), dims=("endmember", "y", "x"), name="abundances",
                 attrs={"method": "groundtruth"}).to_netcdf(f2)
    (s,) = read_abundance_scenes(f2, cfg)
    assert (s.method, s.p, s.p_original) == ("groundtruth", 5, 6)
    assert len(load_scenes([f1, f2], cfg)) == 3


def test_bad_inputs(tmp_path):
    cfg = tiny_config()
    with pytest.raises(InputFileError, match="not found"):
        read_abundance_scenes(tmp_path / "missing.nc", cfg)
    (tmp_path / "junk.nc").write_text("not netcdf")
    with pytest.raises(FormatError):
        read_abundance_scenes(tmp_path / "junk.nc", cfg)
    with pytest.raises(DataError, match="no training data"):
        load_scenes([], cfg)
    with pytest.raises(ParameterError, match="patch_size"):
        TrainConfig(patch_size=18, block_out_channels=[16, 32, 64], norm_num_groups=8)  # not a multiple of 4
    with pytest.raises(ParameterError, match="unknown training config key"):
        TrainConfig.from_dict({"learning_rate": 1})
    # only scenes smaller than the patch: a clear error
    import xarray as xr

    small = tmp_path / "small.nc"
    xr.DataArray(_dirichlet(3, 10, 10), dims=("endmember", "y", "x"), name="abundances").to_netcdf(small)
    with pytest.raises(DataError, match="no usable scene"):
        load_scenes([small], cfg)


def test_bundled_maps_are_usable():
    from simhsi.diffusion.data import bundled_scenes

    cfg = tiny_config(patch_size=32, stride=32)
    scenes = bundled_scenes(cfg)
    assert {(s.source, s.p, s.p_original) for s in scenes} == {
        ("simhsi.data:samson", 3, 3), ("simhsi.data:jasper_ridge", 4, 4), ("simhsi.data:wdc_mall", 5, 6)}
    ds = PatchDataset(scenes, cfg)
    assert len(ds) > 50 and ds.methods == ["groundtruth"]


def test_oversample_lists_the_matching_source_k_times():
    scenes = [Scene(_dirichlet(3, 24, 24, seed=2), "groundtruth", "simhsi.data:wdc_mall"),
              Scene(_dirichlet(3, 24, 24, seed=3), "vca", "run.nc#0")]
    base = PatchDataset(scenes, tiny_config(p_values=[3]))
    over = PatchDataset(scenes, tiny_config(p_values=[3], oversample={"wdc_mall": 3, "nothing": 5}))
    n_wdc, n_other = int(np.sum(base.index[:, 0] == 0)), int(np.sum(base.index[:, 0] == 1))
    assert n_wdc > 0 and n_other > 0
    assert np.sum(over.index[:, 0] == 0) == 3 * n_wdc and np.sum(over.index[:, 0] == 1) == n_other
    assert over.repeats(scenes[0]) == 3 and over.repeats(scenes[1]) == 1
    # the provenance counts distinct windows; the listing per epoch is reported beside
    assert over.summary()["patches_per_label"] == base.summary()["patches_per_label"]
    assert over.summary()["n_listed_per_epoch"] == len(over) and "n_listed_per_epoch" not in base.summary()
    assert over.fingerprint() != base.fingerprint()  # a resume with another oversampling is refused


@pytest.mark.parametrize("bad", [{"wdc": 0}, {"": 2}, {"wdc": 1.5}, {"wdc": True}, ["wdc"]])
def test_oversample_rejects_bad_factors(bad):
    with pytest.raises(ParameterError, match="oversample"):
        TrainConfig(oversample=bad)


def test_yaml_overrides_a_base_config(tmp_path):
    """A partial YAML overrides the given base (the small config) and leaves its other keys alone."""
    from pathlib import Path

    from simhsi.diffusion.config import small_config

    f = tmp_path / "c.yaml"
    f.write_text("batch_size: 128\noversample: {wdc_mall: 2}\n")
    small = small_config()
    cfg = TrainConfig.from_yaml(f, base=small)
    assert (cfg.batch_size, cfg.oversample) == (128, {"wdc_mall": 2})
    assert cfg.block_out_channels == small.block_out_channels and cfg.patch_size == 32
    assert TrainConfig.from_yaml(f).patch_size == TrainConfig().patch_size  # no base: the paper defaults
    f.write_text("batch_sise: 4\n")
    with pytest.raises(ParameterError, match="batch_sise"):
        TrainConfig.from_yaml(f, base=small)
    # the shipped GPU recipe is a valid override of the small config
    gpu = TrainConfig.from_yaml(Path(__file__).parents[2] / "examples" / "default_model_gpu.yaml", base=small)
    gpu.validate()
    assert gpu.block_out_channels == small.block_out_channels
