"""``simhsi train``: train the DDPM abundance generator on unmixing outputs / abundance maps."""

from __future__ import annotations

import click

from simhsi.cli._options import overwrite_option, progress_enabled


@click.command(name="train")
@click.option("--data", "data", multiple=True, type=click.Path(dir_okay=False),
              help="A 'simhsi unmix' output or abundance file (NetCDF); repeatable.")
@click.option("--include-bundled", is_flag=True,
              help="Also train on the bundled real abundance maps (Samson, Jasper Ridge, WDC Mall).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Model directory to write (or to continue with --resume).")
@click.option("--config", "config", type=click.Path(dir_okay=False),
              help="YAML training config (any subset of the TrainConfig keys; see docs/generator.md).")
@click.option("--steps", type=int, help="Total optimisation steps (overrides the config).")
@click.option("--batch-size", type=int, help="Global batch size in patches (overrides the config).")
@click.option("--patch-size", type=int, help="Patch side in pixels (overrides the config).")
@click.option("--lr", type=float, help="Adam learning rate (overrides the config).")
@click.option("--seed", type=int, help="Random seed (overrides the config).")
@click.option("--small", is_flag=True, help="Start from the small CPU config instead of the paper config "
              "(with --config, the YAML overrides the small config).")
@click.option("--resume", is_flag=True, help="Continue the newest checkpoint in --out exactly.")
@click.option("--device", type=str, help="cpu, cuda or cuda:N (default: CUDA when available).")
@overwrite_option
def command(data, include_bundled, out, config, steps, batch_size, patch_size, lr, seed, small, resume, device,
            overwrite) -> None:
    """Train the diffusion abundance generator; writes MODEL_DIR with raw and EMA U-Nets.

    Example: simhsi train --data unmixed.nc --include-bundled --out model --small --steps 2000
    """
    from simhsi.diffusion.config import TrainConfig, small_config
    from simhsi.diffusion.data import load_scenes
    from simhsi.diffusion.train import check_out_dir, read_checkpoint_config, train

    check_out_dir(out, resume, overwrite)

    overrides = {"steps": steps, "batch_size": batch_size, "patch_size": patch_size, "lr": lr, "seed": seed}
    if config:
        cfg = TrainConfig.from_yaml(config, base=small_config() if small else None)
    elif resume:
        cfg = read_checkpoint_config(out)
    else:
        cfg = small_config() if small else TrainConfig()
    cfg = cfg.replace(**overrides)
    cfg.validate()
    scenes = load_scenes(list(data), cfg, include_bundled=include_bundled)
    res = train(cfg, scenes, out, resume=resume, overwrite=overwrite, device=device, progress=progress_enabled())
    from simhsi.diffusion.train import _dist_info

    if _dist_info()[0] == 0:  # under torchrun only rank 0 reports (and writes the model)
        click.echo(f"model written to {res.model_dir} (step {res.step}, final loss {res.final_loss:.4f}, "
                   f"{res.patches_per_s:.2f} patches/s, {res.wall_time_s:.0f} s in total)")
