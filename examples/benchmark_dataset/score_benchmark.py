"""Score unmixing methods on a benchmark made by ``make_benchmark.py`` (HySUPP protocol).

What is scored, on every scene of ``--bench`` (its ``index.json``):

* our own dictionary: registered ``simhsi.unmixing`` methods by name (``--methods vca-fcls,nmfqmv``,
  ``all`` for every registered method, ``none``), each with p = the scene's true p and every ``--seeds``;
* results of an external tool: ``--external NAME=DIR`` (repeatable), where ``DIR/<scene_id>.mat`` holds
  ``E`` (L x p, or p x L) and ``A`` (p x N in the benchmark's column-major pixel order, N x p, or a
  3-D array as HySUPP's ``Estimate`` writes it, ``A.reshape(p, H, W)`` of that p x N matrix), optionally
  ``wavelength`` (nm, when E has fewer rows than the benchmark's L bands) and ``runtime_s`` (seconds);
  a scene without a file is skipped with a message;
* the oracle: FCLS with the true endmembers (the aRMSE floor the noise leaves).

Protocol (``simhsi.metrics.unmixing.score_result``): Hungarian alignment on the Euclidean distance
between abundance maps, endmembers follow; SAD in degrees (mean over endmembers), aRMSE x 100, eRMSE x 100
and SRE (dB); time = the method's fit time (``runtime_s``, preprocessing excluded). Our methods divide the
cube by its maximum before fitting and return endmembers in reflectance. By default they unmix the ``.mat``
cube (``Y``, all L bands: exactly what an external tool sees); ``--input netcdf`` unmixes the NetCDF
scene instead (the sensor's ``bad_band`` flags are then honoured, as for real data).

Writes to ``--out``: ``scores.csv`` (one row per method x scene x seed; per-endmember SAD and aRMSE in
the ground truth's endmember order), ``scores.md`` (mean ± std over scenes and seeds per method, and a
method x scene table of SAD / aRMSE / seconds), ``scores.json`` (rows, summary and settings), and with ``--save-results`` our estimates as ``results/<method>_seed<s>/<scene_id>.mat``
in the external format (so ``--external ours=results/vca-fcls_seed0`` reproduces their scores).

    python examples/benchmark_dataset/score_benchmark.py --bench bench --out bench/scores
    python examples/benchmark_dataset/score_benchmark.py --bench bench --out s2 --methods none \\
        --external hysupp_cnnaeu=hysupp_runs/cnnaeu
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_METHODS = ("vca-fcls", "nfindr-fcls", "sisal-fcls", "bayes")
SMOKE_METHODS = ("vca-fcls", "nfindr-fcls")
ORACLE = "oracle-fcls (true E)"
FIELDS = ("method", "source", "scene_id", "seed", "p", "snr_scale", "snr_db", "sad_deg", "armse", "ermse",
          "sre_db", "runtime_s", "status", "sad_per_endmember", "armse_per_endmember")
E_KEYS = ("E", "Ehat", "M", "endmembers")
A_KEYS = ("A", "Ahat", "abundances")


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(f"[score_benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ scenes
def load_index(bench: Path) -> dict[str, Any]:
    """The benchmark's ``index.json``."""
    from simhsi.errors import FormatError, InputFileError

    f = Path(bench) / "index.json"
    if not f.is_file():
        raise InputFileError("no benchmark index here; run make_benchmark.py --out DIR first", path=f)
    try:
        index = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON ({exc})", path=f) from None
    if not isinstance(index, dict) or not isinstance(index.get("scenes"), list):
        raise FormatError("no 'scenes' list; is this a make_benchmark.py index?", path=f)
    return index


def load_scene(bench: Path, row: dict[str, Any], source: str) -> tuple[Any, Any, dict[str, Any]]:
    """(cube (y, x, band), reference Dataset with endmembers/abundances, .mat variables) of one scene."""
    import simhsi.io
    from simhsi.io.mat import load_mat, read_mat_ground_truth

    mat_path = bench / row["mat"]
    d = load_mat(mat_path)
    wl = np.asarray(d["wavelength"], dtype=np.float64).ravel()
    fw = np.asarray(d["fwhm"], dtype=np.float64).ravel()
    if source == "netcdf":
        from simhsi.io.netcdf import open_dataset

        nc = bench / row["netcdf"]
        cube = simhsi.io.open_cube(nc).load()
        ref = open_dataset(nc)[["endmembers", "abundances"]].load()
    else:
        cube = simhsi.io.open_cube(mat_path, format="mat", wavelength=wl, fwhm=fw)
        ref = read_mat_ground_truth(mat_path, wavelength=wl, fwhm=fw, dtype=np.float64)
    return cube, ref, d


def columns_to_maps(A: np.ndarray, h: int, w: int) -> np.ndarray:
    """(p, N) in MATLAB column-major pixel order -> (p, H, W)."""
    p = A.shape[0]
    return np.moveaxis(A.T.reshape(h, w, p, order="F"), 2, 0)


def maps_to_columns(a: np.ndarray) -> np.ndarray:
    """(p, H, W) -> (p, N) in MATLAB column-major pixel order."""
    p, h, w = a.shape
    return np.moveaxis(a, 0, 2).reshape(h * w, p, order="F").T


def result_dataset(E: np.ndarray, A_maps: np.ndarray, wavelength: np.ndarray, method: str,
                   runtime_s: float) -> Any:
    """A minimal unmixing-result Dataset (what :func:`score_result` reads) from E (L x p), A (p, H, W)."""
    import xarray as xr

    from simhsi.conventions import default_endmember_names

    p = E.shape[1]
    return xr.Dataset(
        {"endmembers": (("endmember", "band"), np.asarray(E, dtype=np.float64).T),
         "abundances": (("endmember", "y", "x"), np.asarray(A_maps, dtype=np.float64))},
        coords={"endmember": default_endmember_names(p), "wavelength": ("band", np.asarray(wavelength, float))},
        attrs={"method": method, "runtime_s": float(runtime_s)},
    )


def _pick(d: dict[str, Any], keys: tuple[str, ...], what: str, path: Path) -> np.ndarray:
    from simhsi.errors import FormatError

    for k in keys:
        if k in d and isinstance(d[k], np.ndarray) and d[k].dtype.kind in "iuf":
            return np.asarray(d[k], dtype=np.float64)
    raise FormatError(f"no {what} variable (tried {', '.join(keys)}); it holds {', '.join(d) or 'nothing'}",
                      path=path)


def read_external(path: Path, scene: dict[str, Any], wl_bench: np.ndarray, method: str) -> Any:
    """An external result file -> result Dataset on the benchmark's pixel grid (see module doc)."""
    from simhsi.errors import DataError
    from simhsi.io.mat import load_mat

    d = load_mat(path)
    E = _pick(d, E_KEYS, "endmember", path)
    A = _pick(d, A_KEYS, "abundance", path)
    p, h, w = int(scene["p"]), int(scene["height"]), int(scene["width"])
    n = h * w
    wl = np.asarray(d["wavelength"], dtype=np.float64).ravel() if "wavelength" in d else wl_bench
    L = wl.size
    if E.ndim != 2:
        raise DataError(f"E has shape {E.shape}; expected (L, p)", path=path)
    if E.shape == (p, L) and E.shape != (L, p):
        E = E.T
    if E.shape != (L, p):
        raise DataError(f"E has shape {E.shape}, expected ({L}, {p}) (bands, endmembers); give a 'wavelength' "
                        "variable when the tool dropped bands", path=path)
    if A.ndim == 3:
        if A.shape[0] != p and A.shape[-1] == p:
            A = np.moveaxis(A, -1, 0)
        A = A.reshape(A.shape[0], -1)  # HySUPP Estimate: row-major view of the (p, N) matrix
    if A.ndim != 2 or A.size != p * n:
        raise DataError(f"A has shape {A.shape}; expected ({p}, {n}) for this {h} x {w} scene", path=path)
    if A.shape != (p, n):
        A = A.T
    runtime = float(np.ravel(d["runtime_s"])[0]) if "runtime_s" in d else float("nan")
    return result_dataset(E, columns_to_maps(A, h, w), wl, method, runtime)


def save_result(path: Path, res: Any, overwrite: bool) -> None:
    """Write one of our results in the external format (E, A (p x N column-major), wavelength, runtime_s)."""
    import scipy.io as sio

    from simhsi._atomic import atomic_path

    E = np.asarray(res["endmembers"].transpose("endmember", "band").values, dtype=np.float64).T
    A = np.asarray(res["abundances"].transpose("endmember", "y", "x").values, dtype=np.float64)
    mat = {"E": E, "A": maps_to_columns(A), "wavelength": np.asarray(res["wavelength"].values, float),
           "runtime_s": float(res.attrs.get("runtime_s", np.nan)), "method": str(res.attrs.get("method", ""))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        sio.savemat(fh, mat, do_compression=True, oned_as="column")


# ------------------------------------------------------------------------------------------ scoring
def _row(method: str, source: str, scene: dict[str, Any], seed: Any, scores: dict[str, Any] | None,
         runtime: float, status: str = "ok") -> dict[str, Any]:
    s = scores or {}
    return {"method": method, "source": source, "scene_id": scene["scene_id"], "seed": seed, "p": int(scene["p"]),
            "snr_scale": float(scene["snr_scale"]), "snr_db": float(scene["snr_db"]),
            "sad_deg": s.get("sad_deg", math.nan), "armse": s.get("armse", math.nan),
            "ermse": s.get("ermse", math.nan), "sre_db": s.get("sre_db", math.nan),
            "runtime_s": float(runtime), "status": status,
            # ground-truth endmember order (names in the benchmark index), ';'-separated
            "sad_per_endmember": ";".join(f"{v:.3f}" for v in s.get("sad_per_endmember", [])),
            "armse_per_endmember": ";".join(f"{v:.3f}" for v in s.get("armse_per_endmember", []))}


def oracle_result(cube: Any, ref: Any) -> Any:
    """FCLS abundances with the true endmembers (at the cube's kept bands), as an unmixing result."""
    from simhsi.unmixing._base import build_result, prepare, reconstruction_rmse
    from simhsi.unmixing.fcls import fcls

    p = ref.sizes["endmember"]
    prep = prepare(cube, p, owner="oracle")
    E = np.asarray(ref["endmembers"].transpose("endmember", "band").values, dtype=np.float64).T[prep.band_index]
    t0 = time.perf_counter()
    A = fcls(prep.Y, E / prep.scale)
    rt = time.perf_counter() - t0
    return build_result(cube, prep, E, A, method=ORACLE, params={}, runtime_s=rt,
                        rmse=reconstruction_rmse(prep.Y, E / prep.scale, A) * prep.scale)


def score_scene(bench: Path, scene: dict[str, Any], args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """Every requested method on one scene; one row per run (errors recorded, not raised)."""
    from simhsi.errors import SimhsiError
    from simhsi.metrics.unmixing import score_result
    from simhsi.unmixing import get_method

    cube, ref, d = load_scene(bench, scene, args.input)
    p, sid = int(scene["p"]), scene["scene_id"]
    rows = []
    if not args.no_oracle:
        res = oracle_result(cube, ref)
        rows.append(_row(ORACLE, "oracle", scene, "", score_result(res, ref), res.attrs["runtime_s"]))
    for m in args.methods:
        for seed in args.seeds:
            try:
                res = get_method(m)(n_endmembers=p, seed=seed).fit(cube)
                sc = score_result(res, ref)
            except (SimhsiError, RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
                log(f"{sid} {m} seed {seed}: FAILED ({type(exc).__name__}: {exc})")
                rows.append(_row(m, "simhsi", scene, seed, None, math.nan, f"error: {exc}"))
                continue
            rows.append(_row(m, "simhsi", scene, seed, sc, res.attrs["runtime_s"]))
            log(f"{sid} {m} seed {seed}: SAD {sc['sad_deg']:.2f} deg, aRMSE {sc['armse']:.2f}, "
                f"{res.attrs['runtime_s']:.2f} s")
            if args.save_results:
                save_result(out / "results" / f"{m}_seed{seed}" / f"{sid}.mat", res, args.overwrite)
    wl_bench = np.asarray(d["wavelength"], dtype=np.float64).ravel()
    for name, folder in args.external:
        f = folder / f"{sid}.mat"
        if not f.is_file():
            log(f"{sid} {name}: no result file {f}; skipped")
            continue
        try:
            res = read_external(f, scene, wl_bench, name)
            sc = score_result(res, ref)
        except SimhsiError as exc:
            log(f"{sid} {name}: FAILED ({exc})")
            rows.append(_row(name, "external", scene, "", None, math.nan, f"error: {exc}"))
            continue
        rows.append(_row(name, "external", scene, "", sc, res.attrs["runtime_s"]))
        log(f"{sid} {name} (external): SAD {sc['sad_deg']:.2f} deg, aRMSE {sc['armse']:.2f}")
    return rows


# ------------------------------------------------------------------------------------------ tables
def _ms(values: list[float], fmt: str = "{:.2f}") -> str:
    a = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if a.size == 0:
        return "–"
    s = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    return f"{fmt.format(float(a.mean()))} ± {fmt.format(s)}"


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: runs, failures, mean ± std (sample) of each score over all its scenes and seeds."""
    out = []
    for m in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == m]
        ok = [r for r in rs if r["status"] == "ok"]
        s = {"method": m, "source": rs[0]["source"], "runs": len(rs), "failed": len(rs) - len(ok)}
        for k in ("sad_deg", "armse", "ermse", "sre_db", "runtime_s"):
            v = np.asarray([r[k] for r in ok], dtype=np.float64)
            v = v[np.isfinite(v)]
            s[f"{k}_mean"] = float(v.mean()) if v.size else math.nan
            s[f"{k}_std"] = float(v.std(ddof=1)) if v.size > 1 else (0.0 if v.size else math.nan)
        out.append(s)
    return out


def markdown(rows: list[dict[str, Any]], scenes: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The Markdown report: summary table and method x scene table."""
    lines = ["# Unmixing benchmark scores", "",
             f"Benchmark `{settings['bench']}`, {len(scenes)} scenes; cube read from the "
             f"{settings['input']} files; seeds {settings['seeds']}. HySUPP protocol "
             "(`simhsi.metrics.unmixing.score_result`): SAD in degrees, aRMSE ×100, SRE in dB, seconds = fit time.",
             "", "## Mean ± std over scenes and seeds", "",
             "| method | source | runs | SAD° | aRMSE | SRE dB | s |", "|---|---|---|---|---|---|---|"]
    for m in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == m]
        ok = [r for r in rs if r["status"] == "ok"]
        fail = len(rs) - len(ok)
        runs = f"{len(ok)}" + (f" (+{fail} failed)" if fail else "")
        lines.append(f"| {m} | {rs[0]['source']} | {runs} | {_ms([r['sad_deg'] for r in ok])} | "
                     f"{_ms([r['armse'] for r in ok])} | {_ms([r['sre_db'] for r in ok])} | "
                     f"{_ms([r['runtime_s'] for r in ok], '{:.3g}')} |")
    lines += ["", "## Per scene: SAD° / aRMSE / seconds (mean over seeds)", ""]
    head = [f"{s['scene_id']} (p={s['p']}, {float(s['snr_db']):.0f} dB)" for s in scenes]
    lines.append("| method | " + " | ".join(head) + " |")
    lines.append("|---|" + "---|" * len(scenes))
    for m in dict.fromkeys(r["method"] for r in rows):
        cells = []
        for s in scenes:
            ok = [r for r in rows if r["method"] == m and r["scene_id"] == s["scene_id"] and r["status"] == "ok"]
            if not ok:
                cells.append("–")
                continue
            sad, arm, rt = (float(np.mean([r[k] for r in ok])) for k in ("sad_deg", "armse", "runtime_s"))
            cells.append(f"{sad:.2f} / {arm:.2f} / " + ("–" if not np.isfinite(rt) else f"{rt:.3g}"))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Scenes: " + "; ".join(f"{s['scene_id']}: {s['endmember_names'].replace(';', ', ')} "
                                         f"(snr_scale {s['snr_scale']}, pure-pixel fraction {s['pure_fraction']})"
                                         for s in scenes), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ CLI
def _external(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep:
        folder, name = text, Path(text).name
    if not name or not folder:
        raise argparse.ArgumentTypeError(f"--external takes NAME=DIR, got {text!r}")
    return name, Path(folder)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", required=True, type=Path, help="benchmark folder (make_benchmark.py --out)")
    ap.add_argument("--out", required=True, type=Path, help="output folder for the tables (created)")
    ap.add_argument("--methods", default=None,
                    help=f"comma-separated registered methods, 'all' or 'none' (default {','.join(DEFAULT_METHODS)})")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of our methods (default 0)")
    ap.add_argument("--external", type=_external, action="append", default=[],
                    help="NAME=DIR with DIR/<scene_id>.mat result files of another tool (repeatable)")
    ap.add_argument("--scenes", default=None, help="comma-separated scene ids (default all)")
    ap.add_argument("--input", choices=("mat", "netcdf"), default="mat",
                    help="cube our methods unmix: the .mat Y (default) or the NetCDF scene")
    ap.add_argument("--no-oracle", action="store_true", help="skip the FCLS-with-true-endmembers row")
    ap.add_argument("--save-results", action="store_true", help="also write our estimates as .mat (external format)")
    ap.add_argument("--seed", type=int, default=None, help="alias of --seeds SEED")
    ap.add_argument("--smoke", action="store_true", help=f"fast CI run: methods {','.join(SMOKE_METHODS)}")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the scoring; returns 0 (errors raise SimhsiError with a one-line message)."""
    args = build_parser().parse_args(argv)
    from simhsi.errors import OutputError, ParameterError
    from simhsi.unmixing import available_methods

    if args.seed is not None:
        args.seeds = [args.seed]
    spec = args.methods or ",".join(SMOKE_METHODS if args.smoke else DEFAULT_METHODS)
    if spec.strip().lower() == "all":
        args.methods = available_methods()
    elif spec.strip().lower() == "none":
        args.methods = []
    else:
        args.methods = [m.strip() for m in spec.split(",") if m.strip()]
        unknown = [m for m in args.methods if m not in available_methods()]
        if unknown:
            raise ParameterError(f"unknown unmixing method(s) {', '.join(unknown)}; available: "
                                 f"{', '.join(available_methods())}, or 'all' / 'none'")
    for name, folder in args.external:
        if not folder.is_dir():
            raise ParameterError(f"--external {name}={folder}: no such folder")
    bench, out = Path(args.bench), Path(args.out)
    index = load_index(bench)
    scenes = index["scenes"]
    if args.scenes:
        want = [s.strip() for s in args.scenes.split(",") if s.strip()]
        missing = sorted(set(want) - {s["scene_id"] for s in scenes})
        if missing:
            raise ParameterError(f"--scenes: {', '.join(missing)} not in {bench / 'index.json'}")
        scenes = [s for s in scenes if s["scene_id"] in want]
    if not args.methods and not args.external and args.no_oracle:
        raise ParameterError("nothing to score: give --methods, --external, or drop --no-oracle")
    for f in ("scores.csv", "scores.md", "scores.json"):
        if (out / f).exists() and not args.overwrite:
            raise OutputError("already exists; pass --overwrite to replace it", path=out / f)
    out.mkdir(parents=True, exist_ok=True)
    log(f"{len(scenes)} scenes x methods {', '.join(args.methods) or '-'} x seeds {args.seeds}"
        + (f" + external {', '.join(n for n, _ in args.external)}" if args.external else ""))
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for scene in scenes:
        rows += score_scene(bench, scene, args, out)
    settings = {"bench": str(bench), "input": args.input, "methods": args.methods, "seeds": args.seeds,
                "external": [[n, str(f)] for n, f in args.external], "oracle": not args.no_oracle,
                "scenes": [s["scene_id"] for s in scenes]}
    from simhsi.conventions import provenance_attrs
    from simhsi.metrics.unmixing import DEFINITIONS

    report = {"settings": settings, "definitions": DEFINITIONS, "provenance": provenance_attrs(),
                  "summary": summarise(rows), "rows": rows}
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    wr.writeheader()
    wr.writerows(rows)
    _write_text(out / "scores.csv", buf.getvalue(), args.overwrite)
    _write_text(out / "scores.md", markdown(rows, scenes, settings), args.overwrite)
    _write_text(out / "scores.json", json.dumps(_no_nan(report), indent=2, default=_json_default) + "\n",
                args.overwrite)
    print(markdown(rows, scenes, settings))
    log(f"done in {time.perf_counter() - t0:.1f} s: {out / 'scores.md'}")
    return 0


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _no_nan(v: Any) -> Any:
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(v, dict):
        return {k: _no_nan(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_no_nan(x) for x in v]
    if isinstance(v, float | np.floating) and not np.isfinite(v):
        return None
    return v


def _write_text(path: Path, text: str, overwrite: bool) -> None:
    from simhsi._atomic import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    from simhsi.errors import run_script

    run_script(main)
