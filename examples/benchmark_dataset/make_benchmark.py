"""Make an unmixing benchmark: N synthetic sensor scenes with their full ground truth.

Each scene is Gaussian-random-field abundance maps (``simhsi.diffusion.grf``; or a trained DDPM with
``--model``) at ``--scene-pixel-m`` metres, mixed with p measured spectra of p different material classes
drawn from the bundled real library (``simhsi.library``), rendered through a sensor model (``simhsi.render.render_scene``:
PSF + resampling to the sensor GSD, SRF resampling of the spectra, the sensor's signal-dependent noise
divided by ``snr_scale``, quantisation), as surface reflectance (L2). Written per scene:

* ``scenes/<id>.nc``  -- the simhsi scene NetCDF: ``reflectance`` (noisy, quantised), ``clean``
  (noise-free, unquantised), ``abundances`` (endmember, y, x) at the sensor grid, ``endmembers``
  (endmember, band) at the sensor bands, provenance attrs (sensor, seed, snr_scale, noise model, ...);
* ``mat/<id>.mat``    -- the same scene in HySUPP's dataset layout (MATLAB v5, zlib-compressed):
  ``Y`` (L x N noisy), ``E`` (L x p), ``A`` (p x N), ``H``, ``W``, ``p``, ``L``, ``N``, ``labels``, plus
  ``Y_clean`` (L x N), ``wavelength``/``fwhm`` (nm), ``bad_band``, ``nRow``/``nCol``, ``names``,
  ``snr_scale``, ``snr_db``, ``seed``, ``sensor``. Pixels in MATLAB column-major order
  (``n = y + x * H``, as the Samson/Jasper Ridge files bundled by HySUPP), which is what
  ``simhsi.io.open_cube`` / ``simhsi.io.mat`` read back;
* ``index.json`` / ``index.csv`` -- every scene with its settings, seeds, endmember names, measured SNR
  and purity, and the benchmark-wide settings.

Scene i uses seed ``--seed + i`` (abundance field, spectra draw, noise), p = ``--p`` and snr_scale =
``--snr-scale`` values taken in turn (cycled). Score methods on the result with ``score_benchmark.py``.

    python examples/benchmark_dataset/make_benchmark.py --out bench            # 5 scenes, 128 x 128, PRISMA
    python examples/benchmark_dataset/make_benchmark.py --out bench --sensor enmap --n-scenes 10 --p 4
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FIELDS = ("scene_id", "p", "snr_scale", "snr_db", "seed", "sensor", "level", "height", "width",
                "n_bands", "endmember_names", "min_pair_angle_deg", "pure_fraction", "max_abundance_mean",
                "netcdf", "mat")


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(f"[make_benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _num_list(text: str, name: str, kind: type = int) -> list:
    """A comma-separated list of ``kind`` numbers from the command line."""
    try:
        vals = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"{name} is empty")
    return vals


def pairwise_min_angle_deg(E: np.ndarray) -> float:
    """Smallest spectral angle (degrees) between two columns of E (bands x p)."""
    from simhsi.metrics.unmixing import sad_matrix

    s = sad_matrix(E, E)
    s[np.eye(s.shape[0], dtype=bool)] = np.inf
    return float(s.min())


def spectra_candidates(library: Any, sensor: Any) -> list[int]:
    """Indices of the library spectra measured (finite, interior gaps allowed) from the sensor's first to its
    last band centre (clipped to the library's range)."""
    wl = np.asarray(sensor.wavelength, dtype=np.float64)
    lib_wl = np.asarray(library["wavelength"].values, dtype=np.float64)
    lo, hi = max(float(np.nanmin(wl)), float(lib_wl.min())), min(float(np.nanmax(wl)), float(lib_wl.max()))
    out = []
    for i, row in enumerate(np.asarray(library.values, dtype=np.float64)):
        f = np.isfinite(row)
        if f.any() and lib_wl[f].min() <= lo and lib_wl[f].max() >= hi:
            out.append(i)
    return out


def choose_spectra(library: Any, sensor: Any, p: int, seed: int, min_angle: float, tries: int = 200,
                   classes: list[str] | None = None) -> Any:
    """p spectra of ``library`` measured over the sensor's range, drawn with ``seed``: p different material
    classes at random (vegetation, water, mineral, ...; classes repeat only when p exceeds their number), one
    spectrum of each, redrawn until every pair is at least ``min_angle`` degrees apart at the sensor bands
    (the most separated draw is kept if none is). ``classes`` restricts the draw to those classes."""
    from simhsi.errors import DataError
    from simhsi.library import select_endmembers

    cand = spectra_candidates(library, sensor)
    if classes and "class" in library.coords:
        lib_classes = [str(c) for c in library["class"].values]
        unknown = sorted(set(classes) - set(lib_classes))
        if unknown:
            from simhsi.errors import ParameterError

            raise ParameterError(f"The 'classes' parameter has unknown class(es) {unknown}; the library has "
                                 f"{sorted(set(lib_classes))}")
        cand = [i for i in cand if lib_classes[i] in classes]
    if len(cand) < p:
        raise DataError(f"only {len(cand)} library spectra cover the {sensor.name} range; cannot draw p={p}")
    names = np.asarray([str(n) for n in library["endmember"].values])
    classes = (np.asarray([str(c) for c in library["class"].values]) if "class" in library.coords
               else names.copy())
    by_class: dict[str, list[int]] = {}
    for i in cand:
        by_class.setdefault(str(classes[i]), []).append(i)
    keys = sorted(by_class)
    wl = np.asarray(sensor.wavelength, dtype=np.float64)
    rng = np.random.default_rng(seed)
    best, best_angle = None, -1.0
    for _ in range(tries):
        order = list(rng.permutation(len(keys)))
        chosen: list[int] = []
        while len(chosen) < p:  # one spectrum per class, cycling through the classes in random order
            for k in order:
                left = [i for i in by_class[keys[k]] if i not in chosen]
                if left and len(chosen) < p:
                    chosen.append(int(rng.choice(left)))
        sub = select_endmembers(library, p, names=list(names[sorted(chosen)]))
        swl = np.asarray(sub["wavelength"].values, dtype=np.float64)
        E = np.stack([np.interp(wl, swl, row) for row in np.asarray(sub.values, dtype=np.float64)], axis=1)
        angle = pairwise_min_angle_deg(E)  # at the band centres: enough to judge the separation
        if angle > best_angle:
            best, best_angle = sub, angle
        if angle >= min_angle:
            break
    if best_angle < min_angle:
        log(f"warning: no draw of {p} spectra reached {min_angle:g} deg apart; using the best ({best_angle:.1f} deg)")
    return best


def make_abundances(size: tuple[int, int], p: int, seed: int, theta: float, model: str | None) -> Any:
    """(endmember, y, x) abundance maps of ``size`` scene pixels: GRF, or a trained DDPM ``model``."""
    if model:
        from simhsi.diffusion.generate import generate_abundances

        a = generate_abundances(model, n=1, size=size, p=p, seed=seed, progress=False).isel(sample=0)
        a.attrs["generator"] = f"ddpm model {model}"
        return a
    from simhsi.diffusion.grf import gaussian_random_field_abundances

    a = gaussian_random_field_abundances(1, size, p, theta=theta, seed=seed).isel(sample=0)
    a.attrs["generator"] = f"grf (spheric, theta {theta:g} scene px)"
    return a


def to_columns(cube: np.ndarray) -> np.ndarray:
    """(H, W, L) cube -> (L, N) matrix with pixels in MATLAB column-major order (n = y + x H)."""
    h, w, nb = cube.shape
    return np.asarray(cube).reshape(h * w, nb, order="F").T


def abundance_columns(a: np.ndarray) -> np.ndarray:
    """(p, H, W) maps -> (p, N) matrix with pixels in MATLAB column-major order."""
    p, h, w = a.shape
    return np.moveaxis(np.asarray(a), 0, 2).reshape(h * w, p, order="F").T


def write_mat(path: Path, mat: dict[str, Any], overwrite: bool) -> None:
    """Atomic MATLAB v5 file (zlib-compressed) through :func:`simhsi._atomic.atomic_path`."""
    import scipy.io as sio

    from simhsi._atomic import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        sio.savemat(fh, mat, do_compression=True, oned_as="column")


def write_text(path: Path, text: str, overwrite: bool) -> None:
    from simhsi._atomic import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def make_scene(i: int, args: argparse.Namespace, sensor: Any, library: Any, out: Path) -> dict[str, Any]:
    """Render scene ``i``, write its NetCDF and .mat; return its index row."""
    from simhsi.render import render_scene, write_scene

    scene_id = f"scene_{i:03d}"
    seed = int(args.seed) + i
    p = args.p[i % len(args.p)]
    snr_scale = args.snr_scale[i % len(args.snr_scale)]
    factor = float(sensor.gsd_m) / float(args.scene_pixel_m)
    fine = (int(round(args.size * factor)), int(round(args.size * factor)))
    spectra = choose_spectra(library, sensor, p, seed, args.min_angle, classes=args.classes)
    names = [str(n) for n in spectra["endmember"].values]
    a = make_abundances(fine, p, seed, args.theta, args.model).assign_coords(endmember=names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = render_scene(a, spectra, sensor, level="L2", scene_pixel_m=float(args.scene_pixel_m), seed=seed,
                          snr_scale=float(snr_scale), keep_clean=True, out_of_range="warn")
        ds = ds.compute()
    for w in {str(c.message) for c in caught}:
        log(f"{scene_id}: {w.splitlines()[0][:160]}")
    ds = ds.isel(y=slice(0, args.size), x=slice(0, args.size))  # resampling may round up by a pixel
    noisy = np.asarray(ds["reflectance"].values, dtype=np.float32)
    clean = np.asarray(ds["clean"].values, dtype=np.float32)
    A = np.asarray(ds["abundances"].values, dtype=np.float64)
    E = np.asarray(ds["endmembers"].transpose("endmember", "band").values, dtype=np.float64).T  # (L, p)
    noise = noisy.astype(np.float64) - clean
    snr_db = float(10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(noise**2)))
    amax = A.max(axis=0)
    h, w, nb = noisy.shape
    ds.attrs.update(benchmark_scene_id=scene_id, snr_db_measured=snr_db, abundance_generator=a.attrs["generator"],
                    min_pair_angle_deg=pairwise_min_angle_deg(E))
    nc_path = out / "scenes" / f"{scene_id}.nc"
    write_scene(ds, nc_path, overwrite=args.overwrite)
    wl = np.asarray(ds["wavelength"].values, dtype=np.float64)
    fw = np.asarray(ds["fwhm"].values, dtype=np.float64)
    bad = np.asarray(ds["bad_band"].values, dtype=np.uint8) if "bad_band" in ds.coords else np.zeros(nb, np.uint8)
    mat = {
        "Y": to_columns(noisy), "E": E, "A": abundance_columns(A),
        "H": h, "W": w, "p": p, "L": nb, "N": h * w, "nRow": h, "nCol": w,
        "labels": np.array(names), "names": np.array(names),
        "Y_clean": to_columns(clean), "wavelength": wl, "fwhm": fw, "bad_band": bad,
        "snr_scale": float(snr_scale), "snr_db": snr_db, "seed": seed, "sensor": str(sensor.name),
        "noise_model": str(ds.attrs.get("noise_model", "")),
        "level": "L2 surface reflectance", "scene_id": scene_id,
        "pixel_order": "column-major (MATLAB): pixel n is at row n mod H, column n div H",
    }
    mat_path = out / "mat" / f"{scene_id}.mat"
    write_mat(mat_path, mat, args.overwrite)
    row = {
        "scene_id": scene_id, "p": p, "snr_scale": float(snr_scale), "snr_db": round(snr_db, 3), "seed": seed,
        "sensor": str(sensor.name), "level": "L2", "height": h, "width": w, "n_bands": nb,
        "endmember_names": ";".join(names), "min_pair_angle_deg": round(pairwise_min_angle_deg(E), 3),
        "pure_fraction": round(float(np.mean(amax > 0.9)), 5), "max_abundance_mean": round(float(amax.mean()), 4),
        "netcdf": str(nc_path.relative_to(out)), "mat": str(mat_path.relative_to(out)),
        "noise_model": str(ds.attrs.get("noise_model", "")), "abundance_generator": a.attrs["generator"],
    }
    log(f"{scene_id}: p={p} snr_scale={snr_scale:g} ({snr_db:.1f} dB) {h}x{w}x{nb} "
        f"spectra {', '.join(names)} (min angle {row['min_pair_angle_deg']:.1f} deg)")
    return row


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder (created)")
    ap.add_argument("--n-scenes", type=int, default=5, help="number of scenes (default 5)")
    ap.add_argument("--size", type=int, default=128, help="scene edge in sensor pixels (default 128)")
    ap.add_argument("--p", type=lambda s: _num_list(s, "--p", int), default=[3, 4, 5],
                    help="numbers of endmembers, used in turn (default 3,4,5)")
    ap.add_argument("--snr-scale", type=lambda s: _num_list(s, "--snr-scale", float), default=[1.0, 0.1],
                    help="noise settings: sensor SNR multipliers (sigma / scale), used in turn (default 1,0.1)")
    ap.add_argument("--sensor", default="prisma", help="shipped sensor name or YAML file (default prisma)")
    ap.add_argument("--scene-pixel-m", type=float, default=10.0,
                    help="pixel of the abundance fields in metres, finer than the GSD (default 10)")
    ap.add_argument("--theta", type=float, default=60.0, help="GRF range in scene pixels (default 60)")
    ap.add_argument("--min-angle", type=float, default=5.0,
                    help="smallest spectral angle (deg) allowed between two endmembers of a scene (default 5)")
    ap.add_argument("--classes", type=lambda s: [c.strip() for c in s.split(",") if c.strip()], default=None,
                    help="material classes to draw spectra from, comma-separated (default: every class whose "
                         "spectra cover the sensor range; bundled: vegetation, npv, water, snow, mineral, ...)")
    ap.add_argument("--model", default=None, help="trained simhsi DDPM model folder (default: GRF abundances)")
    ap.add_argument("--seed", type=int, default=0, help="base seed; scene i uses seed + i (default 0)")
    ap.add_argument("--smoke", action="store_true", help="tiny fast run for CI (2 scenes of 24 x 24)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the example; returns 0 (errors raise SimhsiError with a one-line message)."""
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.n_scenes, args.size = min(args.n_scenes, 2), min(args.size, 24)
    from simhsi.errors import ParameterError, check_param

    check_param("n_scenes", args.n_scenes, args.n_scenes >= 1, "an int >= 1", "make_benchmark")
    check_param("size", args.size, args.size >= 8, "an int >= 8 (pixels)", "make_benchmark")
    check_param("p", args.p, all(v >= 2 for v in args.p), "ints >= 2", "make_benchmark")
    check_param("snr_scale", args.snr_scale, all(np.isfinite(v) and v > 0 for v in args.snr_scale),
                "numbers > 0", "make_benchmark")
    from simhsi.library import load_library
    from simhsi.render import resolve_sensor

    sensor = resolve_sensor(args.sensor)
    if max(args.p) >= len(sensor.wavelength):
        raise ParameterError(f"The 'p' parameter must stay below the {len(sensor.wavelength)} bands of "
                             f"{sensor.name}. Got {max(args.p)} instead.")
    out = Path(args.out)
    index_json = out / "index.json"
    if index_json.exists() and not args.overwrite:
        from simhsi.errors import OutputError

        raise OutputError("already exists; pass --overwrite to replace the benchmark", path=index_json)
    for sub in ("scenes", "mat"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    library = load_library("bundled")
    log(f"{args.n_scenes} scenes of {args.size}x{args.size} px for {sensor.name} into {out}")
    t0 = time.perf_counter()
    rows = [make_scene(i, args, sensor, library, out) for i in range(args.n_scenes)]
    from simhsi.conventions import provenance_attrs

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"}
    index = {
        "description": "simhsi synthetic unmixing benchmark (see examples/benchmark_dataset/README.md)",
        "settings": settings,
        "provenance": provenance_attrs(),
        "mat_layout": {"Y": "L x N noisy reflectance", "Y_clean": "L x N noise-free", "E": "L x p",
                       "A": "p x N", "pixel_order": "column-major: n = y + x * H"},
        "scenes": rows,
    }
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=INDEX_FIELDS, lineterminator="\n", extrasaction="ignore")
    wr.writeheader()
    wr.writerows(rows)
    write_text(out / "index.csv", buf.getvalue(), overwrite=args.overwrite)
    write_text(index_json, json.dumps(index, indent=2) + "\n", overwrite=args.overwrite)
    log(f"done in {time.perf_counter() - t0:.1f} s: {index_json}")
    return 0


if __name__ == "__main__":
    from simhsi.errors import run_script

    run_script(main)
