"""Smoke run of examples/train_default_model.py: two training steps on the bundled ground truths."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_default_model.py"


def _load():
    spec = importlib.util.spec_from_file_location("train_default_model", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_default_model_smoke(tmp_path):
    from simhsi.diffusion.generate import generate_abundances
    from simhsi.diffusion.model import export_model

    mod = _load()
    out = tmp_path / "model"
    assert mod.main(["--out", str(out), "--no-bundled-unmixing", "--steps", "2"]) == 0
    shipped = export_model(out, tmp_path / "shipped")
    a = generate_abundances(shipped, n=1, size=(32, 32), p=3, steps=2, progress=False).values
    assert a.shape == (1, 3, 32, 32) and a.min() >= 0 and np.allclose(a.sum(axis=1), 1, atol=1e-5)
