"""The simhsi error family.

Every error a user can cause (bad file, bad parameter, bad sensor definition, ...) is a
:class:`SimhsiError`. Each subclass also inherits the builtin exception users already catch:
a file problem is also an :class:`OSError`, a bad value also a :class:`ValueError`.

The CLI prints ``error: <message>`` on one line and exits with code 2 for any of them
(a traceback only with ``--debug``). Messages name the file or parameter, the value, and the fix.
"""

from __future__ import annotations

import os


class SimhsiError(Exception):
    """Base class of every user-facing simhsi error.

    Parameters
    ----------
    message:
        What is wrong and, where possible, how to fix it.
    path:
        The file concerned, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputFileError(SimhsiError, OSError):
    """A file is missing, unreadable, truncated or corrupt."""


class FormatError(SimhsiError, ValueError):
    """A file is readable but not in a format/layout simhsi understands."""


class DataError(SimhsiError, ValueError):
    """Data have the wrong shape, dims, values (NaN, off-simplex, ...) or units."""


class ParameterError(SimhsiError, ValueError):
    """A parameter value is out of range or of the wrong type."""


class SensorError(SimhsiError, ValueError):
    """A sensor is unknown or its definition file is invalid."""


class ModelError(SimhsiError, ValueError):
    """A generator model directory is missing, incomplete or incompatible."""


class OutputError(SimhsiError, OSError):
    """An output cannot be written (exists without ``overwrite``, folder not writable, ...)."""


class ConvergenceWarning(UserWarning):
    """An iterative method stopped at ``max_iter`` before meeting its tolerance."""


def check_param(name: str, value, ok: bool, expected: str, owner: str | None = None) -> None:
    """Raise a :class:`ParameterError` with the standard message shape unless ``ok``.

    Example message: ``The 'n_endmembers' parameter of VCA must be an int in [2, 156). Got 0 instead.``
    """
    if not ok:
        of = f" of {owner}" if owner else ""
        raise ParameterError(f"The {name!r} parameter{of} must be {expected}. Got {value!r} instead.")


def run_script(main, argv: list[str] | None = None) -> None:
    """Run a script's ``main(argv) -> int`` as the CLI does: a :class:`SimhsiError` prints one
    ``error: ...`` line on stderr and exits with code 2 (no traceback); otherwise exit with main's code."""
    import sys

    try:
        code = main(argv)
    except SimhsiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
