"""Benchmark (not a test): lazy reading of a PRISMA-layout L2D product.

Writes a SIZE x SIZE L2D ``.he5`` file (real 2020 band lists: 66 + 173 slots, uint16 DN, uint8 error
matrices, lat/lon) in a temporary folder, then, each in a fresh subprocess:

1. opens it with :func:`simhsi.io.prisma.read_prisma` and computes one band, reporting peak memory
   (``ru_maxrss``, and ``tracemalloc`` peak of the Python/numpy allocations) after the imports, after opening
   and after computing the band -- opening must read no pixel and one band must cost about one band;
2. reads the whole cube (``.values``: scaled, masked, float32, 230 bands, dask threads);
3. reads the same datasets raw with h5py (both cubes + both error matrices, uint16/uint8, no scaling).

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_prisma_read.py --size 1000

Prints a Markdown table (pasted into docs/benchmarks/io.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time, tracemalloc
def rss_mib():
    # peak resident memory of this process: VmHWM (Linux; ru_maxrss would carry the parent's peak over
    # fork+exec), else ru_maxrss
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
mode, path = sys.argv[1], sys.argv[2]
if mode == "write":
    from simhsi.io.prisma import write_prisma_he5
    from affine import Affine
    sys.path.insert(0, sys.argv[4])
    from bench_prisma_read import _make_cube
    t = time.perf_counter()
    write_prisma_he5(
        _make_cube(int(sys.argv[3]), 0), path, level="L2D", epsg=32632,
        transform=Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4600000.0), sun_zenith=35.0,
    )
    print(json.dumps({"write_s": time.perf_counter() - t, "rss_peak_mib": rss_mib()}))
    sys.exit(0)
t0 = time.perf_counter()
import numpy as np, h5py, dask, dask.threaded, xarray, rioxarray, pyproj
from simhsi.io.prisma import read_prisma
import dask.array as da
da.zeros(2).compute()  # dask imports 'distributed' on the first compute: keep that out of the timings
out = {"rss_after_imports_mib": rss_mib(), "imports_s": time.perf_counter() - t0}
tracemalloc.start()
if mode == "lazy":
    t = time.perf_counter()
    cube = read_prisma(path)
    out["open_s"] = time.perf_counter() - t
    out["rss_after_open_mib"] = rss_mib()
    out["traced_peak_open_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    out["shape"] = list(cube.shape)
    out["chunks_y"] = len(cube.data.chunks[0])
    tracemalloc.reset_peak()
    t = time.perf_counter()
    band = cube.isel(band=100).values
    out["one_band_s"] = time.perf_counter() - t
    out["one_band_mib"] = band.nbytes / 2**20
    out["rss_after_one_band_mib"] = rss_mib()
    out["traced_peak_one_band_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
elif mode == "full":
    cube = read_prisma(path)
    t = time.perf_counter()
    arr = cube.values
    out["full_s"] = time.perf_counter() - t
    out["result_mib"] = arr.nbytes / 2**20
    out["nan_fraction"] = float(np.isnan(arr).mean())
    out["rss_peak_mib"] = rss_mib()
elif mode == "raw":
    base = "HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields/"
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        arrs = [f[base + n][()] for n in ("VNIR_Cube", "SWIR_Cube")]
        t_cubes = time.perf_counter() - t
        arrs += [f[base + n][()] for n in ("VNIR_PIXEL_L2_ERR_MATRIX", "SWIR_PIXEL_L2_ERR_MATRIX")]
    out["raw_cubes_s"] = t_cubes
    out["raw_cubes_and_err_s"] = time.perf_counter() - t
    out["result_mib"] = sum(a.nbytes for a in arrs) / 2**20
    out["rss_peak_mib"] = rss_mib()
print(json.dumps(out))
"""


def _make_cube(size: int, seed: int = 0):
    """A lazy synthetic L2D reflectance cube (y, x, band) on the 234 PRISMA bands: 3 smooth spectra mixed."""
    import dask.array as da
    import numpy as np

    from simhsi.conventions import make_cube
    from simhsi.io.prisma import DETECTORS, default_band_lists

    li = default_band_lists()
    wl = np.sort(np.concatenate([li[d]["cw"][li[d]["flag"] != 0] for d in DETECTORS]).astype(np.float64))
    t = (wl - wl[0]) / (wl[-1] - wl[0])
    spectra = np.stack([0.05 + 0.3 * t, 0.04 + 0.45 * (wl > 720) * np.exp(-t), 0.2 + 0.1 * np.sin(6 * t)])

    def block(block_info=None):
        loc = block_info[None]["array-location"]
        h, w = loc[0][1] - loc[0][0], loc[1][1] - loc[1][0]
        rng = np.random.default_rng([seed, loc[0][0], loc[1][0]])
        a = rng.dirichlet(np.ones(3), size=h * w)
        return (a @ spectra).reshape(h, w, -1).astype(np.float32)

    data = da.map_blocks(
        block, chunks=((128,) * (size // 128) + ((size % 128,) if size % 128 else ()), (size,), (wl.size,)),
        dtype=np.float32, meta=np.empty((0, 0, 0), np.float32),
    )  # fmt: skip
    return make_cube(data, wl)


def _child(mode: str, path: Path, *extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _CHILD, mode, str(path), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1000, help="rows = columns of the product (default 1000)")
    ap.add_argument("--repeat", type=int, default=2, help="timed full/raw reads (best of)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_prisma_") as tmp:
        path = Path(tmp) / "PRS_L2D_STD_20200220101716_20200220101720_0001.he5"
        wr = _child("write", path, str(args.size), str(Path(__file__).resolve().parent))
        t_write = wr["write_s"]
        size_mib = path.stat().st_size / 2**20
        with open(path, "rb") as fh:  # warm the page cache so both readers start equal
            while fh.read(64 * 2**20):
                pass
        lazy = _child("lazy", path)
        full = min((_child("full", path) for _ in range(args.repeat)), key=lambda r: r["full_s"])
        raw = min((_child("raw", path) for _ in range(args.repeat)), key=lambda r: r["raw_cubes_and_err_s"])

    n = args.size
    print(f"### PRISMA L2D read, {n} x {n} pixels ({size_mib:.0f} MiB file)\n")
    print(f"Command: `nice -n 10 .venv/bin/python benchmarks/bench_prisma_read.py --size {n}`  ")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}; file written in {t_write:.1f} s (peak RSS {wr['rss_peak_mib']:.0f} MiB, "
        f"synthetic 3-endmember mixture, dask-backed); best of {args.repeat} reads.\n"
    )
    print("| step | time (s) | peak RSS so far (MiB) | traced peak (MiB) | note |")
    print("|---|---|---|---|---|")
    print(
        f"| imports (numpy, h5py, dask + distributed, xarray, rioxarray, simhsi) | {lazy['imports_s']:.2f} | "
        f"{lazy['rss_after_imports_mib']:.0f} | | baseline of the subprocess |"
    )
    print(
        f"| `read_prisma` (open) | {lazy['open_s']:.3f} | {lazy['rss_after_open_mib']:.0f} | "
        f"{lazy['traced_peak_open_mib']:.1f} | shape {tuple(lazy['shape'])}, {lazy['chunks_y']} row chunks |"
    )
    print(
        f"| compute one band | {lazy['one_band_s']:.3f} | {lazy['rss_after_one_band_mib']:.0f} | "
        f"{lazy['traced_peak_one_band_mib']:.1f} | result {lazy['one_band_mib']:.1f} MiB |"
    )
    print(
        f"| whole cube, `read_prisma(...).values` | {full['full_s']:.2f} | {full['rss_peak_mib']:.0f} | | "
        f"float32 result {full['result_mib']:.0f} MiB, scaled + masked |"
    )
    print(
        f"| raw h5py, 2 cubes | {raw['raw_cubes_s']:.2f} | | | uint16, unscaled |"
    )
    print(
        f"| raw h5py, 2 cubes + 2 error matrices | {raw['raw_cubes_and_err_s']:.2f} | {raw['rss_peak_mib']:.0f} | | "
        f"{raw['result_mib']:.0f} MiB read (what `read_prisma` reads) |"
    )
    print(f"\nratio whole-cube read / raw h5py read (cubes + error matrices): "
          f"{full['full_s'] / raw['raw_cubes_and_err_s']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
