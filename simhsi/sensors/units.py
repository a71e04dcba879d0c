"""Spectral radiance unit conversions.

Radiance units used by simhsi and the sensors it models (all per steradian, per unit wavelength):

* ``W m-2 sr-1 um-1``  = ``mW m-2 sr-1 nm-1`` (PRISMA L1, EnMAP L1B, simhsi cubes)
* ``uW cm-2 sr-1 nm-1`` (isofit noise files, EMIT, AVIRIS) = 10 × ``W m-2 sr-1 um-1``
* ``mW cm-2 sr-1 um-1`` (DESIS L1B) = ``uW cm-2 sr-1 nm-1``

So 1 µW cm⁻² sr⁻¹ nm⁻¹ = 10 W m⁻² sr⁻¹ µm⁻¹.
"""

from __future__ import annotations

import numpy as np

from simhsi.errors import ParameterError

#: factor to multiply a value in the key unit to get W m-2 sr-1 um-1
_TO_W_M2_SR_UM: dict[str, float] = {
    "W m-2 sr-1 um-1": 1.0,
    "mW m-2 sr-1 nm-1": 1.0,
    "uW cm-2 sr-1 nm-1": 10.0,
    "µW cm-2 sr-1 nm-1": 10.0,
    "mW cm-2 sr-1 um-1": 10.0,
    "W m-2 sr-1 nm-1": 1000.0,
}

W_M2_SR_UM = "W m-2 sr-1 um-1"
UW_CM2_SR_NM = "uW cm-2 sr-1 nm-1"


def _norm(unit: str) -> str:
    return " ".join(str(unit).replace("^", "").replace("μ", "u").replace("µ", "u").split())


def radiance_factor(from_units: str, to_units: str) -> float:
    """Multiplicative factor converting spectral radiance from ``from_units`` to ``to_units``."""
    table = {_norm(k): v for k, v in _TO_W_M2_SR_UM.items()}
    f, t = _norm(from_units), _norm(to_units)
    for u, name in ((f, "from_units"), (t, "to_units")):
        if u not in table:
            raise ParameterError(
                f"unknown radiance unit {name}={u!r}; use one of {sorted(set(table))}"
            )
    return table[f] / table[t]


def convert_radiance(values, from_units: str, to_units: str):
    """Convert spectral radiance ``values`` (numpy or dask array, or scalar) between units."""
    f = radiance_factor(from_units, to_units)
    return values * f if f != 1.0 else values


def as_float_array(values) -> np.ndarray:
    """``np.asarray(values, dtype=float64)``, kept 1-D at least."""
    return np.atleast_1d(np.asarray(values, dtype=np.float64))
