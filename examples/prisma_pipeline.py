"""PRISMA end to end with the ``simhsi`` command line: unmix -> train -> generate -> render -> validate.

The question it answers: "I have a PRISMA product; how do I get synthetic scenes that look like it, and
how do I check them?". Every stage is a ``simhsi`` command (run as a subprocess, exactly as typed in a
shell; ``--in-process`` runs them through click's test runner instead, which saves the interpreter
start-up). Every command is also written to ``OUT/commands.sh`` so it can be re-run by hand.

Stages and what each writes under ``--out`` (see examples/README.md for a run with numbers)::

    00_input/     (only without --input) a synthetic 'true' scene: truth_abundances.nc (Gaussian random
                  fields), truth.nc (rendered PRISMA L2, with its ground truth) and the same cube written
                  as a georeferenced PRISMA L2D product PRS_L2D_STD_..._0001.he5 (real HDF-EOS5 layout,
                  simhsi.io.prisma.write_prisma_he5); roundtrip.json compares the two
    01_info/      info.json              `simhsi info`
    02_unmix/     unmix.nc, unmix.png, unmix.json       `simhsi unmix` (scored against the truth if known)
    03_train/     train.yaml, model/     `simhsi train` (a tiny U-Net, a few hundred steps)
    04_generate/  generated.nc, generated.png           `simhsi generate-abundances`
    05_render/    library.csv, synthetic.nc, synthetic.png, reconstruction.nc   `simhsi render-cube`
    06_validate/  realism.json, reconstruction.json     `simhsi validate`
    commands.sh, summary.json

Usage::

    python examples/prisma_pipeline.py --out prisma_run                     # synthetic input, minutes
    python examples/prisma_pipeline.py --input PRS_L2D_STD_....he5 --crop 0 0 256 256 --out my_run
    python examples/prisma_pipeline.py --smoke --out /tmp/smoke            # CI size, < 1 min
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Product name of the synthetic input (PRISMA's naming: level, processing, acquisition start, ...).
INPUT_NAME = "PRS_L2D_STD_20200116101454_20200116101458_0001.he5"
#: A UTM 32N 30 m grid for the synthetic product (pixel-edge origin of the upper-left pixel).
EPSG = 32632
ORIGIN = (500000.0, 4600020.0)

#: Tiny U-Net configuration written to 03_train/train.yaml (keys of simhsi.diffusion.config.TrainConfig).
TRAIN_CONFIG = {
    "patch_size": 16,
    "stride": 8,
    "block_out_channels": [16, 32],
    "attention_resolutions": [8],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "attention_head_dim": 8,
    "dropout": 0.1,
    "lr": 5.0e-4,
    "ema_decay": 0.99,
    "sample_every": 0,
}

DEFAULTS = {  # default run: minutes on 2 CPU cores
    "size": 64, "endmembers": 4, "method": "nmfqmv", "train_steps": 300, "batch_size": 8,
    "n_generate": 4, "sampler_steps": 10,
}
SMOKE = {  # CI: well under a minute
    "size": 24, "endmembers": 3, "method": "vca-fcls", "train_steps": 4, "batch_size": 4,
    "n_generate": 2, "sampler_steps": 2,
}


def log(msg: str) -> None:
    print(f"[prisma_pipeline {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _simhsi_exe() -> list[str]:
    """The ``simhsi`` console script of this interpreter's environment (else the same entry point via -c)."""
    exe = Path(sys.executable).with_name("simhsi")
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "from simhsi.cli.main import main; main()"]


class Pipeline:
    """Runs ``simhsi`` commands in ``out`` (relative paths), logs them and records them in commands.sh."""

    def __init__(self, out: Path, *, in_process: bool, overwrite: bool) -> None:
        self.out = out
        self.in_process = in_process
        self.overwrite = overwrite
        self.lines: list[str] = ["#!/bin/sh", "# simhsi commands run by examples/prisma_pipeline.py "
                                 "(run from this folder)", "set -e"]
        self.timings: dict[str, float] = {}

    def note(self, text: str) -> None:
        """A comment in commands.sh (for the few steps done in Python)."""
        self.lines.extend(f"# {t}" for t in text.splitlines())

    def simhsi(self, *args: str, overwrite: bool = True) -> str:
        """Run ``simhsi -q ARGS`` in the output folder; returns its stdout (raises SystemExit on failure)."""
        argv = ["-q", *args]
        if overwrite and self.overwrite:
            argv.append("--overwrite")
        self.lines.append("simhsi " + shlex.join(argv))
        log("$ simhsi " + shlex.join(argv))
        if self.in_process:
            from click.testing import CliRunner

            from simhsi.cli.main import cli

            with _cwd(self.out):
                res = CliRunner().invoke(cli, argv, prog_name="simhsi")
            if res.stderr:
                sys.stderr.write(res.stderr)
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                raise res.exception
            code, stdout = res.exit_code, res.stdout
        else:
            proc = subprocess.run([*_simhsi_exe(), *argv], cwd=self.out, stdout=subprocess.PIPE, text=True,
                                  check=False)
            code, stdout = proc.returncode, proc.stdout
        for line in stdout.splitlines():
            print("    " + line, file=sys.stderr)
        if code != 0:
            raise SystemExit(f"prisma_pipeline: 'simhsi {args[0]}' failed with exit code {code} (see above)")
        return stdout

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage (a section of commands.sh)."""
        t0 = time.perf_counter()
        self.lines.append(f"\n# --- {name}")
        log(f"=== {name}")
        yield
        self.timings[name] = round(time.perf_counter() - t0, 2)
        log(f"{name}: {self.timings[name]:.1f} s")


def _write_text(path: Path, text: str) -> None:
    from simhsi._atomic import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        Path(tmp).write_text(text)


def _write_json(path: Path, obj: Any) -> None:
    _write_text(path, json.dumps(obj, indent=2, default=str).replace("NaN", "null") + "\n")


def write_input_product(truth_nc: Path, he5: Path, *, overwrite: bool) -> Path:
    """Write the rendered L2 reflectance of ``truth_nc`` as a georeferenced PRISMA L2D product."""
    from affine import Affine

    from simhsi.io import open_cube
    from simhsi.io.prisma import write_prisma_he5

    cube = open_cube(truth_nc)
    return write_prisma_he5(cube, he5, level="L2D", overwrite=overwrite, epsg=EPSG,
                            transform=Affine(30.0, 0.0, ORIGIN[0], 0.0, -30.0, ORIGIN[1]), sun_zenith=30.0,
                            start_time="2020-01-16T10:14:54", attrs={"simhsi_example": "prisma_pipeline.py"})


def crop_input(src: Path, crop: list[int], dst: Path, *, overwrite: bool) -> Path:
    """A window (y0 x0 h w, file pixels) of a real product, written as NetCDF for the later stages."""
    from simhsi.io import open_cube
    from simhsi.io.netcdf import write_netcdf

    y0, x0, h, w = crop
    cube = open_cube(src)
    if y0 + h > cube.sizes["y"] or x0 + w > cube.sizes["x"]:
        raise SystemExit(f"prisma_pipeline: --crop {y0} {x0} {h} {w} reaches outside {src} "
                         f"({cube.sizes['y']} x {cube.sizes['x']} px)")
    sub = cube.isel(y=slice(y0, y0 + h), x=slice(x0, x0 + w))
    return write_netcdf(sub.to_dataset(name=sub.name or "reflectance"), dst, overwrite=overwrite)


def run_abundances(unmix_nc: Path, run: int, dst: Path) -> Path:
    """One run's abundance maps of an unmix file as an abundance set (sample, endmember, y, x)."""
    from simhsi.io.netcdf import open_dataset, write_netcdf

    with open_dataset(unmix_nc, chunks=None) as ds:
        a = ds["abundances"].isel(run=run).load()
        method = str(ds["method"].values[run])
    a = a.drop_vars([c for c in a.coords if c not in ("endmember",)]).expand_dims(sample=[0])
    a.attrs.update(source_file=unmix_nc.name, method=method, run=run)
    return write_netcdf(a.to_dataset(name="abundances"), dst, overwrite=True)


def library_csv(unmix_nc: Path, run: int, dst: Path, sensor: str = "prisma") -> dict[str, Any]:
    """The run's endmember spectra as a library CSV covering every band of ``sensor``.

    An unmixed library stops where the product's valid bands stop (PRISMA L2: ~402-2497 nm), inside
    the reach of the sensor's first and last band responses (±1.5 FWHM). ``render-cube`` refuses such
    a library by default; here each spectrum is extended by its end values (flat) to the sensor's reach.
    """
    import numpy as np

    from simhsi.library import load_library
    from simhsi.sensors import load_sensor

    lib = load_library(unmix_nc, run=run)
    wl = np.asarray(lib["wavelength"].values, np.float64)
    E = np.asarray(lib.transpose("endmember", "band").values, np.float64)
    sen = load_sensor(sensor)
    sw, sf = np.asarray(sen.wavelength, float), np.nan_to_num(np.asarray(sen.fwhm, float))
    lo, hi = float(np.min(sw - 2.0 * sf)), float(np.max(sw + 2.0 * sf))
    rows_wl, rows = list(wl), list(E.T)
    if lo < wl[0]:
        rows_wl.insert(0, np.floor(lo))
        rows.insert(0, E[:, 0])
    if hi > wl[-1]:
        rows_wl.append(np.ceil(hi))
        rows.append(E[:, -1])
    names = [str(n) for n in lib["endmember"].values]
    src = str(lib.attrs.get("source", "")).replace(str(unmix_nc), f"{unmix_nc.parent.name}/{unmix_nc.name}")
    text = [f"# endmember spectra of {src}" +
            f"; flat-extended to {rows_wl[0]:.0f}-{rows_wl[-1]:.0f} nm to cover every {sensor} band",
            ",".join(["wavelength_nm", *names])]
    text += [",".join([f"{w:.4f}", *(f"{v:.6g}" for v in r)]) for w, r in zip(rows_wl, rows, strict=True)]
    _write_text(dst, "\n".join(text) + "\n")
    return {"unmixed_range_nm": [float(wl[0]), float(wl[-1])], "extended_range_nm": [rows_wl[0], rows_wl[-1]]}


def _artefacts(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*"))
            if p.is_file() and "checkpoints" not in p.parts and p.name != "summary.json"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=None,
                    help="A PRISMA .he5 product (L2C/L2D reflectance or L1 radiance). Default: a synthetic one.")
    ap.add_argument("--crop", type=int, nargs=4, metavar=("Y0", "X0", "H", "W"), default=None,
                    help="With --input: unmix only this window (file pixels); full products are 1000 x 1000 px.")
    ap.add_argument("--out", type=Path, required=True, help="Output folder (created).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of every stage (default 0).")
    ap.add_argument("--size", type=int, default=None, help="Synthetic input side in pixels (default 64).")
    ap.add_argument("--endmembers", "-p", type=int, default=None, help="Endmembers p (default 4).")
    ap.add_argument("--method", default=None, help="Unmixing method (default nmfqmv; `simhsi unmix --list-methods`).")
    ap.add_argument("--train-steps", type=int, default=None, help="Training steps (default 300).")
    ap.add_argument("--n-generate", type=int, default=None, help="Abundance maps to generate (default 4).")
    ap.add_argument("--smoke", action="store_true", help="Tiny fast run (CI).")
    ap.add_argument("--in-process", action="store_true",
                    help="Run the commands through click's runner in this process instead of subprocesses.")
    ap.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    args = ap.parse_args(argv)
    base = SMOKE if args.smoke else DEFAULTS
    for k, v in base.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.crop and not args.input:
        ap.error("--crop needs --input")
    if args.size < 16 or args.endmembers < 2 or args.train_steps < 1 or args.n_generate < 1:
        ap.error("need --size >= 16, --endmembers >= 2, --train-steps >= 1 and --n-generate >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise SystemExit(f"prisma_pipeline: {out} is not empty; pass --overwrite or another --out")
    for d in ("00_input", "01_info", "02_unmix", "03_train", "04_generate", "05_render", "06_validate"):
        (out / d).mkdir(parents=True, exist_ok=True)
    pl = Pipeline(out, in_process=args.in_process, overwrite=args.overwrite)
    p, seed, size = args.endmembers, args.seed, args.size
    summary: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    t_all = time.perf_counter()

    # ---------------------------------------------------------------- 0. the input product
    with pl.stage("0 input"):
        if args.input is None:
            truth = "00_input/truth.nc"
            pl.simhsi("generate-abundances", "--generator", "grf", "--n", "1", "--size", str(size), str(size),
                      "--endmembers", str(p), "--theta", str(max(size // 3, 4)), "--seed", str(seed),
                      "--out", "00_input/truth_abundances.nc")
            pl.simhsi("render-cube", "--sensor", "prisma", "--abundances", "00_input/truth_abundances.nc",
                      "--level", "L2", "--seed", str(seed), "--out", truth)
            he5 = f"00_input/{INPUT_NAME}"
            pl.note(f"python: simhsi.io.prisma.write_prisma_he5(open_cube('{truth}'), '{he5}', level='L2D', "
                    f"epsg={EPSG}, transform=...)")
            write_input_product(out / truth, out / he5, overwrite=args.overwrite)
            roundtrip = json.loads(pl.simhsi("validate", truth, he5, "--json", "--no-ssim", overwrite=False))
            _write_json(out / "00_input/roundtrip.json", roundtrip)
            summary["input_roundtrip"] = roundtrip["metrics"]
            unmix_input = he5
        else:
            he5 = str(args.input.resolve())
            truth = None
            unmix_input = he5
            if args.crop:
                unmix_input = "00_input/crop.nc"
                pl.note(f"python: window {args.crop} (y0 x0 h w) of {he5} written as {unmix_input}")
                crop_input(Path(he5), args.crop, out / unmix_input, overwrite=args.overwrite)

    with pl.stage("1 info"):
        info = json.loads(pl.simhsi("info", he5, "--json", overwrite=False))
        _write_json(out / "01_info/info.json", info)

    # ---------------------------------------------------------------- 1. unmixing
    with pl.stage("2 unmix"):
        ref = ["--reference", truth] if truth else []
        unmix = json.loads(pl.simhsi("unmix", unmix_input, "--endmembers", str(p), "--methods", args.method,
                                     "--seeds", str(seed), *ref, "--out", "02_unmix/unmix.nc",
                                     "--quicklook", "02_unmix/unmix.png", "--json"))
        _write_json(out / "02_unmix/unmix.json", unmix)
        summary["unmix"] = unmix["runs"][0]

    # ---------------------------------------------------------------- 2. training
    with pl.stage("3 train"):
        import yaml

        cfg = {**TRAIN_CONFIG, "p_values": [p], "steps": args.train_steps, "batch_size": args.batch_size,
               "checkpoint_every": max(args.train_steps // 2, 1)}
        _write_text(out / "03_train/train.yaml", yaml.safe_dump(cfg, sort_keys=False))
        text = pl.simhsi("train", "--data", "02_unmix/unmix.nc", "--config", "03_train/train.yaml",
                         "--seed", str(seed), "--device", "cpu", "--out", "03_train/model")
        m = re.search(r"final loss ([0-9.eE+-]+)", text)
        summary["train"] = {"steps": args.train_steps, "final_loss": float(m.group(1)) if m else None}

    # ---------------------------------------------------------------- 3. generation
    with pl.stage("4 generate"):
        pl.simhsi("generate-abundances", "--model", "03_train/model", "--n", str(args.n_generate),
                  "--size", str(size), str(size), "--endmembers", str(p), "--method", args.method,
                  "--sampler", "dpmpp", "--steps", str(args.sampler_steps), "--seed", str(seed), "--device", "cpu",
                  "--out", "04_generate/generated.nc", "--quicklook", "04_generate/generated.png")

    # ---------------------------------------------------------------- 4. rendering
    with pl.stage("5 render"):
        pl.note("python: the unmixed spectra (02_unmix/unmix.nc run 0) as a CSV library, flat-extended to "
                "cover every PRISMA band (examples/prisma_pipeline.py library_csv)")
        summary["library"] = library_csv(out / "02_unmix/unmix.nc", 0, out / "05_render/library.csv")
        pl.simhsi("render-cube", "--sensor", "prisma", "--abundances", "04_generate/generated.nc",
                  "--library", "05_render/library.csv", "--level", "L2", "--seed", str(seed + 1),
                  "--out", "05_render/synthetic.nc", "--quicklook", "05_render/synthetic.png")
        # closed loop: the unmixed maps rendered back through the sensor, to compare with the input
        pl.simhsi("render-cube", "--sensor", "prisma", "--abundances", "02_unmix/unmix.nc",
                  "--library", "05_render/library.csv", "--level", "L2", "--seed", str(seed + 2),
                  "--out", "05_render/reconstruction.nc")

    # ---------------------------------------------------------------- 5. validation
    with pl.stage("6 validate"):
        pl.note("python: run 0's abundance maps of 02_unmix/unmix.nc as an abundance set "
                "(06_validate/real_abundances.nc)")
        run_abundances(out / "02_unmix/unmix.nc", 0, out / "06_validate/real_abundances.nc")
        realism = json.loads(pl.simhsi("validate", "--abundances", "06_validate/real_abundances.nc",
                                       "04_generate/generated.nc", "--json", overwrite=False))
        _write_json(out / "06_validate/realism.json", realism)
        recon = json.loads(pl.simhsi("validate", unmix_input, "05_render/reconstruction.nc", "--json",
                                     overwrite=False))
        _write_json(out / "06_validate/reconstruction.json", recon)
        summary["realism"] = realism["metrics"]
        summary["reconstruction"] = recon["metrics"]

    summary["timings_s"] = {**pl.timings, "total": round(time.perf_counter() - t_all, 2)}
    _write_text(out / "commands.sh", "\n".join(pl.lines) + "\n")
    summary["artefacts_bytes"] = _artefacts(out)
    _write_json(out / "summary.json", summary)

    u, r, q = summary["unmix"], summary["reconstruction"], summary["realism"]
    log("artefacts:\n" + "\n".join(f"    {k:<48} {v / 1024:9.1f} KiB" for k, v in summary["artefacts_bytes"].items()))
    score = f", SAD {u['sad_deg']:.2f} deg, aRMSE {u['armse']:.2f} % vs truth" if "sad_deg" in u else ""
    log(f"unmix {u['method']} p={u['p']}: reconstruction RMSE {u['rmse']:.4g}{score}")
    log(f"train: {summary['train']['steps']} steps, final loss {summary['train']['final_loss']}")
    log(f"realism (unmixed vs generated): hist W1 {q['hist_w1']:.3f}, PSD log-distance {q['psd_log_distance']:.3f}, "
        f"purity {q['purity_real']:.3f} vs {q['purity_synth']:.3f}")
    log(f"closed loop (input vs re-rendered unmixing): SAD {r['sad_deg']:.3f} deg, RMSE {r['rmse']:.4g}, "
        f"PSNR {r['psnr_db']:.1f} dB, SSIM {r['ssim']:.3f}")
    log(f"done in {summary['timings_s']['total']:.0f} s; commands in {out / 'commands.sh'}")
    return 0


if __name__ == "__main__":
    from simhsi.errors import run_script

    run_script(main)
