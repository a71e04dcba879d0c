"""``simhsi generate-abundances``: synthesise abundance maps with the DDPM or Gaussian random fields."""

from __future__ import annotations

import click

from simhsi.cli._options import overwrite_option, progress_enabled


def write_abundance_quicklook(abund, path, *, max_samples: int = 8) -> None:
    """PNG grid: one row per sample (at most ``max_samples``), one column per endmember (0..1 colour scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from simhsi._atomic import atomic_path

    v = np.asarray(abund.values)
    if v.ndim == 3:
        v = v[None]
    n = min(len(v), max_samples)
    p = v.shape[1]
    fig, axes = plt.subplots(n, p, figsize=(1.8 * p, 1.8 * n), squeeze=False)
    for i in range(n):
        for j in range(p):
            ax = axes[i, j]
            ax.imshow(v[i, j], vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(str(abund["endmember"].values[j]), fontsize=8)
    fig.suptitle(f"{abund.attrs.get('generator', '')} {abund.attrs.get('sampler', '')} abundances", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


@click.command(name="generate-abundances")
@click.option("--generator", type=click.Choice(["ddpm", "grf"]), default="ddpm", show_default=True,
              help="ddpm: the trained diffusion model; grf: Gaussian random fields (no training).")
@click.option("--model", "model", type=click.Path(file_okay=False),
              help="Model directory from 'simhsi train' (default: the packaged default model).")
@click.option("--n", "n", type=int, default=1, show_default=True, help="Number of maps.")
@click.option("--size", nargs=2, type=int, default=None, help="Map size H W in pixels (default: the model's patch; "
              "larger sizes give one seamless scene).")
@click.option("--endmembers", "p", type=int, default=3, show_default=True, help="Number of endmembers p.")
@click.option("--method", type=str, default=None, help="Unmixing method to condition on (default: any).")
@click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale (1: purely "
              "conditional; > 1 strengthens the condition at twice the cost).")
@click.option("--sampler", type=click.Choice(["dpmpp-sde", "dpmpp", "ddim", "ddpm"]), default="dpmpp-sde",
              show_default=True, help="dpmpp-sde: SDE-DPM-Solver++(2M), stochastic; dpmpp: DPM-Solver++(2M), the ODE "
              "solver; ddim; ddpm: ancestral, all training steps.")
@click.option("--steps", type=int, default=None,
              help="Sampler steps (default: dpmpp-sde 30, dpmpp 20, ddim 50, ddpm all T).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Samples denoised together.")
@click.option("--kernel", type=click.Choice(["spheric", "exponential", "gaussian", "rational", "matern"]),
              default="spheric", show_default=True, help="GRF covariance kernel (--generator grf).")
@click.option("--theta", type=float, default=None, help="GRF range in pixels (default: half the map side).")
@click.option("--device", type=str, default=None, help="cpu, cuda, cuda:N (default: CUDA when available).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output NetCDF file.")
@click.option("--quicklook", type=click.Path(dir_okay=False), default=None, help="Also write a PNG grid.")
@overwrite_option
def command(generator, model, n, size, p, method, guidance, sampler, steps, batch_size, kernel, theta, device,
            seed, out, quicklook, overwrite) -> None:
    """Synthesise N abundance maps (sample, endmember, y, x) on the simplex and write them to NetCDF.

    Example: simhsi generate-abundances --n 16 --size 128 128 --endmembers 5 --method cnnaeu
    --guidance 1.5 --sampler dpmpp --steps 20 --seed 0 --out abund.nc --quicklook abund.png
    """
    from simhsi._atomic import check_output_path
    from simhsi.errors import check_param

    check_output_path(out, overwrite)
    if quicklook:
        check_output_path(quicklook, overwrite)
    check_param("--n", n, n >= 1, "an int >= 1")
    if generator == "grf":
        from simhsi.diffusion.grf import gaussian_random_field_abundances

        h, w = size if size else (128, 128)
        abund = gaussian_random_field_abundances(n, (h, w), p, kernel=kernel,
                                                 theta=theta if theta else max(h, w) / 2, seed=seed)
    else:
        from simhsi.diffusion.generate import generate_abundances

        abund = generate_abundances(model, n=n, size=tuple(size) if size else None, p=p, method=method,
                                    guidance=guidance, sampler=sampler, steps=steps, seed=seed,
                                    batch_size=batch_size, device=device, progress=progress_enabled())
    from simhsi.io.netcdf import write_netcdf

    write_netcdf(abund, out, overwrite=overwrite)
    if quicklook:
        write_abundance_quicklook(abund, quicklook)
    click.echo(f"wrote {n} abundance map(s) of {abund.sizes['y']}x{abund.sizes['x']} px, p={p} to {out}")
