"""Blind linear unmixing Y = E·A: a dictionary of methods found by name.

>>> from simhsi.unmixing import get_method
>>> result = get_method("vca-fcls")(n_endmembers=4, seed=0).fit(cube)   # doctest: +SKIP

Methods that need torch import it inside ``fit``, so importing this package stays light.
"""

from __future__ import annotations

import importlib

from simhsi.unmixing._base import Prepared, Unmixer, available_methods, get_method, prepare, register

#: Modules whose import registers methods (each decorates its classes with ``@register``).
_METHOD_MODULES = ("geometric", "fcls", "nmfqmv", "edaa", "bayesian", "cnnaeu", "pgmsu")

for _mod in _METHOD_MODULES:
    importlib.import_module(f"simhsi.unmixing.{_mod}")

__all__ = ["Prepared", "Unmixer", "available_methods", "get_method", "prepare", "register"]
