"""``simhsi sensors``: list the shipped sensor definitions and show one (or a user's YAML)."""

from __future__ import annotations

import click

from simhsi.cli._options import json_option


@click.group(name="sensors")
def command() -> None:
    """List and show the sensor definitions (bands, GSD, noise model, DN conventions, provenance)."""


@command.command(name="list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Table of the shipped sensors."""
    import json

    from simhsi.sensors import list_sensors, load_sensor

    rows = []
    for name in list_sensors():
        s = load_sensor(name)
        d = s.summary()
        rows.append({
            "name": name,
            "bands": s.n_bands,
            "bad": int(s.bad_band.sum()),
            "range_nm": f"{s.wavelength.min():.0f}-{s.wavelength.max():.0f}",
            "gsd_m": s.gsd_m,
            "swath_km": s.swath_km,
            "srf": d["srf"],
            "noise": s.noise.kind + (" (placeholder)" if s.noise.placeholder else ""),
            "levels": ",".join(sorted(s.quantization.levels)),
            "description": s.description,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    cols = ["name", "bands", "bad", "range_nm", "gsd_m", "swath_km", "srf", "noise", "levels"]
    width = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    click.echo("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(_fmt(r[c]).ljust(width[c]) for c in cols))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@command.command(name="show")
@click.argument("sensor")
@click.option("--bands", "show_bands", is_flag=True, help="Also print the band table.")
@json_option
def show_cmd(sensor: str, show_bands: bool, as_json: bool) -> None:
    """Describe SENSOR (a shipped name or the path of a YAML definition)."""
    import json

    import numpy as np

    from simhsi.sensors import load_sensor

    s = load_sensor(sensor)
    if as_json:
        click.echo(json.dumps(s.to_dict(), indent=2, default=str))
        return
    d = s.summary()
    click.echo(f"{s.name}: {s.description}")
    if s.platform:
        click.echo(f"  platform       {s.platform}")
    fr = d["fwhm_range_nm"]
    click.echo(f"  bands          {s.n_bands} ({s.wavelength.min():.1f}-{s.wavelength.max():.1f} nm), "
               f"{d['srf']} SRF" + (f", FWHM {fr[0]:.1f}-{fr[1]:.1f} nm" if fr and d["srf"] == "gaussian" else ""))
    click.echo(f"  bad bands      {int(s.bad_band.sum())}" + (
        " (" + "; ".join(f"{n} x {r}" for r, n in _count(s.bad_band_reason, s.bad_band)) + ")"
        if s.bad_band.any() else ""))
    click.echo(f"  GSD / swath    {s.gsd_m:g} m / {s.swath_km:g} km")
    gsd = s.band_table.get("gsd_m")
    if gsd is not None and len(set(np.asarray(gsd, dtype=float).tolist())) > 1:
        for g in sorted(set(np.asarray(gsd, dtype=float).tolist())):
            names = [n for n, v in zip(s.band_names, gsd, strict=True) if float(v) == g]
            click.echo(f"    {g:g} m bands: {', '.join(names)}")
    click.echo(f"  bit depth      {s.bit_depth}")
    click.echo(f"  PSF sigma      {s.psf_sigma_gsd:g} GSD")
    click.echo(f"  noise          {s.noise.kind}{' (PLACEHOLDER)' if s.noise.placeholder else ''}: "
               f"{s.noise.provenance}")
    for k, m in s.noise_alternatives.items():
        click.echo(f"  noise alt.     {k}: {m.kind}: {m.provenance}")
    for lvl, q in sorted(s.quantization.levels.items()):
        conv = (f"{q.dtype}, no quantisation" if q.is_float else
                f"DN = round((v {'-' if q.offset < 0 else '+'} {abs(q.offset):g}) * {q.scale:g}), "
                f"{q.bits} bit {q.dtype}")
        click.echo(f"  {lvl} ({q.quantity}, {q.units}): {conv}")
    click.echo("  provenance:")
    for k, v in s.provenance.items():
        click.echo(f"    {k}: {v}")
    click.echo(f"  definition     {s.source}")
    if show_bands:
        click.echo("")
        click.echo(f"  {'name':10s} {'centre_nm':>10s} {'fwhm_nm':>8s} bad reason")
        for i in range(s.n_bands):
            fw = "" if not np.isfinite(s.fwhm[i]) else f"{s.fwhm[i]:.2f}"
            click.echo(f"  {s.band_names[i]:10s} {s.wavelength[i]:10.2f} {fw:>8s} {int(s.bad_band[i]):3d} "
                       f"{s.bad_band_reason[i]}")


def _count(reasons: list[str], mask) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for r, m in zip(reasons, mask, strict=True):
        if m:
            out[r or "unspecified"] = out.get(r or "unspecified", 0) + 1
    return list(out.items())
