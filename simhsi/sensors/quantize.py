"""Quantisation of physical values to a product's digital numbers (DN), per processing level.

Every convention is linear::

    DN = clip(round((v + offset) · scale), dn_min, 2**bits − 1)      v = DN / scale − offset

* PRISMA L1 radiance: scale = ScaleFactor = 100, offset 0, uint16, v in W m⁻² sr⁻¹ µm⁻¹;
* PRISMA L2 reflectance: DN = round((r − Min)/(Max − Min)·65535), i.e. scale = 65535/(Max − Min),
  offset = −Min (``min``/``max`` keys in the YAML);
* Sentinel-2 L2A reflectance (baseline ≥ 04.00): DN = r·10000 + 1000, i.e. scale 10000, offset 0.1.

A level with ``dtype: float32`` stores values as they are (no quantisation; e.g. EMIT, AVIRIS products).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simhsi.errors import ParameterError


@dataclass
class LevelQuantization:
    """DN convention of one processing level (see module docstring)."""

    level: str
    quantity: str  # "radiance" | "reflectance"
    units: str
    scale: float = 1.0
    offset: float = 0.0
    bits: int = 16
    dtype: str = "uint16"
    signed: bool = False
    fill_value: float | None = None
    provenance: str = ""
    min: float | None = None
    max: float | None = None

    @property
    def is_float(self) -> bool:
        return np.dtype(self.dtype).kind == "f"

    @property
    def dn_range(self) -> tuple[int, int]:
        """Smallest and largest storable DN."""
        if self.signed:
            return -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        return 0, 2**self.bits - 1

    @property
    def step(self) -> float:
        """Quantisation step in physical units (0 for float storage)."""
        return 0.0 if self.is_float else 1.0 / self.scale

    def quantize(self, values):
        """Physical values (numpy or dask) → DN array of ``dtype`` (NaN → ``fill_value`` or 0)."""
        if self.is_float:
            return values.astype(self.dtype)
        lo, hi = self.dn_range
        dn = np.rint((values + self.offset) * self.scale)
        fill = self.fill_value if self.fill_value is not None else lo
        dn = np.where(np.isfinite(dn), np.clip(dn, lo, hi), fill)
        return dn.astype(self.dtype)

    def dequantize(self, dn):
        """DN array → physical values (float32 for numpy/dask arrays)."""
        if self.is_float:
            return dn.astype(np.float32)
        v = dn.astype(np.float64) / self.scale - self.offset
        return v.astype(np.float32)

    def with_min_max(self, vmin: float, vmax: float) -> LevelQuantization:
        """A copy mapping [vmin, vmax] to the full DN range (e.g. a PRISMA product's L2ScaleMin/Max)."""
        import dataclasses

        if not (np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin):
            raise ParameterError(f"need finite min < max; got {vmin!r}, {vmax!r}")
        if self.is_float:
            raise ParameterError(f"level {self.level} is stored as {self.dtype}; it has no DN range")
        hi = self.dn_range[1]
        return dataclasses.replace(self, scale=hi / (vmax - vmin), offset=-float(vmin) + 0.0,
                                   min=float(vmin), max=float(vmax))

    def describe(self) -> dict[str, object]:
        d = {"quantity": self.quantity, "units": self.units, "scale": self.scale, "offset": self.offset,
             "bits": self.bits, "dtype": self.dtype, "provenance": self.provenance}
        if self.fill_value is not None:
            d["fill_value"] = self.fill_value
        if self.min is not None:
            d["min"], d["max"] = self.min, self.max
        return d


@dataclass
class Quantization:
    """The DN conventions of a sensor's products, one :class:`LevelQuantization` per level ("L1", "L2")."""

    levels: dict[str, LevelQuantization] = field(default_factory=dict)

    def __getitem__(self, level: str) -> LevelQuantization:
        key = str(level).upper()
        if key not in self.levels:
            raise ParameterError(
                f"no quantisation convention for level {level!r}; this sensor defines {sorted(self.levels)}"
            )
        return self.levels[key]

    def __contains__(self, level: str) -> bool:
        return str(level).upper() in self.levels

    def quantize(self, values, level: str):
        """Values of ``level`` (L1: radiance in that level's ``units``; L2: reflectance) → DN."""
        return self[level].quantize(values)

    def dequantize(self, dn, level: str):
        """DN → values of ``level``."""
        return self[level].dequantize(dn)


def level_from_dict(level: str, d: dict, errors: list[str], where: str) -> LevelQuantization | None:
    """Build a :class:`LevelQuantization` from a YAML mapping, appending problems to ``errors``."""
    if not isinstance(d, dict):
        errors.append(f"{where}: must be a mapping (quantity, units, scale/offset or min/max, bits, dtype)")
        return None
    n0 = len(errors)
    quantity = d.get("quantity", "radiance" if level.upper() == "L1" else "reflectance")
    if quantity not in ("radiance", "reflectance"):
        errors.append(f"{where}.quantity: must be 'radiance' or 'reflectance', got {quantity!r}")
    dtype = str(d.get("dtype", "uint16"))
    try:
        dt = np.dtype(dtype)
        if dt.kind not in "iuf":
            raise TypeError
    except TypeError:
        errors.append(f"{where}.dtype: must be a numeric numpy dtype name (uint16, int16, float32), got {dtype!r}")
        dt = np.dtype("uint16")
    bits = d.get("bits", dt.itemsize * 8)
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= dt.itemsize * 8:
        errors.append(f"{where}.bits: must be an int in [1, {dt.itemsize * 8}] for dtype {dtype}, got {bits!r}")
        bits = dt.itemsize * 8
    scale, offset = d.get("scale"), d.get("offset", 0.0)
    vmin, vmax = d.get("min"), d.get("max")
    if dt.kind != "f":
        if vmin is not None or vmax is not None:
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (vmin, vmax)) or not (
                vmax > vmin
            ):
                errors.append(f"{where}.min/max: must be numbers with max > min, got {vmin!r}/{vmax!r}")
            else:
                scale = (2**bits - 1) / (vmax - vmin)
                offset = -float(vmin) + 0.0
        elif not isinstance(scale, int | float) or isinstance(scale, bool) or not scale > 0:
            errors.append(f"{where}.scale: must be a positive number (or give min and max), got {scale!r}")
        if not isinstance(offset, int | float) or isinstance(offset, bool):
            errors.append(f"{where}.offset: must be a number, got {offset!r}")
    if len(errors) > n0:
        return None
    return LevelQuantization(
        level=level.upper(),
        quantity=quantity,
        units=str(d.get("units", "1" if quantity == "reflectance" else "W m-2 sr-1 um-1")),
        scale=float(scale) if scale is not None else 1.0,
        offset=float(offset),
        bits=int(bits),
        dtype=dt.name,
        signed=dt.kind == "i",
        fill_value=d.get("fill_value"),
        provenance=str(d.get("provenance", "")),
        min=vmin,
        max=vmax,
    )
