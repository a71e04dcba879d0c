"""``python -m simhsi``: the command line."""

from simhsi.cli.main import main

main()
