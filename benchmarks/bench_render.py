"""Benchmark of the forward model: render + write a PRISMA L2 scene to NetCDF vs a raw np.save.

    nice -n 10 .venv/bin/python benchmarks/bench_render.py --size 1000
    nice -n 10 .venv/bin/python benchmarks/bench_render.py --size 1000 --compression szip
    nice -n 10 .venv/bin/python benchmarks/bench_render.py --size 4000 --skip-npsave

Each phase runs in its own subprocess, so its peak RSS (``os.wait4`` rusage) is its own:

* ``render``: lazy abundances (p maps made chunk by chunk: a few sines times uniform noise, normalised —
  content does not matter for the timing; both the abundances and the cube read them, so they are
  made twice and must stay cheap) -> :func:`simhsi.render.render_scene` (PRISMA, 234 bands, L2,
  noise + quantisation) -> :func:`simhsi.render.write_scene` NetCDF (uint16 DN, ``--compression``:
  zlib level 1 by default as in ``write_scene``, deflated in parallel; szip; zstd; none);
* ``npsave``: the same float32 cube (read back from the NetCDF beforehand, not timed) saved with
  ``np.save`` (timed).

Prints one JSON line per phase and a summary (ratio of wall times, peak RSS in MB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _abundances(size: int, p: int, chunk: int, seed: int = 0):
    import dask.array as da
    import numpy as np

    from simhsi.conventions import make_abundances

    def block(block_info=None):
        (_, _), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        rng = np.random.default_rng([seed, y0, x0])
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        base = np.stack([1.5 + np.sin(yy / (20 + 7 * k) + k) * np.cos(xx / (25 + 5 * k) - k) for k in range(p)])
        a = base * (np.float32(0.7) + rng.random(size=base.shape, dtype=np.float32))  # cheap: timing the render
        return (a / a.sum(axis=0, keepdims=True)).astype(np.float32)

    arr = da.map_blocks(block, dtype=np.float32, chunks=((p,), *(da.core.normalize_chunks(chunk, (size, size)))))
    return make_abundances(arr, [f"m{k}" for k in range(p)])


def phase_render(args) -> dict:
    import numpy as np

    from simhsi.library import load_library, select_endmembers
    from simhsi.render import render_scene, write_scene

    t0 = time.perf_counter()
    lib = select_endmembers(load_library("bundled"), args.p, seed=0, wavelength_range=(350, 2499))
    a = _abundances(args.size, args.p, args.chunks)
    ds = render_scene(a, lib, "prisma", level="L2", seed=1, chunks=args.chunks, out_of_range="warn")
    t1 = time.perf_counter()
    if args.threads:
        import dask

        dask.config.set(scheduler="threads", num_workers=args.threads)
    write_scene(ds, args.out, overwrite=True, progress=False, complevel=args.complevel,
                compression=args.compression)
    t2 = time.perf_counter()
    shape = ds["reflectance"].shape
    return {"phase": "render", "size": args.size, "p": args.p, "bands": int(shape[2]), "chunks": args.chunks,
            "compression": args.compression, "complevel": args.complevel,
            "setup_s": round(t1 - t0, 2), "render_write_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
            "file_mb": round(os.path.getsize(args.out) / 2**20, 1), "cube_float32_mb": round(
                float(np.prod(shape)) * 4 / 2**20, 1)}


def phase_npsave(args) -> dict:
    import numpy as np
    import xarray as xr

    with xr.open_dataset(args.out) as f:
        cube = f["reflectance"].values.astype(np.float32)
    t0 = time.perf_counter()
    np.save(args.npy, cube)
    t1 = time.perf_counter()
    return {"phase": "npsave", "npsave_s": round(t1 - t0, 2), "npy_mb": round(os.path.getsize(args.npy) / 2**20, 1)}


def _run_child(argv: list[str]) -> tuple[dict, float]:
    proc = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"phase {argv[0]} failed ({proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb"] = round(ru.ru_maxrss / 1024, 1)  # ru_maxrss in KiB on Linux
    res["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)  # whole child process, imports included
    return res, ru.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", nargs="?", default="all", choices=["all", "render", "npsave"])
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--p", type=int, default=5)
    ap.add_argument("--chunks", type=int, default=256)
    ap.add_argument("--compression", default="zlib", choices=["zlib", "szip", "zstd", "none"],
                    help="NetCDF compression (write_scene's default: zlib).")
    ap.add_argument("--complevel", type=int, default=1, help="zlib/zstd level of the NetCDF.")
    ap.add_argument("--threads", type=int, default=0, help="dask threads (default: dask's, = CPU count).")
    ap.add_argument("--dir", default=None, help="Work folder (default: a temporary folder, removed after).")
    ap.add_argument("--skip-npsave", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--npy", default=None)
    args = ap.parse_args()
    if args.phase == "render":
        print(json.dumps(phase_render(args)))
        return
    if args.phase == "npsave":
        print(json.dumps(phase_npsave(args)))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out, npy = os.path.join(tmp, "scene.nc"), os.path.join(tmp, "cube.npy")
        common = ["--size", str(args.size), "--p", str(args.p), "--chunks", str(args.chunks), "--out", out,
                  "--npy", npy, "--complevel", str(args.complevel), "--compression", args.compression,
                  "--threads", str(args.threads)]
        r, _ = _run_child(["render", *common])
        print(json.dumps(r), flush=True)
        summary = {"size": args.size, "render_write_s": r["render_write_s"], "render_peak_rss_mb": r["peak_rss_mb"],
                   "load_avg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
        if not args.skip_npsave:
            s, _ = _run_child(["npsave", *common])
            print(json.dumps(s), flush=True)
            summary.update(npsave_s=s["npsave_s"], ratio=round(r["render_write_s"] / max(s["npsave_s"], 1e-9), 2),
                           ratio_total=round(r["total_s"] / max(s["npsave_s"], 1e-9), 2))
        print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
