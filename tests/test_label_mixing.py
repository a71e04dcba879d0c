"""Helper of benchmarks/label_mixing.py: real patches per conditioning label."""

from types import SimpleNamespace

import numpy as np
from conftest import load_benchmark


def test_label_patches_groups_by_method_and_drops_nan():
    lm = load_benchmark("label_mixing")
    a = np.full((3, 16, 24), 1 / 3)
    b = a.copy()
    b[:, :8, :8] = np.nan  # the top-left 8 px patch of this map is dropped
    scenes = [SimpleNamespace(method="vca", abundances=a), SimpleNamespace(method="gt", abundances=b)]
    got = lm.label_patches(scenes, size=8, stride=8)
    assert set(got) == {"vca", "gt", "any"}
    assert got["vca"].shape == (6, 3, 8, 8)  # 2 x 3 windows
    assert got["gt"].shape == (5, 3, 8, 8)
    assert len(got["any"]) == 11 and np.isfinite(got["any"]).all()
