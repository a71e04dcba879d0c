"""Helpers writing small PRISMA-layout ``.he5`` files for the tests (real 2020 band lists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simhsi.io.prisma import DETECTORS, default_band_lists, write_prisma_he5

ROWS, COLS = 20, 30
#: A UTM 32N grid, 30 m, north-up; pixel-edge origin (easting, northing) of the upper-left pixel.
EPSG = 32632
ORIGIN = (500000.0, 4600020.0)


def valid_wavelengths() -> np.ndarray:
    """The 234 valid band centres of the 2020 lists, ascending (nm)."""
    li = default_band_lists()
    return np.sort(np.concatenate([li[d]["cw"][li[d]["flag"] != 0] for d in DETECTORS]).astype(np.float64))


def random_dn(seed: int = 0, rows: int = ROWS, cols: int = COLS) -> dict[str, np.ndarray]:
    """Raw uint16 DN per detector in file layout (rows, slots, cols); unused slots are 0 as in products."""
    rng = np.random.default_rng(seed)
    li = default_band_lists()
    out = {}
    for d in DETECTORS:
        n = li[d]["cw"].size
        dn = rng.integers(1, 65536, size=(rows, n, cols), dtype=np.uint16)
        dn[:, li[d]["flag"] == 0, :] = 0
        out[d] = dn
    return out


def write_dn_file(tmp_path: Path, level: str = "L1", name: str | None = None, seed: int = 0, **kw) -> tuple[Path, dict]:
    """Write a file from raw DN; returns (path, dn)."""
    dn = kw.pop("dn", None) or random_dn(seed)
    p = tmp_path / (name or f"PRS_{level}_STD_OFFL_20200116101454_20200116101458_0001.he5")
    if level == "L2D":
        from affine import Affine

        kw.setdefault("epsg", EPSG)
        kw.setdefault("transform", Affine(30.0, 0.0, ORIGIN[0], 0.0, -30.0, ORIGIN[1]))
    write_prisma_he5(None, p, level=level, dn=dn, **kw)
    return p, dn
