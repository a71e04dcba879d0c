"""Mission planning: what would this instrument let me retrieve?

One synthetic scene (abundance maps from the default DDPM generator when one is installed, else from
Gaussian random fields; endmember spectra from the bundled real library) is rendered through several
sensor models (PRISMA, EnMAP, EMIT, Sentinel-2A by default), at several SNR scales and ground sampling
distances (GSD), each rendered cube is unmixed blind (``nfindr-fcls`` by default), and the estimates are
scored against the truth of that cube:

* abundance RMSE (``armse``, x100) after Hungarian alignment and the mean spectral angle (``sad_deg``)
  against the library spectra resampled to the sensor bands (HySUPP protocol,
  :func:`simhsi.metrics.unmixing.score_result`);
* the truth abundances of a sensor pixel are the scene abundances after the same PSF + resampling stage
  as the cube (``render_scene``'s ``abundances``): the linear mixing model holds exactly for them;
  ``armse_footprint`` scores against the plain footprint fractions (box mean, no PSF) instead;
* ``armse_oracle``: FCLS with the TRUE endmembers (no endmember extraction), i.e. the error due to the
  noise alone, a floor for any blind method.

Experiments: ``sensor`` (each sensor at its native GSD and SNR scale 1), ``snr`` (native GSD, every SNR
scale) and ``gsd`` (every GSD; the sensor's noise model unchanged with ``--gsd-noise fixed``, the default,
or the SNR scaled by GSD / native GSD with ``--gsd-noise shot``: a shot-noise-limited detector collects
photons in proportion to the pixel area, so its SNR grows like the GSD). Each configuration is
repeated with independent noise and unmixing seeds (``--repeats``); tables give mean and std.

Run (a few minutes on 2 cores)::

    python examples/mission_planning/sensor_tradeoff.py --out build/tradeoff

Writes into ``--out``: ``results.csv`` (one row per method x sensor x GSD x SNR scale),
``results_runs.csv`` (every run), ``per_endmember.csv``, ``results.md`` (Markdown tables),
``tradeoff_sensor.png``, ``tradeoff_snr.png``, ``tradeoff_gsd.png``, ``truth_scene.nc`` (the scene's
abundance maps and library spectra) and ``summary.json`` (settings, provenance, tables); with
``--save-cubes`` also ``cubes/<sensor>_native.nc`` (each sensor's scene at native GSD, SNR scale 1).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import sys
import time
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("sensor_tradeoff")

DEFAULT_SENSORS = ("prisma", "enmap", "emit", "sentinel2a")
DEFAULT_SNR_SCALES = (0.25, 0.5, 1.0, 2.0)
DEFAULT_GSDS = (10.0, 30.0, 60.0)
DEFAULT_METHODS = ("nfindr-fcls",)
DEFAULT_P = 5
DEFAULT_SIZE = 192  # scene pixels (1.92 km at 10 m): 64 x 64 PRISMA pixels, 32 x 32 EMIT pixels
SMOKE_SIZE = 72
SCENE_PIXEL_M = 10.0
GRF_THETA_PX = 60.0
#: Fewest sensor pixels a configuration may have (the unmixing needs many more pixels than endmembers).
MIN_SENSOR_PIXELS = 64

OUTPUTS = ("results.csv", "results_runs.csv", "per_endmember.csv", "results.md", "tradeoff_sensor.png",
           "tradeoff_snr.png", "tradeoff_gsd.png", "truth_scene.nc", "summary.json")
RUN_COLUMNS = ("method", "sensor", "gsd_m", "snr_scale", "experiments", "repeat", "noise_seed", "unmix_seed",
               "sensor_pixels", "n_bands", "n_bands_used", "median_snr", "min_purity", "armse", "sad_deg",
               "armse_oracle", "armse_footprint", "unmix_runtime_s")
MEAN_COLUMNS = ("armse", "sad_deg", "armse_oracle", "armse_footprint", "median_snr", "unmix_runtime_s")


# --------------------------------------------------------------------------------------------- arguments
def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or not all(math.isfinite(v) and v > 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return vals


def _names(text: str) -> list[str]:
    vals = [v.strip() for v in text.split(",") if v.strip()]
    if not vals:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return vals


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Render one synthetic scene for several sensors, SNR scales and GSDs, unmix each cube and "
                    "score it against the truth: what would this instrument let me retrieve?")
    ap.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    ap.add_argument("--seed", type=int, default=0, help="master seed (scene, noise, unmixing); default 0")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny fast run for CI: 72 px scene, Gaussian-field generator, 1 repeat, SNR scales 0.5,1, GSD 60 m")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    ap.add_argument("--sensors", type=_names, default=None,
                    help=f"comma-separated sensor names or YAML paths (default {','.join(DEFAULT_SENSORS)})")
    ap.add_argument("--snr-scales", type=_floats, default=None,
                    help="comma-separated noise sigma divisors (default 0.25,0.5,1,2; 1 = the sensor's model)")
    ap.add_argument("--gsds", type=_floats, default=None,
                    help="comma-separated GSDs in m for the gsd experiment (default 10,30,60)")
    ap.add_argument("--methods", type=_names, default=None,
                    help="comma-separated unmixing methods (default nfindr-fcls; e.g. vca-fcls,sisal-fcls)")
    ap.add_argument("--p", type=int, default=DEFAULT_P, help="number of endmembers in the scene (default 5)")
    ap.add_argument("--endmembers", type=_names, default=None,
                    help="comma-separated names of bundled library spectra (default: the demo landscape for p=5, "
                         "else a seeded random choice)")
    ap.add_argument("--size", type=int, default=None,
                    help=f"scene edge in scene pixels (default {DEFAULT_SIZE}; smoke {SMOKE_SIZE})")
    ap.add_argument("--scene-pixel-m", type=float, default=SCENE_PIXEL_M,
                    help="scene pixel size in m (default 10; must not exceed any GSD)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="noise/unmixing repetitions per configuration (default 3; smoke 1)")
    ap.add_argument("--generator", choices=("auto", "ddpm", "grf"), default=None,
                    help="abundance generator: the DDPM model (--model or the packaged default), Gaussian random "
                         "fields, or auto = DDPM when a model is found (default auto; smoke grf)")
    ap.add_argument("--model", type=Path, default=None, help="DDPM model directory (default: the packaged one)")
    ap.add_argument("--grf-theta", type=float, default=GRF_THETA_PX,
                    help="Gaussian-field range in scene pixels (default 60)")
    ap.add_argument("--gsd-noise", choices=("fixed", "shot"), default="fixed",
                    help="noise in the gsd experiment: the sensor's model unchanged (fixed, default) or SNR scaled "
                         "by GSD / native GSD (shot-noise-limited detector)")
    ap.add_argument("--save-cubes", action="store_true",
                    help="also write each sensor's scene (native GSD, SNR scale 1) to cubes/<sensor>_native.nc")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size = args.size or SMOKE_SIZE
        args.repeats = args.repeats or 1
        args.snr_scales = args.snr_scales or [0.5, 1.0]
        args.gsds = args.gsds or [60.0]
        args.generator = args.generator or "grf"
    args.size = args.size or DEFAULT_SIZE
    args.repeats = args.repeats or 3
    args.snr_scales = args.snr_scales or list(DEFAULT_SNR_SCALES)
    args.gsds = args.gsds or list(DEFAULT_GSDS)
    args.generator = args.generator or "auto"
    args.sensors = args.sensors or list(DEFAULT_SENSORS)
    args.methods = args.methods or list(DEFAULT_METHODS)
    return args


def _check_args(args: argparse.Namespace) -> None:
    from simhsi.errors import ParameterError

    if args.seed < 0:
        raise ParameterError(f"--seed must be >= 0; got {args.seed}")
    if args.p < 2:
        raise ParameterError(f"--p must be >= 2; got {args.p}")
    if args.repeats < 1:
        raise ParameterError(f"--repeats must be >= 1; got {args.repeats}")
    if args.size < 16:
        raise ParameterError(f"--size must be >= 16 scene pixels; got {args.size}")
    if not (math.isfinite(args.scene_pixel_m) and args.scene_pixel_m > 0):
        raise ParameterError(f"--scene-pixel-m must be a positive number of metres; got {args.scene_pixel_m}")
    if args.endmembers is not None and len(args.endmembers) != args.p:
        raise ParameterError(f"--endmembers names {len(args.endmembers)} spectra but --p is {args.p}; give p names")
    if not (math.isfinite(args.grf_theta) and args.grf_theta > 0):
        raise ParameterError(f"--grf-theta must be a positive number of pixels; got {args.grf_theta}")


# --------------------------------------------------------------------------------------------- scene
def make_scene_abundances(args: argparse.Namespace, p: int) -> tuple[Any, str]:
    """(abundances (endmember, y, x) at ``args.scene_pixel_m``, generator description)."""
    from simhsi.errors import ModelError

    size = (args.size, args.size)
    if args.generator in ("auto", "ddpm"):
        from simhsi.diffusion.generate import default_model_dir, generate_abundances

        model = str(args.model) if args.model is not None else default_model_dir()
        if model is None and args.generator == "ddpm":
            raise ModelError("--generator ddpm: no default generator model is installed; pass --model DIR "
                             "(from 'simhsi train') or use --generator grf")
        if model is not None:
            try:
                log.info("generating %dx%d abundances (p=%d) with the DDPM model %s", *size, p, model)
                a = generate_abundances(model, n=1, size=size, p=p, seed=args.seed,
                                        progress=not args.quiet).isel(sample=0)
                return a, f"ddpm model {model} (default sampler, seed {args.seed})"
            except Exception as exc:
                if args.generator == "ddpm":
                    raise
                log.warning("DDPM generator failed (%s); using Gaussian random fields", exc)
    from simhsi.diffusion.grf import gaussian_random_field_abundances

    log.info("generating %dx%d abundances (p=%d) with Gaussian random fields (theta %g px)", *size, p,
             args.grf_theta)
    a = gaussian_random_field_abundances(1, size, p, theta=args.grf_theta, seed=args.seed).isel(sample=0)
    return a, f"grf (Gaussian random fields, spheric kernel, theta {args.grf_theta:g} px, seed {args.seed})"


def sensor_at_gsd(sensor: Any, gsd_m: float) -> Any:
    """A copy of ``sensor`` with another GSD (same bands, PSF in GSD units and noise model).

    Per-band GSDs (Sentinel-2's 10 / 20 / 60 m) scale with it, keeping their ratios.
    """
    table = dict(sensor.band_table)
    if "gsd_m" in table:
        table["gsd_m"] = np.asarray(table["gsd_m"], dtype=float) * (float(gsd_m) / float(sensor.gsd_m))
    return dataclasses.replace(sensor, gsd_m=float(gsd_m), band_table=table)


def plan_configs(sensors: list[Any], snr_scales: list[float], gsds: list[float],
                 gsd_noise: str = "fixed") -> list[dict[str, Any]]:
    """Unique (sensor, gsd, snr) configurations with the experiments each belongs to.

    ``gsd_noise``: ``"fixed"`` (gsd experiment at SNR scale 1) or ``"shot"`` (SNR scale GSD / native GSD).
    """
    configs: dict[tuple[str, float, float], dict[str, Any]] = {}

    def add(sen: Any, gsd: float, snr: float, exp: str) -> None:
        key = (sen.name, float(gsd), float(snr))
        if key not in configs:
            configs[key] = {"sensor": sen, "gsd_m": float(gsd), "snr_scale": float(snr), "experiments": []}
        if exp not in configs[key]["experiments"]:
            configs[key]["experiments"].append(exp)

    for sen in sensors:
        add(sen, sen.gsd_m, 1.0, "sensor")
        for snr in snr_scales:
            add(sen, sen.gsd_m, snr, "snr")
        for gsd in gsds:
            add(sen, gsd, gsd / sen.gsd_m if gsd_noise == "shot" else 1.0, "gsd")
    return list(configs.values())


def _derived_seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] % (2**31 - 1))


# --------------------------------------------------------------------------------------------- one run
def band_snr(cube: np.ndarray, clean: np.ndarray, good: np.ndarray) -> float:
    """Median over the good bands of mean(clean) / std(cube - clean): the SNR the scene really has."""
    c = clean[..., good].reshape(-1, int(good.sum())).astype(np.float64)
    n = cube[..., good].reshape(-1, int(good.sum())).astype(np.float64) - c
    sd = n.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(sd > 0, c.mean(axis=0) / sd, np.inf)
    return float(np.median(snr))


def run_config(cfg: dict[str, Any], abund: Any, library: Any, methods: list[str], p: int, repeat: int,
               seed: int, scene_pixel_m: float, footprint: np.ndarray) -> tuple[list[dict], list[dict], Any]:
    """Render one configuration with one noise seed and score every method; (run rows, per-endmember rows, scene)."""
    from simhsi.metrics.unmixing import armse, score_result
    from simhsi.render import render_scene
    from simhsi.unmixing import get_method
    from simhsi.unmixing.fcls import fcls

    sen = sensor_at_gsd(cfg["sensor"], cfg["gsd_m"])
    noise_seed = _derived_seed(seed, 1, repeat)
    # warnings (SRF truncation at the library's 2500 nm edge, convergence) are collected and logged once by main()
    ds = render_scene(abund, library, sen, level="L2", scene_pixel_m=scene_pixel_m, seed=noise_seed,
                      snr_scale=cfg["snr_scale"], keep_clean=True, out_of_range="warn").compute()
    cube = ds["reflectance"]
    truth = ds[["endmembers", "abundances"]]
    names = [str(n) for n in ds["endmember"].values]
    A_true = np.asarray(ds["abundances"].values, dtype=np.float64)  # (p, H, W)
    good = ~np.asarray(ds["bad_band"].values, dtype=bool) if "bad_band" in ds.coords else np.ones(cube.sizes["band"],
                                                                                                     bool)
    vals = np.asarray(cube.values)
    snr_med = band_snr(vals, np.asarray(ds["clean"].values), good)
    h, w = A_true.shape[1:]
    # oracle: FCLS with the true endmembers at the good bands (noise is the only error source)
    E_true = np.asarray(ds["endmembers"].values, dtype=np.float64).T  # (bands, p)
    A_orc = fcls(vals[..., good].reshape(-1, int(good.sum())).T, E_true[good])
    a_oracle = armse(A_orc, A_true.reshape(p, -1))
    purity = float(np.min(A_true.reshape(p, -1).max(axis=1)))
    rows, em_rows = [], []
    for method in methods:
        # seeded by the method's name: adding methods to a study does not change the others' runs
        unmix_seed = _derived_seed(seed, 2, repeat, zlib.crc32(method.encode()))
        res = get_method(method)(n_endmembers=p, seed=unmix_seed).fit(cube)
        sc = score_result(res, truth)
        perm = np.asarray(sc["permutation"])
        A_est = np.asarray(res["abundances"].transpose("endmember", "y", "x").values, dtype=np.float64)[perm]
        a_fp = armse(A_est.reshape(p, -1), footprint)
        rows.append({
            "method": method, "sensor": sen.name, "gsd_m": cfg["gsd_m"], "snr_scale": cfg["snr_scale"],
            "experiments": "+".join(cfg["experiments"]), "repeat": repeat, "noise_seed": noise_seed,
            "unmix_seed": unmix_seed, "sensor_pixels": f"{h}x{w}", "n_bands": int(cube.sizes["band"]),
            "n_bands_used": int(res.sizes["band"]), "median_snr": snr_med, "min_purity": purity,
            "armse": sc["armse"], "sad_deg": sc["sad_deg"], "armse_oracle": a_oracle, "armse_footprint": a_fp,
            "unmix_runtime_s": float(res.attrs.get("runtime_s", float("nan"))),
        })
        for k, name in enumerate(names):
            em_rows.append({"method": method, "sensor": sen.name, "gsd_m": cfg["gsd_m"],
                            "snr_scale": cfg["snr_scale"], "repeat": repeat, "endmember": name,
                            "sad_deg": sc["sad_per_endmember"][k], "armse": sc["armse_per_endmember"][k]})
    return rows, em_rows, ds


# --------------------------------------------------------------------------------------------- tables
def aggregate(rows: list[dict[str, Any]], keys: Sequence[str], values: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and std (over repeats) of ``values`` per unique ``keys``; first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        row = dict(zip(keys, key, strict=True))
        for extra in ("experiments", "sensor_pixels", "n_bands", "n_bands_used", "min_purity"):
            if extra in rs[0] and extra not in row:
                row[extra] = rs[0][extra]
        row["repeats"] = len(rs)
        for v in values:
            x = np.array([r[v] for r in rs], dtype=np.float64)
            row[f"{v}_mean"] = float(np.mean(x))
            row[f"{v}_std"] = float(np.std(x))
        out.append(row)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:.4g}"
    return str(v)


def write_csv(path: Path, rows: list[dict[str, Any]], overwrite: bool) -> None:
    from simhsi._atomic import atomic_path

    cols = list(rows[0]) if rows else []
    with atomic_path(path, overwrite) as tmp, open(tmp, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=cols)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: _fmt(r[k]) for k in cols})


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _pm(row: dict[str, Any], v: str, digits: int = 2) -> str:
    return f"{row[f'{v}_mean']:.{digits}f} ± {row[f'{v}_std']:.{digits}f}"


def markdown_report(agg: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The Markdown tables of results.md."""
    gsd_note = " (SNR scale 1)" if meta["gsd_noise"] == "fixed" else " (SNR scale GSD / native GSD)"
    out = [f"# Sensor trade-off: {meta['scene']}", "",
           f"Endmembers (bundled library): {', '.join(meta['endmembers'])}.  ",
           f"Abundance generator: {meta['generator']}.  ",
           f"Repeats per configuration: {meta['repeats']} (mean ± std over noise/unmixing seeds). "
           "aRMSE and oracle aRMSE are x100 (abundance percent points); SAD in degrees.", ""]
    for method in meta["methods"]:
        rows = [r for r in agg if r["method"] == method]
        out += [f"## {method}", "", "### Sensors at native GSD, SNR scale 1", ""]
        body = [[r["sensor"], f"{r['gsd_m']:g}", r["sensor_pixels"], str(r["n_bands_used"]),
                 f"{r['median_snr_mean']:.0f}", f"{r['min_purity']:.2f}", _pm(r, "armse"), _pm(r, "sad_deg"),
                 _pm(r, "armse_oracle"), _pm(r, "armse_footprint")]
                for r in rows if "sensor" in r["experiments"].split("+")]
        out += [_md_table(["sensor", "GSD m", "pixels", "bands used", "median SNR", "min purity", "aRMSE",
                           "SAD °", "oracle aRMSE", "aRMSE vs footprint"], body), ""]
        for exp, col, label in (("snr", "snr_scale", "SNR scale"), ("gsd", "gsd_m", "GSD m")):
            sub = [r for r in rows if exp in r["experiments"].split("+")]
            levels = sorted({r[col] for r in sub})
            sensors = list(dict.fromkeys(r["sensor"] for r in sub))
            hdr = ["sensor"] + [f"{label} {v:g}" for v in levels]
            for metric, name in (("armse", "aRMSE"), ("sad_deg", "SAD °"), ("armse_oracle", "oracle aRMSE")):
                body = []
                for s in sensors:
                    cells = []
                    for v in levels:
                        m = [r for r in sub if r["sensor"] == s and r[col] == v]
                        cells.append(_pm(m[0], metric) if m else "")
                    body.append([s] + cells)
                out += [f"### {name} vs {label}" + (" (native GSD)" if exp == "snr" else gsd_note), "",
                        _md_table(hdr, body), ""]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- plots
def _colors(sensors: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(sensors)}


def plot_sensor(path: Path, agg: list[dict[str, Any]], methods: list[str], overwrite: bool) -> None:
    import matplotlib.pyplot as plt

    from simhsi._atomic import atomic_path

    rows = [r for r in agg if "sensor" in r["experiments"].split("+")]
    sensors = list(dict.fromkeys(r["sensor"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(sensors))
    for ax, metric, label in ((axes[0], "armse", "abundance RMSE (x100)"), (axes[1], "sad_deg", "SAD (degrees)")):
        slots = len(methods) + (metric == "armse")  # the oracle bar only in the aRMSE panel
        width = 0.8 / slots
        for mi, method in enumerate(methods):
            vals = [next((r for r in rows if r["sensor"] == s and r["method"] == method), None) for s in sensors]
            ax.bar(x + mi * width, [v[f"{metric}_mean"] if v else np.nan for v in vals], width,
                   yerr=[v[f"{metric}_std"] if v else 0 for v in vals], capsize=3, label=method)
        if metric == "armse":
            orc = [next(r for r in rows if r["sensor"] == s)["armse_oracle_mean"] for s in sensors]
            ax.bar(x + len(methods) * width, orc, width, color="0.6", label="FCLS, true endmembers")
        ax.set_xticks(x + width * (slots - 1) / 2,
                      [f"{s}\n{next(r for r in rows if r['sensor'] == s)['gsd_m']:g} m" for s in sensors])
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Retrieval per sensor (native GSD, SNR scale 1)")
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_sweep(path: Path, agg: list[dict[str, Any]], methods: list[str], exp: str, col: str, xlabel: str,
               title: str, overwrite: bool, logx: bool) -> None:
    import matplotlib.pyplot as plt

    from simhsi._atomic import atomic_path

    rows = [r for r in agg if exp in r["experiments"].split("+")]
    sensors = list(dict.fromkeys(r["sensor"] for r in rows))
    colors = _colors(sensors)
    styles = ["-", "--", "-.", ":"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "armse", "abundance RMSE (x100)"), (axes[1], "sad_deg", "SAD (degrees)")):
        for s in sensors:
            for mi, method in enumerate(methods):
                sub = sorted((r for r in rows if r["sensor"] == s and r["method"] == method), key=lambda r: r[col])
                if not sub:
                    continue
                xs = [r[col] for r in sub]
                ax.errorbar(xs, [r[f"{metric}_mean"] for r in sub], yerr=[r[f"{metric}_std"] for r in sub],
                            color=colors[s], ls=styles[mi % len(styles)], marker="o", ms=4, capsize=3,
                            label=f"{s} {method}" if len(methods) > 1 else s)
            if metric == "armse":
                sub = sorted((r for r in rows if r["sensor"] == s and r["method"] == methods[0]), key=lambda r: r[col])
                ax.plot([r[col] for r in sub], [r["armse_oracle_mean"] for r in sub], color=colors[s], ls=":",
                        lw=1, alpha=0.8)
        if logx:
            ax.set_xscale("log", base=2)
        levels = sorted({r[col] for r in rows})
        ax.set_xticks(levels, [f"{v:g}" for v in levels])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title="dotted: FCLS with true endmembers", title_fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Run the trade-off study; returns 0 (errors raise :class:`simhsi.errors.SimhsiError`)."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    _check_args(args)
    t_start = time.perf_counter()

    import matplotlib

    matplotlib.use("Agg")
    import xarray as xr
    from tqdm.auto import tqdm

    from simhsi._atomic import atomic_path, check_output_path
    from simhsi.errors import ParameterError
    from simhsi.io.netcdf import write_netcdf
    from simhsi.render.scene import load_scene_library
    from simhsi.sensors import load_sensor
    from simhsi.sensors.psf import apply_psf_and_resample
    from simhsi.unmixing import get_method

    for m in args.methods:
        get_method(m)  # unknown names fail now, not after minutes of work
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    planned = [out / f for f in OUTPUTS]
    sensors = [load_sensor(s) for s in args.sensors]
    if len({s.name for s in sensors}) != len(sensors):
        raise ParameterError(f"--sensors names a sensor twice: {args.sensors}")
    if args.save_cubes:
        (out / "cubes").mkdir(exist_ok=True)
        planned += [out / "cubes" / f"{s.name}_native.nc" for s in sensors]
    for f in planned:
        check_output_path(f, args.overwrite)

    configs = plan_configs(sensors, args.snr_scales, args.gsds, args.gsd_noise)
    for cfg in configs:
        g = cfg["gsd_m"]
        if g < args.scene_pixel_m:
            raise ParameterError(f"GSD {g:g} m of {cfg['sensor'].name} is finer than the scene pixel "
                                 f"({args.scene_pixel_m:g} m); lower --scene-pixel-m or drop it from --gsds")
        n = int(math.floor(args.size * args.scene_pixel_m / g + 1e-9))
        if n * n < max(MIN_SENSOR_PIXELS, 4 * args.p):
            raise ParameterError(f"a {args.size} px scene at {args.scene_pixel_m:g} m gives only {n}x{n} pixels at "
                                 f"{g:g} m GSD; raise --size")

    # scene: abundances + named library spectra
    library = load_scene_library("bundled", args.p, names=args.endmembers, seed=args.seed)
    names = [str(n) for n in library["endmember"].values]
    abund, generator = make_scene_abundances(args, args.p)
    abund = abund.assign_coords(endmember=names)
    abund.attrs["generator"] = generator
    log.info("scene: %d x %d px at %g m, endmembers %s", args.size, args.size, args.scene_pixel_m, ", ".join(names))
    a_np = np.asarray(abund.values, dtype=np.float64)
    footprints = {g: apply_psf_and_resample(a_np, args.scene_pixel_m, g, 0.0).reshape(args.p, -1)
                  for g in sorted({c["gsd_m"] for c in configs})}

    runs: list[dict] = []
    em_runs: list[dict] = []
    total = len(configs) * args.repeats
    seen_warnings: set[tuple[str, str]] = set()
    bar = tqdm(total=total, desc="render + unmix", unit="run", disable=args.quiet, file=sys.stderr)
    for cfg in configs:
        for r in range(args.repeats):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rows, em_rows, ds = run_config(cfg, abund, library, args.methods, args.p, r, args.seed,
                                               args.scene_pixel_m, footprints[cfg["gsd_m"]])
            for w in caught:  # each distinct warning once per sensor
                msg = str(w.message).splitlines()[0]
                if (cfg["sensor"].name, msg) not in seen_warnings:
                    seen_warnings.add((cfg["sensor"].name, msg))
                    log.warning("%s: %s: %s", cfg["sensor"].name, w.category.__name__, msg)
            runs += rows
            em_runs += em_rows
            bar.update(1)
            for row in rows:
                log.info("%s %s GSD %g m SNRx%g rep %d: aRMSE %.2f SAD %.2f deg (oracle %.2f, SNR %.0f)",
                         row["method"], row["sensor"], row["gsd_m"], row["snr_scale"], r, row["armse"],
                         row["sad_deg"], row["armse_oracle"], row["median_snr"])
            if args.save_cubes and r == 0 and "sensor" in cfg["experiments"]:
                from simhsi.render import write_scene

                write_scene(ds.drop_vars("clean"), out / "cubes" / f"{cfg['sensor'].name}_native.nc",
                            overwrite=args.overwrite)
    bar.close()

    keys = ("method", "sensor", "gsd_m", "snr_scale")
    agg = aggregate(runs, keys, MEAN_COLUMNS)
    em_agg = aggregate(em_runs, (*keys, "endmember"), ("sad_deg", "armse"))
    meta = {
        "scene": f"{args.size} x {args.size} px at {args.scene_pixel_m:g} m, p = {args.p}",
        "endmembers": names, "generator": generator, "repeats": args.repeats, "methods": args.methods,
        "gsd_noise": args.gsd_noise,
    }
    write_csv(out / "results_runs.csv", [{k: r[k] for k in RUN_COLUMNS} for r in runs], args.overwrite)
    write_csv(out / "results.csv", agg, args.overwrite)
    write_csv(out / "per_endmember.csv", em_agg, args.overwrite)
    with atomic_path(out / "results.md", args.overwrite) as tmp:
        tmp.write_text(markdown_report(agg, meta))
    plot_sensor(out / "tradeoff_sensor.png", agg, args.methods, args.overwrite)
    plot_sweep(out / "tradeoff_snr.png", agg, args.methods, "snr", "snr_scale",
               "SNR scale (noise sigma divided by)", "Retrieval vs SNR (native GSD)", args.overwrite, logx=True)
    plot_sweep(out / "tradeoff_gsd.png", agg, args.methods, "gsd", "gsd_m", "GSD (m)",
               f"Retrieval vs GSD ({'SNR scale 1' if args.gsd_noise == 'fixed' else 'SNR scale GSD/native GSD'}; "
               "scene at "
               f"{args.scene_pixel_m:g} m through the PSF + resampling)", args.overwrite, logx=False)

    from simhsi.conventions import provenance_attrs

    truth = xr.Dataset(
        {"abundances": abund.astype(np.float32).assign_attrs(units="1", long_name="scene abundance maps"),
         "library": library.assign_attrs(units="1", long_name="endmember reflectance (bundled library)")},
        attrs=provenance_attrs(title="sensor trade-off scene truth", generator=generator,
                               scene_pixel_m=float(args.scene_pixel_m), seed=int(args.seed)),
    )
    write_netcdf(truth, out / "truth_scene.nc", overwrite=args.overwrite)

    sensor_facts = {s.name: {"n_bands": s.n_bands, "n_bad_bands": int(s.bad_band.sum()), "native_gsd_m": s.gsd_m,
                             "psf_sigma_gsd": s.psf_sigma_gsd, "noise": s.noise.kind,
                             "noise_placeholder": bool(getattr(s.noise, "placeholder", False))}
                    for s in sensors}
    summary = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **meta, "sensors": sensor_facts, "runtime_s": time.perf_counter() - t_start,
        "definitions": {
            "armse": "100*sqrt(mean((A-A_gt)^2)) after Hungarian alignment; A_gt = scene abundances through the "
                     "sensor PSF + resampling (the exact linear-mixing truth of each sensor pixel)",
            "sad_deg": "mean spectral angle between estimated and library endmembers at the sensor bands (degrees)",
            "armse_oracle": "aRMSE of FCLS with the true endmembers (noise-only error)",
            "armse_footprint": "aRMSE against the box-mean fractions of each pixel footprint (no PSF)",
            "median_snr": "median over good bands of mean(clean)/std(noise) of the rendered cube",
            "min_purity": "smallest over endmembers of the largest true abundance at the sensor grid",
        },
        "results": agg,
    }
    with atomic_path(out / "summary.json", args.overwrite) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=float))
    log.info("done in %.0f s: %s", time.perf_counter() - t_start, out)
    return 0


if __name__ == "__main__":
    from simhsi.errors import run_script

    run_script(main)
