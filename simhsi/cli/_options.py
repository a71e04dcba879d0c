"""Options and helpers shared by several commands."""

from __future__ import annotations

import click

overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace the output file if it exists (never done silently)."
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def progress_enabled() -> bool:
    """Whether the running command should show progress bars."""
    from simhsi.cli.main import get_state

    return get_state().progress
