"""The ``simhsi`` command line (click). One module per command, imported lazily."""
