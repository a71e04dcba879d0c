"""``simhsi`` command group: lazy subcommands, -v/-q/--debug, one-line errors with exit code 2.

Subcommands live one per module (``simhsi/cli/<name>.py``, a click command called ``command``)
and are imported only when run, so ``simhsi --help`` never imports torch, xarray or dask.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from simhsi._version import __version__
from simhsi.errors import SimhsiError

#: command name → (module, one-line help shown by ``simhsi --help`` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("simhsi.cli.info", "Describe a hyperspectral file: shape, bands, wavelengths, level, nodata, CRS."),
    "unmix": ("simhsi.cli.unmix", "Blind unmixing of a cube by a dictionary of methods, p and seeds."),
    "train": ("simhsi.cli.train", "Train the diffusion abundance generator on unmixing outputs."),
    "generate-abundances": ("simhsi.cli.generate", "Synthesise abundance maps (DDPM or Gaussian fields)."),
    "render-cube": ("simhsi.cli.render", "Render a synthetic scene through a sensor model."),
    "validate": ("simhsi.cli.validate", "Compare cubes (SAD, RMSE, PSNR, SSIM) or abundance sets (realism)."),
    "sensors": ("simhsi.cli.sensors", "List and show the sensor definitions."),
}


class State:
    """Global options, shared with subcommands through ``ctx.obj``."""

    def __init__(self, debug: bool = False, verbosity: int = 0, quiet: bool = False) -> None:
        self.debug = debug
        self.verbosity = verbosity
        self.quiet = quiet

    @property
    def progress(self) -> bool:
        """Whether to show progress bars (not with ``--quiet``)."""
        return not self.quiet


class SimhsiGroup(click.Group):
    """A click group whose subcommands are imported on first use and whose errors are one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, short_help = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return _unavailable(cmd_name, short_help)
        cmd = module.command
        cmd.name = cmd_name
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above, so that --help imports no subcommand module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SimhsiError as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else State()
            if state.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _unavailable(name: str, short_help: str) -> click.Command:
    @click.command(name=name, help=short_help + " (not available in this version)")
    def _cmd() -> None:
        raise SimhsiError(f"the '{name}' command is not available in this version of simhsi")

    return _cmd


@click.group(cls=SimhsiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="simhsi")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", "verbosity", count=True, help="More log output (-vv for debug logs).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and only warnings/errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbosity: int, quiet: bool) -> None:
    """simhsi: simulate what a hyperspectral sensor would see.

    Ingest real images, unmix them, learn and synthesise abundance maps, and render synthetic
    cubes through sensor models (PRISMA, EnMAP, EMIT, AVIRIS, DESIS, Sentinel-2).
    """
    ctx.obj = State(debug=debug, verbosity=verbosity, quiet=quiet)
    level = logging.WARNING if quiet or verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("simhsi").setLevel(level)


def get_state(ctx: click.Context | None = None) -> State:
    """The global :class:`State` of the running command (defaults when called outside the CLI)."""
    ctx = ctx or click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, State):
            return ctx.obj
        ctx = ctx.parent
    return State()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="simhsi")


if __name__ == "__main__":  # pragma: no cover
    # Import the package module so `python -m simhsi.cli.main` shares one State class with the commands.
    from simhsi.cli.main import main as _main

    _main()
