"""``simhsi render-cube``: render a synthetic scene through a sensor model (see docs/render.md)."""

from __future__ import annotations

import click

from simhsi.cli._options import overwrite_option, progress_enabled, seed_option


@click.command(name="render-cube")
@click.option("--sensor", default="prisma", show_default=True, help="Sensor name (simhsi sensors list) or YAML path.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output file.")
@click.option("--abundances", "abundances_file", type=click.Path(dir_okay=False),
              help="Abundance maps (NetCDF from generate-abundances/unmix). Default: demo maps (generator).")
@click.option("--sample", type=int, default=0, show_default=True,
              help="Which sample/run of a multi-sample abundance file to render.")
@click.option("--scene-pixel-m", type=float, default=None,
              help="Pixel size (m) of --abundances; runs the PSF + resampling stage to the sensor GSD. "
                   "Default: the maps are on the sensor grid.")
@click.option("--library", default="bundled", show_default=True,
              help="'bundled' (real measured spectra shipped with simhsi) or a library file (.sli/.csv/unmix .nc).")
@click.option("--endmember-names", default=None, help="Comma-separated library spectra, one per abundance map.")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W",
              help="Demo scene size in sensor pixels (default 256 256); not with --abundances.")
@click.option("--level", type=click.Choice(["L1", "L2"], case_sensitive=False), default="L2", show_default=True,
              help="L2 surface reflectance or L1 at-sensor radiance (no atmosphere).")
@seed_option
@click.option("--snr-scale", type=float, default=1.0, show_default=True, help="Multiply the sensor SNR.")
@click.option("--no-noise", is_flag=True, help="No noise.")
@click.option("--no-quantize", is_flag=True, help="No quantisation to the sensor's DN convention.")
@click.option("--sun-zenith", type=float, default=30.0, show_default=True, help="Sun zenith angle (degrees).")
@click.option("--day-of-year", type=int, default=172, show_default=True, help="Day of year (Earth-Sun distance).")
@click.option("--chunks", type=int, default=256, show_default=True, help="Dask chunk edge (sensor pixels).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a dask.distributed scheduler (e.g. tcp://127.0.0.1:8786).")
@click.option("--format", "fmt", type=click.Choice(["netcdf", "envi", "prisma-he5"]), default="netcdf",
              show_default=True, help="Output format.")
@click.option("--compression", type=click.Choice(["zlib", "szip", "zstd", "none"]), default="zlib",
              show_default=True,
              help="NetCDF compression: zlib (deflate, compressed in parallel; any NetCDF-4 reader), "
                   "szip (~7 % smaller on sensor DN, serial: slower; readers need HDF5 with szip/libaec), "
                   "zstd (needs netCDF-C >= 4.9 plugins), none.")
@click.option("--complevel", type=click.IntRange(0, 9), default=1, show_default=True,
              help="zlib/zstd level (noisy DN compress ~16 % with zlib 1).")
@click.option("--quicklook", type=click.Path(dir_okay=False), default=None, help="Also write a PNG quicklook.")
@click.option("--keep-clean", is_flag=True, help="Also store the noise-free cube (NetCDF only).")
@click.option("--repair-abundances", is_flag=True, help="Project abundances off the simplex onto it.")
@click.option("--out-of-range", type=click.Choice(["error", "warn"]), default=None,
              help="When a sensor band reaches outside the library's wavelength range (default: error; "
                   "warn with the bundled library, whose spectra end at 2500 nm).")
@overwrite_option
def command(sensor, out, abundances_file, sample, scene_pixel_m, library, endmember_names, size, level, seed,
            snr_scale, no_noise, no_quantize, sun_zenith, day_of_year, chunks, scheduler, fmt, compression, complevel,
            quicklook,
            keep_clean, repair_abundances, out_of_range, overwrite) -> None:
    """Render a synthetic scene through a sensor model.

    With only --out, renders a demo scene (generated abundance maps + bundled real library) for the
    sensor. Everything is checked before anything is computed; nothing is written on error.
    """
    import time
    import warnings

    import numpy as np

    from simhsi._atomic import check_output_path
    from simhsi.errors import ParameterError
    from simhsi.render.export import check_format_available

    t0 = time.perf_counter()
    # --- validate every input before computing
    check_output_path(out, overwrite)
    if quicklook:
        check_output_path(quicklook, overwrite)
    check_format_available(fmt)
    if keep_clean and fmt != "netcdf":
        raise ParameterError("--keep-clean stores the clean cube beside the noisy one: only with --format netcdf")
    if abundances_file and size:
        raise ParameterError("--size sets the size of the demo scene; it cannot be used with --abundances")
    if size and (size[0] < 8 or size[1] < 8):
        raise ParameterError(f"--size must be two ints >= 8 (H W sensor pixels). Got {size[0]} {size[1]} instead.")
    from simhsi.render.forward import render_scene, resolve_sensor
    from simhsi.render.scene import DEMO_P, DEMO_SIZE, demo_abundances, load_scene_library

    sen = resolve_sensor(sensor)
    names = [n.strip() for n in endmember_names.split(",") if n.strip()] if endmember_names else None
    if abundances_file:
        from simhsi.render.scene import read_abundances

        abund = read_abundances(abundances_file, sample=sample)
        pixel = scene_pixel_m
    else:
        p = len(names) if names else DEMO_P
        abund = demo_abundances(tuple(size) if size else DEMO_SIZE, p, seed=seed, scene_pixel_m=scene_pixel_m,
                                gsd_m=float(sen.gsd_m), progress=progress_enabled())
        pixel = float(abund.attrs["pixel_m"])
    wl, fw = np.asarray(sen.wavelength, float), np.nan_to_num(np.asarray(sen.fwhm, float))
    lib = load_scene_library(library, abund.sizes["endmember"], names=names, seed=seed,
                             wavelength_range=(float(np.min(wl - 1.5 * fw)), float(np.max(wl + 1.5 * fw))))
    bundled = str(library).lower() in ("bundled", "curated", "default")
    if out_of_range is None:
        # the bundled spectra stop at 2500 nm: sensors reaching beyond (PRISMA's last bands) get a warning
        out_of_range = "warn" if bundled else "error"
    if not abundances_file or (names and len(names) == abund.sizes["endmember"]):
        # generated maps have generic names: name them after the chosen spectra
        abund = abund.assign_coords(endmember=[str(n) for n in lib["endmember"].values]) \
            if lib.sizes["endmember"] == abund.sizes["endmember"] else abund
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = render_scene(abund, lib, sen, level=level.upper(), scene_pixel_m=pixel, seed=seed,
                          snr_scale=snr_scale, noise=not no_noise, quantize=not no_quantize,
                          sun_zenith_deg=sun_zenith, day_of_year=day_of_year, chunks=chunks, keep_clean=keep_clean,
                          out_of_range=out_of_range, repair=repair_abundances)
    for w in caught:  # one line each, without the source line Python would print
        click.echo(f"warning: {w.message}", err=True)
    ds.attrs["abundance_source"] = str(abund.attrs.get("generator", abund.attrs.get("source_file", "user")))
    ds.attrs["library_source"] = "bundled simhsi library (USGS splib07a, earthlib)" if bundled else str(library)

    # --- compute + write
    client = None
    if scheduler:
        try:
            from distributed import Client

            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ParameterError(f"cannot connect to the dask scheduler {scheduler!r} ({exc}); start one with "
                                 "'dask scheduler' or distributed.LocalCluster (see docs/render.md)") from None
    try:
        from simhsi.render.export import write_scene

        path = write_scene(ds, out, format=fmt, overwrite=overwrite, progress=progress_enabled() and client is None,
                           complevel=complevel, compression=compression)
        if quicklook:
            from simhsi.render.quicklook import write_quicklook

            if fmt == "netcdf":  # read back the written file rather than rendering again
                from simhsi.io.netcdf import open_dataset

                # chunks=None: plain lazy reads in this thread. Reading the file back through dask's thread
                # pool crashed netCDF-C now and then when the same process opened it again (see Makefile).
                with open_dataset(path, chunks=None) as src:
                    write_quicklook(src, quicklook, overwrite=overwrite)
            else:
                write_quicklook(ds, quicklook, overwrite=overwrite)
    finally:
        if client is not None:
            client.close()
    var = "radiance" if "radiance" in ds else "reflectance"
    h, w, b = ds[var].shape
    click.echo(f"wrote {path} ({fmt}): {sen.name} {level.upper()} {var}, {h} x {w} px, {b} bands, "
               f"{ds.sizes['endmember']} endmembers ({', '.join(map(str, ds['endmember'].values))}), "
               f"seed {seed}, {time.perf_counter() - t0:.1f} s")
    if quicklook:
        click.echo(f"wrote {quicklook}")
