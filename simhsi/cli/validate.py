"""``simhsi validate``: compare two cubes (SAD, RMSE, PSNR, SSIM, ERGAS) or two abundance sets (realism)."""

from __future__ import annotations

import click

from simhsi.cli._options import json_option


def _fmt(v) -> str:
    if isinstance(v, float):
        if v == float("inf"):
            return "inf"
        return f"{v:.6g}"
    return str(v)


@click.command(name="validate")
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("candidate", type=click.Path(dir_okay=False))
@click.option("--abundances", "abundances_mode", is_flag=True,
              help="Compare two abundance sets (REAL SYNTH NetCDF) with the realism metrics instead of cubes.")
@click.option("--tolerance", type=float, default=1.0, show_default=True,
              help="Band matching: largest wavelength difference (nm) between matched bands.")
@click.option("--variable", default=None, help="Cube variable in NetCDF files (default: found by dims).")
@click.option("--no-ssim", is_flag=True, help="Skip SSIM (the slowest metric).")
@json_option
def command(reference, candidate, abundances_mode, tolerance, variable, no_ssim, as_json) -> None:
    """Compare CANDIDATE to REFERENCE.

    Cubes (any format simhsi reads): bands matched by wavelength, then SAD (deg), RMSE, PSNR (dB), SSIM,
    ERGAS as defined in docs/metrics.md. With --abundances: realism metrics between two abundance sets.
    """
    import json

    if abundances_mode:
        result = _realism(reference, candidate)
        defs = {}
    else:
        from simhsi.io import open_cube
        from simhsi.metrics.cube import DEFINITIONS, cube_metrics

        kw = {"variable": variable} if variable else {}
        ref = open_cube(reference, **kw)
        cand = open_cube(candidate, **kw)
        result = cube_metrics(ref, cand, tolerance_nm=tolerance, ssim=not no_ssim)
        defs = DEFINITIONS
    if as_json:
        out = {"reference": reference, "candidate": candidate, "metrics": result}
        if defs:
            out["definitions"] = defs
        click.echo(json.dumps(out, indent=2, default=str).replace("Infinity", '"inf"'))
        return
    width = max(len(k) for k in result)
    click.echo(f"reference: {reference}\ncandidate: {candidate}")
    for k, v in result.items():
        click.echo(f"  {k:<{width}}  {_fmt(v)}")


def _realism(real_path: str, synth_path: str) -> dict:
    from simhsi.io.netcdf import open_dataset
    from simhsi.metrics.realism import realism_metrics
    from simhsi.render.scene import _abundance_var

    sets = []
    for path in (real_path, synth_path):
        ds = open_dataset(path, chunks=None)
        # Any leading dims (sample, run, ...) become the patch axis inside realism_metrics.
        sets.append(ds[_abundance_var(ds, path)].load())
    return {k: float(v) for k, v in realism_metrics(sets[0], sets[1]).items()}
