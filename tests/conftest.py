"""Shared test fixtures: small synthetic linear-mixture scenes with known truth.

Tests never read ../shared: real data come from the package (simhsi.data) only.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import simhsi._libs  # noqa: F401  (netCDF4 before rasterio in every test process)

os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_mixture(
    h: int = 20,
    w: int = 20,
    n_bands: int = 50,
    p: int = 3,
    *,
    snr_db: float | None = None,
    seed: int = 0,
    pure_pixels: bool = True,
    wl_range: tuple[float, float] = (400.0, 2500.0),
):
    """A synthetic linear mixture Y = E·A with known truth.

    Returns ``(cube, E, A)``: cube a DataArray (y, x, band) with wavelengths in nm, E (bands, p) smooth
    positive spectra, A (p, h, w) Dirichlet abundances with the first p pixels pure when ``pure_pixels``.
    ``snr_db`` adds white Gaussian noise at that SNR (None: noise-free).
    """
    from simhsi.conventions import make_cube

    rng = np.random.default_rng(seed)
    wl = np.linspace(*wl_range, n_bands)
    t = (wl - wl[0]) / (wl[-1] - wl[0])
    E = np.empty((n_bands, p))
    for j in range(p):
        c = rng.uniform(0, 1, 3)
        E[:, j] = 0.1 + 0.6 * np.abs(
            c[0] * np.sin(2 * np.pi * (j + 1) * t + c[1]) + c[2] * t ** (j + 1)
        ) / (1 + c[0] + c[2])
    A = rng.dirichlet(np.full(p, 0.7), size=h * w).T
    if pure_pixels:
        A[:, :p] = np.eye(p)
    Y = E @ A
    if snr_db is not None:
        sigma = np.sqrt(np.mean(Y**2) / 10 ** (snr_db / 10))
        Y = Y + rng.normal(0, sigma, Y.shape)
    cube = make_cube(Y.T.reshape(h, w, n_bands), wl, np.full(n_bands, 10.0))
    return cube, E, A.reshape(p, h, w)


@pytest.fixture
def mixture():
    """Factory fixture: ``mixture(h=.., w=.., n_bands=.., p=.., snr_db=.., seed=..)``."""
    return make_mixture


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) as a module; the folder is on ``sys.path`` meanwhile,
    for scripts that import a sibling (``import bench_generation``)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCHMARKS))
