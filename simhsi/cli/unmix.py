"""``simhsi unmix``: run the unmixing dictionary (methods × p × seeds) on one cube, write every run."""

from __future__ import annotations

from typing import Any

import click

from simhsi.cli._options import json_option, overwrite_option


class _IntListOption(click.Option):
    """An option taking one or more ints: ``--endmembers 3 4 5``, ``--endmembers 3,4,5`` or repeated.

    After the first value, following tokens that are integers (or comma lists of integers) are taken
    too; anything else (another option, the INPUT path) ends the list.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        table = getattr(parser, "_long_opt", {})
        for name in self.opts:
            opt = table.get(name) or getattr(parser, "_short_opt", {}).get(name)
            if opt is None:  # pragma: no cover  (other click internals: repeated/comma forms still work)
                continue
            original = opt.process

            def process(value: Any, state: Any, _orig=original) -> None:
                _orig(value, state)
                while state.rargs and _is_int_list(state.rargs[0]):
                    _orig(state.rargs.pop(0), state)

            opt.process = process


def _is_int_list(token: str) -> bool:
    parts = [t for t in token.split(",") if t.strip()]
    return bool(parts) and all(t.strip().lstrip("+").isdigit() for t in parts)


def _parse_ints(values: tuple[str, ...], name: str) -> list[int]:
    from simhsi.errors import ParameterError

    out: list[int] = []
    for v in values:
        for tok in str(v).split(","):
            tok = tok.strip()
            if not tok:
                continue
            try:
                out.append(int(tok))
            except ValueError:
                raise ParameterError(f"--{name}: {tok!r} is not an integer; give e.g. --{name} 3 4 5") from None
    return list(dict.fromkeys(out))


def _load_input(name: str) -> Any:
    """The cube to unmix: a file any simhsi reader opens, or a bundled scene name (``samson``,
    ``jasper_ridge``), normalised by its maximum as in the HySUPP protocol."""
    from pathlib import Path

    import simhsi.data
    from simhsi.io import open_cube

    key = name.lower().replace("-", "_")
    key = "jasper_ridge" if key == "jasper" else key
    if not Path(name).exists() and key in simhsi.data.available():
        ds = simhsi.data.load(key, normalize=True)
        if "cube" in ds:
            return ds["cube"]
    return open_cube(name)


def _load_reference(ref: str) -> Any:
    """A bundled dataset name (``samson``, ``jasper_ridge``) or a NetCDF file with endmembers/abundances."""
    from pathlib import Path

    import simhsi.data
    from simhsi.errors import FormatError, ParameterError

    key = ref.lower().replace("-", "_")
    if key in simhsi.data.available() or key == "jasper":
        ds = simhsi.data.load(key)
        if "abundances" not in ds or "endmembers" not in ds:
            raise ParameterError(f"--reference {ref!r} has no endmember/abundance ground truth")
        return ds
    if not Path(ref).exists():
        raise ParameterError(f"--reference {ref!r} is neither a bundled dataset ({', '.join(simhsi.data.available())})"
                             " nor an existing file")
    from simhsi.io.netcdf import open_dataset

    ds = open_dataset(ref, chunks=None)
    missing = [v for v in ("endmembers", "abundances") if v not in ds.data_vars]
    if missing:
        raise FormatError(f"reference file has no {' or '.join(missing)} variable; it needs 'endmembers' "
                          "(endmember, band) and 'abundances' (endmember, y, x)", path=ref)
    return ds.load()


def write_quicklook(results: list, path: Any, *, overwrite: bool = False) -> None:
    """PNG: one row per run, abundance maps then the endmember spectra (matplotlib Agg)."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from simhsi._atomic import atomic_path

    n = len(results)
    pmax = max(int(r.sizes["endmember"]) for r in results)
    fig, axes = plt.subplots(n, pmax + 1, figsize=(2.2 * (pmax + 1) + 1.5, 2.1 * n), squeeze=False)
    for i, r in enumerate(results):
        p = int(r.sizes["endmember"])
        A = r["abundances"].transpose("endmember", "y", "x").values
        E = r["endmembers"].transpose("endmember", "band").values
        wl = np.asarray(r["wavelength"].values)
        for j in range(pmax):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < p:
                ax.imshow(A[j], vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
                ax.set_title(f"em{j}", fontsize=8)
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(f"{r.attrs.get('method')}\np={p} seed={r.attrs.get('seed')}", fontsize=8)
        ax = axes[i, pmax]
        for j in range(p):
            ax.plot(wl, E[j], lw=1, label=f"em{j}")
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5)
        if i == n - 1:
            ax.set_xlabel("wavelength (nm)", fontsize=7)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it 0600
    plt.close(fig)


@click.command(name="unmix")
@click.argument("input", type=str, required=False)
@click.option("--endmembers", "-p", "endmembers", cls=_IntListOption, default=("3", "4", "5"),
              show_default=True, help="Numbers of endmembers p to try (e.g. --endmembers 3 4 5).")
@click.option("--methods", "-m", default=None,
              help="Comma-separated method names (default: every registered method; see --list-methods).")
@click.option("--seeds", "seeds", cls=_IntListOption, default=("0",), show_default=True,
              help="Random seeds (e.g. --seeds 0 1 2); one run per method, p and seed.")
@click.option("--out", "-o", "out", default=None, type=click.Path(dir_okay=False),
              help="Output NetCDF file with every run (what `simhsi train` reads).")
@click.option("--reference", default=None,
              help="Ground truth for SAD/aRMSE: a bundled dataset (samson, jasper_ridge) or a NetCDF file "
                   "with 'endmembers' and 'abundances'. Runs with another p than the reference are not scored.")
@click.option("--quicklook", default=None, type=click.Path(dir_okay=False),
              help="Also write a PNG with each run's abundance maps and endmember spectra.")
@click.option("--list-methods", is_flag=True, help="Print the registered methods and exit.")
@overwrite_option
@json_option
def command(input: str | None, endmembers: tuple[str, ...], methods: str | None, seeds: tuple[str, ...], out: str | None,
            reference: str | None, quicklook: str | None, list_methods: bool, overwrite: bool,
            as_json: bool) -> None:
    """Unmix INPUT (any cube format simhsi reads, or a bundled scene: samson, jasper_ridge) with every
    METHOD × p × seed; write all runs to --out.

    All arguments are checked before anything runs; nothing is written when one is wrong.
    """
    import json
    import time

    import numpy as np
    from tqdm.auto import tqdm

    from simhsi._atomic import check_output_path
    from simhsi.cli._options import progress_enabled
    from simhsi.errors import ParameterError
    from simhsi.unmixing import available_methods, get_method

    if list_methods:
        for name in available_methods():
            click.echo(f"{name:<14} {get_method(name).family}")
        return
    # -- validate everything first --------------------------------------------------------------
    if input is None:
        raise click.UsageError("missing argument INPUT (the cube to unmix)")
    if out is None:
        raise click.UsageError("missing option --out (the NetCDF file to write)")
    names = available_methods() if not methods else [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise ParameterError("--methods is empty; give e.g. --methods vca-fcls,sisal-fcls")
    for m in names:
        get_method(m)  # unknown name -> ParameterError listing the available ones
    names = list(dict.fromkeys(names))
    ps = _parse_ints(endmembers, "endmembers")
    seed_list = _parse_ints(seeds, "seeds")
    if not ps:
        raise ParameterError("--endmembers is empty; give e.g. --endmembers 3 4 5")
    if not seed_list:
        raise ParameterError("--seeds is empty; give e.g. --seeds 0 1 2")
    for p in ps:
        if p < 2:
            raise ParameterError(f"--endmembers {p}: p must be an int >= 2")
    for s in seed_list:
        if s < 0:
            raise ParameterError(f"--seeds {s}: seeds must be >= 0")
    out_path = check_output_path(out, overwrite)
    if quicklook is not None:
        ql = check_output_path(quicklook, overwrite)
        if ql.resolve() == out_path.resolve():
            raise ParameterError("--quicklook and --out name the same file; give two names")
    cube = _load_input(input)
    n_bands = int(cube.sizes["band"])
    if "bad_band" in cube.coords:
        n_bands -= int(np.asarray(cube["bad_band"].values, dtype=bool).sum())
    for p in ps:
        if p >= n_bands:
            raise ParameterError(f"--endmembers {p}: p must be smaller than the {n_bands} usable bands of {input}")
    ref = _load_reference(reference) if reference is not None else None
    ref_p = int(ref.sizes["endmember"]) if ref is not None else None
    if ref is not None:
        h, w = int(cube.sizes["y"]), int(cube.sizes["x"])
        if (int(ref.sizes["y"]), int(ref.sizes["x"])) != (h, w):
            raise ParameterError(f"--reference {reference!r} is {ref.sizes['y']}x{ref.sizes['x']} pixels but "
                                 f"{input} is {h}x{w}")

    # -- run --------------------------------------------------------------------------------------
    from simhsi.metrics.unmixing import score_result
    from simhsi.unmixing.results import stack_results, write_unmix_results

    cube = cube.load()
    progress = progress_enabled()
    runs = [(m, p, s) for m in names for p in ps for s in seed_list]
    results = []
    t_all = time.perf_counter()
    for m, p, s in runs:
        if progress:
            tqdm.write(f"run {len(results) + 1}/{len(runs)}: {m} p={p} seed={s}")
        res = get_method(m)(p, seed=s).fit(cube, progress=progress)  # the method shows the run's bar
        if ref is not None and p == ref_p:
            sc = score_result(res, ref)
            res.attrs["sad_deg"] = sc["sad_deg"]
            res.attrs["armse"] = sc["armse"]
        results.append(res)
    ds = stack_results(results, source_file=input, reference=reference)
    write_unmix_results(ds, out_path, overwrite=overwrite)
    if quicklook is not None:
        write_quicklook(results, quicklook, overwrite=overwrite)

    rows = [{"method": r.attrs["method"], "p": int(r.attrs["n_endmembers"]), "seed": int(r.attrs["seed"]),
             "runtime_s": float(r.attrs["runtime_s"]), "rmse": float(r.attrs["rmse"]),
             **({"sad_deg": r.attrs.get("sad_deg", float("nan")), "armse": r.attrs.get("armse", float("nan"))}
                if ref is not None else {})} for r in results]
    if as_json:
        click.echo(json.dumps({"input": input, "out": str(out_path), "reference": reference, "runs": rows,
                               "total_s": time.perf_counter() - t_all}, indent=2).replace("NaN", "null"))
        return
    head = f"{'method':<14} {'p':>2} {'seed':>4} {'runtime_s':>9} {'rmse':>10}"
    if ref is not None:
        head += f" {'SAD_deg':>8} {'aRMSE':>7}"
    click.echo(head)
    for r in rows:
        line = f"{r['method']:<14} {r['p']:>2} {r['seed']:>4} {r['runtime_s']:>9.2f} {r['rmse']:>10.4g}"
        if ref is not None:
            line += f" {r['sad_deg']:>8.2f} {r['armse']:>7.2f}"
        click.echo(line)
    click.echo(f"wrote {len(rows)} runs to {out_path}" + (f" and {quicklook}" if quicklook else ""))
