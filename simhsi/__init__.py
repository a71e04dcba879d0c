"""simhsi: simulate what a hyperspectral sensor would see.

Stages (one subpackage each): :mod:`simhsi.io` (readers/writers), :mod:`simhsi.unmixing`,
:mod:`simhsi.diffusion` (abundance generator), :mod:`simhsi.sensors` and :mod:`simhsi.render`
(forward model), :mod:`simhsi.metrics`. Heavy modules are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from simhsi._version import __version__
from simhsi.errors import (
    ConvergenceWarning,
    DataError,
    FormatError,
    InputFileError,
    ModelError,
    OutputError,
    ParameterError,
    SensorError,
    SimhsiError,
)

_LAZY = {"open_cube": "simhsi.io"}
_SUBMODULES = {"io", "unmixing", "diffusion", "sensors", "render", "metrics", "data", "conventions", "library"}

__all__ = [
    "__version__",
    "ConvergenceWarning",
    "DataError",
    "FormatError",
    "InputFileError",
    "ModelError",
    "OutputError",
    "ParameterError",
    "SensorError",
    "SimhsiError",
    "open_cube",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"simhsi.{name}")
    raise AttributeError(f"module 'simhsi' has no attribute {name!r}")
