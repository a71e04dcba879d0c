"""The sensor forward model: abundances + endmember library -> noisy, quantised sensor cube (lazy, dask).

Stages (EeteS order, see docs/render.md):

1. spatial: PSF + resampling to the sensor GSD on the p abundance maps (skipped when the abundances are
   already on the sensor grid, ``scene_pixel_m=None``);
2. spectral: the library is resampled once to the sensor bands, ``E_s = R · E`` with the sensor's SRF
   matrix (identity when the library is already at the sensor's bands);
3. mixing: ``Y = E_s · A`` (surface reflectance);
4. level: L2 keeps reflectance; L1 converts to at-sensor radiance
   ``L = ρ · E0(λ) · cos(SZA) / (π d²)`` in W m-2 sr-1 um-1 (no atmosphere);
5. noise: ``Y + σ_b(L) · z`` with the sensor's signal-dependent model (σ divided by ``snr_scale``; for L2,
   σ is propagated from radiance to reflectance: ``σ_ρ = σ_L · π d² / (E0 cos SZA)``);
6. quantisation to the sensor's DN convention; the stored values are the dequantised ones
   (NetCDF export packs them back to the exact DN with CF ``scale_factor``/``add_offset``).

Noise is drawn per fixed global block of :data:`NOISE_BLOCK` x :data:`NOISE_BLOCK` pixels (all bands) from
``numpy.random.SeedSequence([seed, block_row, block_col])`` and sliced, so a pixel's noise depends only on
the seed and its position: identical whatever the dask chunking, the scheduler or the scene size.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simhsi.conventions import (
    ABUNDANCE_DIMS,
    BAND,
    ENDMEMBER,
    FWHM,
    UNITS_RADIANCE,
    UNITS_REFLECTANCE,
    WAVELENGTH,
    X,
    Y,
    provenance_attrs,
)
from simhsi.errors import DataError, ParameterError, SensorError, check_param

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

log = logging.getLogger(__name__)

#: Edge (pixels) of the global noise blocks; a pixel's noise depends only on (seed, its block, its place).
NOISE_BLOCK = 128
#: Default dask chunk edge (pixels) along y and x (a multiple of NOISE_BLOCK: no noise drawn twice).
DEFAULT_CHUNK = 256
#: W m-2 sr-1 um-1 -> uW cm-2 sr-1 nm-1 (the unit of the sensors' noise coefficients).
W_M2_UM_TO_UW_CM2_NM = 0.1
LEVELS = ("L1", "L2")
ATMOSPHERE_NOTE = "none: top-of-atmosphere radiance of the surface reflectance, no transmittance/path radiance"


# --------------------------------------------------------------------------------------------- geometry
def earth_sun_distance_au(day_of_year: float) -> float:
    """Earth-Sun distance in AU for a day of year (1-366): ``1 - 0.01672 cos(0.9856° (doy - 4))``.

    First-order orbit eccentricity approximation (accurate to ~1e-4 AU), as used in Landsat/Sentinel
    radiometric conversions.
    """
    return float(1.0 - 0.01672 * math.cos(math.radians(0.9856 * (float(day_of_year) - 4.0))))


def reflectance_to_radiance_gain(
    wavelength_nm: np.ndarray, sun_zenith_deg: float, day_of_year: float, fwhm_nm: np.ndarray | None = None
) -> np.ndarray:
    """Per-band factor g_b (W m-2 sr-1 um-1 per unit reflectance): ``L = ρ · g``, ``g = E0 cos(SZA)/(π d²)``.

    ``E0`` is the top-of-atmosphere solar irradiance at 1 AU from :func:`simhsi.sensors.solar.solar_irradiance`
    (W m-2 um-1) at the band centres.
    """
    from simhsi.sensors.solar import solar_irradiance

    wl = np.asarray(wavelength_nm, dtype=np.float64)
    key = (wl.tobytes(), None if fwhm_nm is None else np.asarray(fwhm_nm, np.float64).tobytes())
    if key not in _GAIN_CACHE:
        if len(_GAIN_CACHE) >= 16:
            _GAIN_CACHE.pop(next(iter(_GAIN_CACHE)))
        _GAIN_CACHE[key] = np.asarray(solar_irradiance(wl, fwhm_nm), dtype=np.float64)
    e0 = _GAIN_CACHE[key]
    d = earth_sun_distance_au(day_of_year)
    return e0 * math.cos(math.radians(sun_zenith_deg)) / (math.pi * d * d)


# --------------------------------------------------------------------------------------------- noise
#: Number of equiprobable levels of the tabulated standard normal (part of the noise stream's definition).
GAUSS_LEVELS = 65536
#: Values drawn per call to the bit generator inside a tile (keeps the index buffer in cache).
_GAUSS_SLAB = 131072
_GAUSS_TABLE: np.ndarray | None = None


def gauss_table() -> np.ndarray:
    """The :data:`GAUSS_LEVELS` float32 values of the tabulated standard normal, ascending.

    Level ``i`` is the mean of Z ~ N(0, 1) over its ``i``-th equiprobable interval
    ``(Φ⁻¹(i/K), Φ⁻¹((i+1)/K))``, i.e. ``K (φ(e_i) − φ(e_{i+1}))``; the table is then scaled by
    1 + 7e-7 so that its variance is 1 (to float32 precision). Symmetric, mean 0, max |z| = 4.39.
    """
    global _GAUSS_TABLE
    if _GAUSS_TABLE is None:
        from scipy.special import ndtri

        k = GAUSS_LEVELS
        edges = ndtri(np.arange(k + 1, dtype=np.float64) / k)
        dens = np.zeros(k + 1)
        inner = np.isfinite(edges)
        dens[inner] = np.exp(-0.5 * edges[inner] ** 2) / math.sqrt(2.0 * math.pi)
        levels = (dens[:-1] - dens[1:]) * k
        levels = 0.5 * (levels - levels[::-1])  # exactly antisymmetric
        levels /= math.sqrt(float(np.mean(levels**2)))
        _GAUSS_TABLE = levels.astype(np.float32)
    return _GAUSS_TABLE


def _table_normal(bitgen: np.random.BitGenerator, out: np.ndarray) -> None:
    """Fill the 1-D float32 ``out`` with standard normal deviates by inverse-CDF table lookup.

    Each 64-bit output of ``bitgen.random_raw`` gives four 16-bit indices (little-endian order) into
    :func:`gauss_table`: the normal distribution quantised to 65 536 equiprobable levels (Kolmogorov
    distance to N(0, 1) ≤ 1/65 536; tails beyond 4.39 σ, probability 3e-5, are folded into the last
    level). About 3 × faster than a Box–Muller transform and 5 × faster than ``standard_normal`` here.
    """
    table = gauss_table()
    n = out.size
    for i in range(0, n, _GAUSS_SLAB):
        m = min(_GAUSS_SLAB, n - i)
        raw = bitgen.random_raw((m + 3) // 4).astype("<u8", copy=False)
        np.take(table, raw.view("<u2")[:m], out=out[i:i + m], mode="wrap")


def tile_normal(seed: int, tile_row: int, tile_col: int, n_bands: int, block: int = NOISE_BLOCK,
                out: np.ndarray | None = None, stream: int | None = None) -> np.ndarray:
    """The standard normal noise (float32, (block, block, n_bands)) of global tile (tile_row, tile_col).

    Drawn from ``numpy.random.SFC64(SeedSequence([seed, tile_row, tile_col]))`` with
    :func:`_table_normal`: a function of the seed and the tile position only. ``stream`` (an int >= 0)
    selects an independent stream, ``SeedSequence([seed, tile_row, tile_col, stream])``: the bands of a
    sensor's coarser-GSD groups draw their noise on their own grid with the group's GSD in mm as stream.
    """
    if out is None:
        out = np.empty((block, block, n_bands), dtype=np.float32)
    key = [int(seed), int(tile_row), int(tile_col)] + ([] if stream is None else [int(stream)])
    bitgen = np.random.SFC64(np.random.SeedSequence(key))
    _table_normal(bitgen, out.reshape(-1))
    return out


def block_normal(seed: int, y0: int, y1: int, x0: int, x1: int, n_bands: int, block: int = NOISE_BLOCK) -> np.ndarray:
    """Standard normal noise (float32, shape (y1-y0, x1-x0, n_bands)) for the global pixel window.

    Made of global ``block`` x ``block`` tiles (:func:`tile_normal`): the value at a pixel does not
    depend on the window asked for.
    """
    out = np.empty((y1 - y0, x1 - x0, n_bands), dtype=np.float32)
    tile = np.empty((block, block, n_bands), dtype=np.float32)  # reused: no page faults per tile
    for by in range(y0 // block, (y1 - 1) // block + 1):
        for bx in range(x0 // block, (x1 - 1) // block + 1):
            tile_normal(seed, by, bx, n_bands, block, out=tile)
            ty0, tx0 = by * block, bx * block
            sy0, sy1 = max(y0, ty0), min(y1, ty0 + block)
            sx0, sx1 = max(x0, tx0), min(x1, tx0 + block)
            out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = tile[sy0 - ty0:sy1 - ty0, sx0 - tx0:sx1 - tx0]
    return out


# --------------------------------------------------------------------------------------------- helpers
def resolve_sensor(sensor: Any):
    """A :class:`simhsi.sensors.Sensor` from a sensor object, a shipped name or a YAML path."""
    if isinstance(sensor, str | os.PathLike):
        from simhsi.sensors import load_sensor

        return load_sensor(os.fspath(sensor))
    if not hasattr(sensor, "wavelength") or not hasattr(sensor, "noise"):
        raise SensorError(f"sensor must be a name, a YAML path or a simhsi.sensors.Sensor; got {type(sensor).__name__}")
    return sensor


def _level(level: str) -> str:
    lv = str(level).upper()
    if lv in ("L2", "L2D", "L2C", "REFLECTANCE"):
        return "L2"
    if lv in ("L1", "L1B", "RADIANCE"):
        return "L1"
    raise ParameterError(f"The 'level' parameter must be 'L1' (radiance) or 'L2' (reflectance). Got {level!r} instead.")


def _check_simplex_chunked(a: Any, atol: float, rows: int = 512) -> tuple[float, float, bool, bool]:
    """(min value, worst |sum-1|, any NaN pixel, any finite pixel) of (p, H, W) data, strip by strip."""
    amin, worst, has_nan, has_valid = np.inf, 0.0, False, False
    for r0 in range(0, a.shape[1], rows):
        s = np.asarray(a[:, r0:r0 + rows, :], dtype=np.float32)
        valid = np.isfinite(s).all(axis=0)
        has_nan |= bool((~valid).any())
        if valid.any():
            has_valid = True
            v = s[:, valid]
            amin = min(amin, float(v.min()))
            worst = max(worst, float(np.max(np.abs(v.sum(axis=0, dtype=np.float64) - 1.0))))
    return amin, worst, has_nan, has_valid


def _prepare_abundances(abundances: Any, repair: bool, atol: float) -> tuple[xr.DataArray, bool]:
    """Check dims/simplex; repair by Euclidean projection when asked. Returns (abundances, has_nan)."""
    import dask.array as da
    import xarray as xr

    from simhsi.simplex import project_simplex

    if not isinstance(abundances, xr.DataArray):
        raise DataError(f"abundances must be an xarray.DataArray (endmember, y, x); got {type(abundances).__name__}")
    if "sample" in abundances.dims and abundances.sizes["sample"] == 1:
        abundances = abundances.isel(sample=0, drop=True)
    if set(abundances.dims) != set(ABUNDANCE_DIMS):
        raise DataError(f"abundances must have dims {ABUNDANCE_DIMS}; got {abundances.dims}")
    abundances = abundances.transpose(*ABUNDANCE_DIMS)
    if abundances.dtype.kind not in "iuf":
        raise DataError(f"abundances must be numeric; got dtype {abundances.dtype}")
    if abundances.sizes[ENDMEMBER] < 1 or abundances.sizes[Y] < 1 or abundances.sizes[X] < 1:
        raise DataError(f"abundances are empty: shape {abundances.shape}")
    if ENDMEMBER not in abundances.coords:
        abundances = abundances.assign_coords({ENDMEMBER: [f"em{i}" for i in range(abundances.sizes[ENDMEMBER])]})
    data = abundances.data
    amin, worst, has_nan, has_valid = _check_simplex_chunked(data, atol)
    if not has_valid:
        raise DataError("abundances have no valid (finite) pixel")
    off = amin < -atol or worst > atol
    if off and not repair:
        raise DataError(
            f"abundances are not on the simplex (min {amin:.3g}, worst pixel sum off 1 by {worst:.3g}); "
            "pass repair=True (--repair-abundances) to project them onto the simplex"
        )
    if off:
        log.warning("abundances off the simplex (min %.3g, sum off by %.3g): projected onto the simplex", amin, worst)
        if isinstance(data, da.Array):
            data = data.astype(np.float32).map_blocks(project_simplex, axis=0, dtype=np.float32)
        else:
            data = project_simplex(np.asarray(data, dtype=np.float32), axis=0)
        abundances = abundances.copy(data=data)
    return abundances.astype(np.float32), has_nan


def _library_matrix(library: Any, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """(E (p, n_src) float64 sorted by wavelength, wavelength, fwhm or None, names in abundance order)."""
    import xarray as xr

    if not isinstance(library, xr.DataArray):
        raise DataError(f"library must be an xarray.DataArray (endmember, band); got {type(library).__name__}")
    if ENDMEMBER not in library.dims or len(library.dims) != 2:
        raise DataError(f"library must have dims (endmember, band); got {library.dims}")
    band_dim = next(d for d in library.dims if d != ENDMEMBER)
    library = library.transpose(ENDMEMBER, band_dim)
    if WAVELENGTH in library.coords:
        wl = np.asarray(library[WAVELENGTH].values, dtype=np.float64)
    elif band_dim == WAVELENGTH:
        wl = np.asarray(library[band_dim].values, dtype=np.float64)
    else:
        raise DataError("library has no 'wavelength' coordinate (nm)")
    p = len(names)
    if library.sizes[ENDMEMBER] != p:
        raise DataError(
            f"the abundances have {p} endmembers but the library has {library.sizes[ENDMEMBER]} spectra; "
            "select as many spectra as abundance maps (e.g. --endmember-names)"
        )
    lib_names = [str(n) for n in library[ENDMEMBER].values] if ENDMEMBER in library.coords else []
    E = np.asarray(library.values, dtype=np.float64)
    if lib_names and set(lib_names) == {str(n) for n in names} and len(set(lib_names)) == p:
        order = [lib_names.index(str(n)) for n in names]
        E = E[order]
        out_names = [str(n) for n in names]
    else:
        out_names = lib_names or [str(n) for n in names]
    if not np.all(np.isfinite(E)):
        raise DataError("library spectra contain NaN/inf; drop those bands first")
    if not np.all(np.isfinite(wl)):
        raise DataError("library wavelengths contain NaN")
    fw = np.asarray(library[FWHM].values, dtype=np.float64) if FWHM in library.coords else None
    order = np.argsort(wl, kind="stable")
    wl, E = wl[order], E[:, order]
    if fw is not None:
        fw = fw[order]
        if not np.all(np.isfinite(fw)):
            fw = None
    return E, wl, fw, out_names


def spectral_matrix(sensor: Any, wavelength: np.ndarray, fwhm: np.ndarray | None, out_of_range: str) -> np.ndarray:
    """The (n_bands, n_src) resampling matrix from the library grid to the sensor bands.

    Identity when the library is already at the sensor's bands (same centres within 1e-6 nm and, when
    both known, the same FWHM), e.g. endmembers unmixed from an image of this sensor.
    """
    swl = np.asarray(sensor.wavelength, dtype=np.float64)
    sfw = np.asarray(sensor.fwhm, dtype=np.float64)
    if swl.shape == wavelength.shape and np.allclose(swl, wavelength, atol=1e-6, rtol=0):
        if fwhm is None or not np.all(np.isfinite(sfw)) or np.allclose(sfw, fwhm, atol=1e-6, rtol=0):
            return np.eye(swl.size)
    key = (str(getattr(sensor, "name", "")), swl.tobytes(), sfw.tobytes(), wavelength.tobytes(),
           None if fwhm is None else np.asarray(fwhm, np.float64).tobytes(), out_of_range)
    if key in _SRF_CACHE:
        R, caught = _SRF_CACHE[key]
    else:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            R = np.asarray(sensor.srf_matrix(wavelength, fwhm, out_of_range=out_of_range), dtype=np.float64)
        caught = [(w.message, w.category) for w in rec]
        if R.shape != (swl.size, wavelength.size):
            raise SensorError(f"SRF matrix has shape {R.shape}, expected {(swl.size, wavelength.size)}")
        if len(_SRF_CACHE) >= 16:
            _SRF_CACHE.pop(next(iter(_SRF_CACHE)))
        _SRF_CACHE[key] = (R, caught)
    for message, category in caught:  # re-emitted on every call, cached or not
        warnings.warn(message, category, stacklevel=3)
    return R


#: Small cache of SRF matrices (computing one over a 1 nm library takes seconds): key -> (R, warnings).
_SRF_CACHE: dict[tuple, tuple[np.ndarray, list]] = {}
_GAIN_CACHE: dict[tuple, np.ndarray] = {}


class _Quant:
    """Adapter over the sensor's DN convention for one level (:class:`simhsi.sensors.quantize.LevelQuantization`).

    Values are converted to the level's units, quantised, dequantised and converted back. Valid pixels
    never get the fill DN (when the fill is the lowest DN they are clipped one step above it), so that a
    reader of the product does not turn a dark pixel into nodata. DN and dequantised values are computed
    in float64 with the sensor's formulas.
    """

    def __init__(self, sensor: Any, level: str) -> None:
        lq = sensor.quantization[level]
        self.lq = lq
        self.factor = 1.0
        if level == "L1":
            from simhsi.sensors.units import radiance_factor

            self.factor = radiance_factor(UNITS_RADIANCE, lq.units)
        self.is_float = bool(lq.is_float)
        self.dtype = np.dtype(lq.dtype)
        self.lo_dn = None
        if not self.is_float and lq.fill_value is not None and lq.fill_value == lq.dn_range[0]:
            self.lo_dn = lq.dn_range[0] + 1
        # physical value = DN * scale + offset (in W m-2 sr-1 um-1 for L1, unitless for L2)
        self.scale = float(1.0 / lq.scale / self.factor) if not self.is_float else 1.0
        self.offset = float(-lq.offset / self.factor) if not self.is_float else 0.0
        self.scalar = not self.is_float
        if not self.is_float:
            self.lo, self.hi = (int(v) for v in lq.dn_range)
            self.clip_lo = self.lo if self.lo_dn is None else self.lo_dn

    def to_dn(self, values: np.ndarray, out: np.ndarray, clip: bool = True) -> np.ndarray:
        """Physical values -> DN as float64 in ``out`` (the sensor's formulas; NaN stays NaN).

        ``clip=False`` leaves the clipping to the DN range to the caller (:meth:`clip_into`).
        """
        lq = self.lq
        np.copyto(out, values)  # float32 -> float64 (exact), then the formula in float64
        if self.factor != 1.0:
            out *= self.factor
        if lq.offset != 0:
            out += lq.offset
        out *= lq.scale
        np.rint(out, out=out)
        if clip:
            np.clip(out, self.clip_lo, self.hi, out=out)  # NaN stays NaN
        return out

    def clip_into(self, dn: np.ndarray, out: np.ndarray) -> None:
        """Clip float64 DN (no NaN) to the DN range and store them in the integer array ``out`` (one pass)."""
        np.clip(dn, self.clip_lo, self.hi, out=out, casting="unsafe")

    def dequantize(self, dn: np.ndarray) -> np.ndarray:
        """float64 DN -> physical values, in place (= LevelQuantization.dequantize, then the unit factor)."""
        dn /= self.lq.scale
        dn -= self.lq.offset
        if self.factor != 1.0:
            dn /= self.factor
        return dn

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Quantise + dequantise (float64 on one copy): the sensor's formulas, NaN kept; float32 result."""
        if self.is_float:
            return np.asarray(values, dtype=self.dtype).astype(np.float32)
        v = np.empty(np.shape(values), dtype=np.float64)
        self.to_dn(np.asarray(values), v)
        return self.dequantize(v).astype(np.float32)


#: Values (pixels x bands) processed at once inside a chunk: the slab's buffers (float32 value and sigma,
#: float64 DN: 16 bytes per value, 2 MiB) stay in the CPU's L2 cache between the ~15 passes over them.
SLAB_ELEMENTS = 131_072


def _tile_regions(y0: int, y1: int, x0: int, x1: int, block: int) -> list[tuple[int, int, int, int, int, int]]:
    """(tile row, tile col, ry0, ry1, rx0, rx1): the chunk [y0:y1, x0:x1] cut along the global noise tiles."""
    regions = []
    for by in range(y0 // block, (y1 - 1) // block + 1):
        for bx in range(x0 // block, (x1 - 1) // block + 1):
            regions.append((by, bx, max(y0, by * block) - y0, min(y1, (by + 1) * block) - y0,
                            max(x0, bx * block) - x0, min(x1, (bx + 1) * block) - x0))
    return regions


def _parametric_coeffs(noise_model: Any, nb: int, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """float32 (a k, b, c k) when the model is isofit-parametric: |a √max(b+L, 1e-5) + c| k = |ak √… + ck|."""
    if getattr(noise_model, "kind", None) != "parametric" or getattr(noise_model, "n_bands", None) != nb:
        return None
    prm = noise_model.params
    if not {"a", "b", "c"} <= set(prm) or any(np.shape(prm[n]) != (nb,) for n in "abc"):
        return None
    a, b, c = (np.asarray(prm[n], dtype=np.float64) for n in "abc")
    return (a * k).astype(np.float32), b.astype(np.float32), (c * k).astype(np.float32)


def _render_block(
    a: np.ndarray,
    *,
    E_s: np.ndarray,
    gain: np.ndarray,
    level: str,
    noise_model: Any,
    snr_scale: float,
    seed: int,
    quant: _Quant | None,
    noisy: bool,
    result: str = "float",
    stream: int | None = None,
    block_info: dict | None = None,
) -> np.ndarray:
    """One (p, h, w) abundance chunk -> (h, w, n_bands) cube chunk.

    ``result="float"``: the (dequantised) float32 values; ``"dn"``: the sensor's integer DN (needs an
    integer DN convention and no NaN). The chunk is processed region by region (its intersections with the
    global noise tiles, whose noise is drawn once each) and, inside, in slabs of :data:`SLAB_ELEMENTS`
    values computed in place with numpy ufuncs (``out=``), so the temporaries stay in cache.
    """
    p, h, w = a.shape
    nb = E_s.shape[0]
    dn_out = result == "dn"
    if dn_out and (quant is None or quant.is_float):
        raise ParameterError("result='dn' needs an integer DN convention")
    out = np.empty((h, w, nb), dtype=quant.dtype if dn_out else np.float32)
    if h == 0 or w == 0 or nb == 0:
        return out
    at = np.ascontiguousarray(np.moveaxis(np.asarray(a, dtype=np.float32), 0, -1))  # (h, w, p)
    E_t = np.ascontiguousarray(E_s.T, dtype=np.float32)  # (p, nb)
    gain32 = np.asarray(gain, dtype=np.float32)
    noise_on = noisy and noise_model is not None
    if noise_on:
        (_, (y0, y1), (x0, x1)) = block_info[0]["array-location"]
        regions = _tile_regions(y0, y1, x0, x1, NOISE_BLOCK)
        tile = np.empty((NOISE_BLOCK, NOISE_BLOCK, nb), dtype=np.float32)
        # sigma(L) in uW cm-2 sr-1 nm-1 -> W m-2 sr-1 um-1, / snr_scale, and to reflectance for L2
        k = np.full(nb, 1.0 / W_M2_UM_TO_UW_CM2_NM / snr_scale)
        if level == "L2":
            k = k / np.asarray(gain, dtype=np.float64)
        to_model = (np.full(nb, W_M2_UM_TO_UW_CM2_NM) * (gain if level == "L2" else 1.0)).astype(np.float32)
        fast = _parametric_coeffs(noise_model, nb, k)
        k32 = k.astype(np.float32)
        folded = None
        if fast is not None:
            # the floor and |.| of the parametric model are no-ops when L >= 0 (A >= 0, E >= 0), b >= 1e-5, a, c >= 0
            nonneg_l = bool(at.size == 0 or at.min() >= 0) and bool(E_t.min() >= 0) and bool(to_model.min() > 0)
            need_floor = not (nonneg_l and bool(fast[1].min() >= np.float32(1e-5)))
            need_abs = not (bool(fast[0].min() >= 0) and bool(fast[2].min() >= 0))
            # without the floor, a sqrt(t v + b) = (a sqrt t) sqrt(v + b / t): two passes fewer
            folded = None if need_floor else ((fast[0] * np.sqrt(to_model)).astype(np.float32),
                                              (fast[1] / to_model).astype(np.float32))
            use_c = bool(np.any(fast[2] != 0))
    else:
        regions = [(0, 0, 0, h, 0, w)]
    size = min(SLAB_ELEMENTS, h * w * nb) if len(regions) == 1 else SLAB_ELEMENTS
    size = max(size, max(rx1 - rx0 for *_, rx0, rx1 in regions) * nb)  # at least one row of a region
    val = np.empty(size, dtype=np.float32)
    sig = np.empty(size, dtype=np.float32) if noise_on else None
    q64 = np.empty(size, dtype=np.float64) if quant is not None and not quant.is_float else None
    for by, bx, ry0, ry1, rx0, rx1 in regions:
        zt = None
        if noise_on:
            tile_normal(seed, by, bx, nb, out=tile, stream=stream)
            ty0, tx0 = by * NOISE_BLOCK - y0, bx * NOISE_BLOCK - x0  # tile origin in chunk coordinates
            zt = tile[ry0 - ty0:ry1 - ty0, rx0 - tx0:rx1 - tx0]
        wr = rx1 - rx0
        rows = max(1, size // (wr * nb))
        for r0 in range(ry0, ry1, rows):
            r1 = min(ry1, r0 + rows)
            m = (r1 - r0) * wr
            n = m * nb
            shape3 = (r1 - r0, wr, nb)
            v = val[:n].reshape(m, nb)
            np.matmul(at[r0:r1, rx0:rx1].reshape(m, p), E_t, out=v)  # reflectance
            if level == "L1":
                v *= gain32  # W m-2 sr-1 um-1
            if noise_on:
                s = sig[:n].reshape(m, nb)
                if folded is not None:
                    np.add(v, folded[1], out=s)
                    np.sqrt(s, out=s)
                    s *= folded[0]
                    if use_c:
                        s += fast[2]
                    if need_abs:
                        np.abs(s, out=s)
                elif fast is not None:
                    np.multiply(v, to_model, out=s)  # radiance in the model's unit
                    a_k, b_, c_k = fast
                    s += b_
                    if need_floor:
                        np.maximum(s, np.float32(1e-5), out=s)
                    np.sqrt(s, out=s)
                    s *= a_k
                    s += c_k
                    if need_abs:
                        np.abs(s, out=s)
                else:
                    np.multiply(v, to_model, out=s)
                    s[...] = noise_model.sigma(s, band_axis=-1)
                    s *= k32
                s3 = s.reshape(shape3)
                np.multiply(s3, zt[r0 - ry0:r1 - ry0], out=s3)
                v += s
            res: np.ndarray = v
            if quant is not None:
                if quant.is_float:
                    res = v.astype(quant.dtype).astype(np.float32)
                elif dn_out:  # clip, cast and store in one pass
                    q = quant.to_dn(v, q64[:n].reshape(m, nb), clip=False)
                    quant.clip_into(q.reshape(shape3), out[r0:r1, rx0:rx1])
                    continue
                else:
                    res = quant.dequantize(quant.to_dn(v, q64[:n].reshape(m, nb)))
            out[r0:r1, rx0:rx1] = res.reshape(shape3)
    return out


def _chunks_tuple(chunks: Any) -> tuple[int, int]:
    if chunks is None:
        return DEFAULT_CHUNK, DEFAULT_CHUNK
    if isinstance(chunks, int | np.integer):
        chunks = (int(chunks), int(chunks))
    if isinstance(chunks, dict):
        chunks = (chunks.get(Y, DEFAULT_CHUNK), chunks.get(X, DEFAULT_CHUNK))
    try:
        cy, cx = (int(c) for c in chunks)
    except (TypeError, ValueError):
        raise ParameterError(f"The 'chunks' parameter must be an int or (y, x) ints >= 16. Got {chunks!r} instead.") from None
    check_param("chunks", chunks, cy >= 16 and cx >= 16, "an int or (y, x) ints >= 16", "render_scene")
    return cy, cx


# --------------------------------------------------------------------------------------------- DN twins
#: dask name of a rendered (dequantised) cube -> (weak reference to it, the dask array of its DN).
_DN_TWINS: dict[str, tuple[weakref.ref, Any]] = {}


def _register_dn_twin(cube: Any, dn: Any) -> None:
    _DN_TWINS[cube.name] = (weakref.ref(cube), dn)
    weakref.finalize(cube, _DN_TWINS.pop, cube.name, None)


def dn_twin(data: Any) -> Any | None:
    """The dask array of the sensor DN behind a cube returned by :func:`render_scene`, or ``None``.

    ``data`` must be the very dask array of the scene's cube variable (``ds["reflectance"].data``); any
    derived array (sliced, rechunked, computed) gets ``None``. The DN array computes the same chunks
    directly as integers, sparing writers that store DN the dequantise/requantise round trip;
    ``DN * dn_scale + dn_offset`` gives the cube's values.
    """
    entry = _DN_TWINS.get(getattr(data, "name", None))
    if entry is None or entry[0]() is not data:
        return None
    return entry[1]


def band_gsd_groups(sensor: Any) -> list[tuple[float, np.ndarray]] | None:
    """The sensor's bands grouped by GSD, ``[(gsd_m, band indices), ...]`` finest first; ``None`` when every
    band has the sensor's ``gsd_m`` (no ``gsd_m`` column in its band table, or a single value).

    Each band GSD must be an integer multiple (>= 1) of the sensor's ``gsd_m``, the grid of the cube.
    """
    g = getattr(sensor, "band_table", {}).get("gsd_m")
    if g is None:
        return None
    from simhsi.sensors.definition import band_gsd_multiples_ok

    g = np.asarray(g, dtype=np.float64)
    base = float(sensor.gsd_m)
    if g.shape != (np.size(sensor.wavelength),) or not np.all(np.isfinite(g)):
        raise SensorError(f"{sensor.name}: band_table.gsd_m must give a finite GSD (m) for every band")
    vals = np.unique(g)
    if vals.size == 1 and abs(vals[0] - base) <= 1e-9 * base:
        return None
    if not band_gsd_multiples_ok(vals, base):
        raise SensorError(f"{sensor.name}: band_table.gsd_m values {', '.join(f'{v:g}' for v in vals)} m must be "
                          f"integer multiples of the sensor's gsd_m ({base:g} m), the grid of the rendered cube")
    return [(float(v), np.flatnonzero(g == v)) for v in vals]


def _coarse_maps(src: Any, src_px: float, gsd: float, base: float, sigma_gsd: float, shape: tuple[int, int],
                 cy: int, cx: int) -> tuple[Any, int]:
    """Abundances at a coarser band GSD covering the ``shape`` cube grid (``base`` m): (dask (p, h, w), k).

    The spatial stage (PSF + area integration) from ``src`` (``src_px`` m pixels) to ``gsd`` m; a partial
    coarse pixel at the bottom/right edge repeats the last full one (edge padding).
    """
    import dask.array as da

    from simhsi.sensors.psf import apply_psf_and_resample

    k = int(round(gsd / base))
    ak = da.asarray(apply_psf_and_resample(da.asarray(src), src_px, gsd, sigma_gsd)).astype(np.float32)
    need = (-(-shape[0] // k), -(-shape[1] // k))
    if min(ak.shape[1:]) < 1:
        raise DataError(f"the scene is smaller than one {gsd:g} m pixel: it cannot be rendered at that GSD")
    ak = ak[:, :need[0], :need[1]]
    pad = ((0, 0), (0, need[0] - ak.shape[1]), (0, need[1] - ak.shape[2]))
    if pad[1][1] or pad[2][1]:
        ak = da.pad(ak, pad, mode="edge")
    return ak.rechunk((ak.shape[0], max(1, cy // k), max(1, cx // k))), k


# --------------------------------------------------------------------------------------------- main API
def render_scene(
    abundances: xr.DataArray,
    library: xr.DataArray,
    sensor: Any,
    *,
    level: str = "L2",
    scene_pixel_m: float | None = None,
    seed: int = 0,
    snr_scale: float = 1.0,
    noise: bool = True,
    quantize: bool = True,
    sun_zenith_deg: float = 30.0,
    day_of_year: int = 172,
    chunks: int | tuple[int, int] | dict[str, int] | None = DEFAULT_CHUNK,
    keep_clean: bool = False,
    out_of_range: str = "error",
    repair: bool = False,
    atol: float = 1e-4,
) -> xr.Dataset:
    """Render abundances and endmember spectra through a sensor model; return a lazy (dask) scene Dataset.

    Parameters
    ----------
    abundances:
        (endmember, y, x) fractions on the simplex (NaN pixels allowed = nodata). Off the simplex:
        :class:`DataError` unless ``repair=True`` (Euclidean projection onto the simplex).
    library:
        (endmember, band) surface reflectance spectra (unitless) with ``wavelength`` (nm, and optional
        ``fwhm``) coords; as many spectra as abundance maps (matched by name when the names agree, else by
        position).
    sensor:
        A :class:`simhsi.sensors.Sensor`, a shipped sensor name (``"prisma"``) or a YAML path.
    level:
        ``"L2"`` surface reflectance (unitless) or ``"L1"`` at-sensor radiance (W m-2 sr-1 um-1, no atmosphere).
    scene_pixel_m:
        Pixel size of the abundance maps in metres; the spatial stage (PSF + resampling to the sensor GSD,
        :func:`simhsi.sensors.psf.apply_psf_and_resample`) runs only when it is given. ``None``: the
        abundances are on the sensor grid already and used as they are.
    seed, snr_scale, noise:
        Noise seed (reproducible whatever the chunking), SNR multiplier (σ / snr_scale), noise on/off.
    quantize:
        Quantise to the sensor's DN convention and store the dequantised values.
    sun_zenith_deg, day_of_year:
        Illumination (degrees; 1-366 for the Earth-Sun distance). They also set the signal level that the
        noise model sees for L2.
    chunks:
        Dask chunk edge(s) along (y, x) in sensor pixels; all bands of a chunk are computed together.
    keep_clean:
        Also return the noise-free, unquantised cube as ``clean``.
    out_of_range:
        ``"error"`` | ``"warn"`` | ``"ignore"`` when a sensor band reaches outside the library range.

    Returns
    -------
    xarray.Dataset with ``reflectance`` (L2) or ``radiance`` (L1) (y, x, band) float32 dask array,
    ``abundances`` at the sensor grid, ``endmembers`` at the sensor bands, optional ``clean``, and
    provenance attrs (sensor, level, noise model, seed, snr_scale, geometry, simhsi version, command).
    Nothing is computed until the values are used or written.
    """
    import dask.array as da
    import xarray as xr

    lv = _level(level)
    check_param("snr_scale", snr_scale, isinstance(snr_scale, int | float) and np.isfinite(snr_scale) and snr_scale > 0,
                "a number > 0", "render_scene")
    check_param("sun_zenith_deg", sun_zenith_deg,
                isinstance(sun_zenith_deg, int | float) and 0 <= sun_zenith_deg < 90, "a number in [0, 90)",
                "render_scene")
    check_param("day_of_year", day_of_year, isinstance(day_of_year, int | np.integer) and 1 <= day_of_year <= 366,
                "an int in [1, 366]", "render_scene")
    check_param("seed", seed, isinstance(seed, int | np.integer) and seed >= 0, "an int >= 0", "render_scene")
    check_param("out_of_range", out_of_range, out_of_range in ("error", "warn", "ignore"),
                "'error', 'warn' or 'ignore'", "render_scene")
    if scene_pixel_m is not None:
        check_param("scene_pixel_m", scene_pixel_m,
                    isinstance(scene_pixel_m, int | float) and np.isfinite(scene_pixel_m) and scene_pixel_m > 0,
                    "a pixel size in metres > 0, or None", "render_scene")
    cy, cx = _chunks_tuple(chunks)
    sen = resolve_sensor(sensor)

    abund, has_nan = _prepare_abundances(abundances, repair, atol)
    names = [str(n) for n in abund[ENDMEMBER].values]
    E, lib_wl, lib_fw, em_names = _library_matrix(library, names)
    R = spectral_matrix(sen, lib_wl, lib_fw, out_of_range)
    empty = ~np.all(np.isfinite(R), axis=1)
    if empty.any():  # a truncated response is usable, an empty one is not: refuse rather than write garbage
        bands = [str(n) for n in np.asarray(sen.band_names)[empty][:4]]
        raise SensorError(f"{int(empty.sum())} sensor band(s) lie entirely outside the library's wavelength range "
                          f"{float(np.min(lib_wl)):.1f}-{float(np.max(lib_wl)):.1f} nm (e.g. {', '.join(bands)}): "
                          "use a library covering them or drop those bands (Sensor.select_bands)")
    E_s = (R @ E.T).astype(np.float32)  # (n_bands, p)
    wl = np.asarray(sen.wavelength, dtype=np.float64)
    fw = np.asarray(sen.fwhm, dtype=np.float64)
    nb = wl.size

    # spatial stage (on the p maps)
    spatial = "none (abundances given on the sensor grid)"
    a = abund.data
    if scene_pixel_m is not None:
        from simhsi.sensors.psf import apply_psf_and_resample

        if has_nan:
            raise DataError("abundances have NaN (nodata) pixels: the PSF stage needs complete maps; fill them "
                            "or give abundances on the sensor grid (scene_pixel_m=None)")

        a = apply_psf_and_resample(a, float(scene_pixel_m), float(sen.gsd_m), float(sen.psf_sigma_gsd))
        spatial = (f"Gaussian PSF sigma {sen.psf_sigma_gsd:g} GSD + resampling from {float(scene_pixel_m):g} m "
                   f"to {sen.gsd_m:g} m GSD")
    a = da.asarray(a).astype(np.float32)
    if a.ndim != 3 or a.shape[0] != len(names):
        raise DataError(f"spatial stage returned shape {a.shape}; expected ({len(names)}, H, W)")
    a = a.rechunk((len(names), cy, cx))
    H, W = a.shape[1:]

    if lv == "L1" or noise:
        gain = reflectance_to_radiance_gain(wl, sun_zenith_deg, day_of_year,
                                            fw if np.all(np.isfinite(fw)) else None).astype(np.float32)
        if not np.all(np.isfinite(gain)) or np.any(gain <= 0):
            raise SensorError(f"solar irradiance is not positive at all bands of {sen.name}")
    else:
        gain = np.ones(nb, dtype=np.float32)  # unused: L2 without noise never needs radiance
    noise_model = sen.noise if noise else None
    quant = _Quant(sen, lv) if quantize else None
    noisy = noise or quantize

    groups = band_gsd_groups(sen)
    if groups is not None:
        coarse = [(g, idx) for g, idx in groups if g > float(sen.gsd_m) * (1 + 1e-9)]
        if has_nan:
            raise DataError(f"abundances have NaN (nodata) pixels: {sen.name} has bands at "
                            f"{', '.join(f'{g:g}' for g, _ in coarse)} m GSD, whose spatial stage needs "
                            "complete maps; fill them first")
        src, src_px = (abund.data, float(scene_pixel_m)) if scene_pixel_m is not None else (a, float(sen.gsd_m))
        group_maps = {g: _coarse_maps(src, src_px, g, float(sen.gsd_m), float(sen.psf_sigma_gsd), (H, W), cy, cx)
                      for g, _ in coarse}
        spatial += "; bands at " + ", ".join(f"{g:g} m" for g, _ in coarse) + (
            f" GSD: Gaussian PSF sigma {sen.psf_sigma_gsd:g} GSD + resampling from the {src_px:g} m maps to "
            f"their GSD, rendered there (noise drawn on that grid), each coarse pixel repeated over the "
            f"{sen.gsd_m:g} m grid")

    def build(result: str, nm: Any, q: _Quant | None, nz: bool, token: str) -> Any:
        dtype = q.dtype if result == "dn" else np.float32
        common = dict(level=lv, snr_scale=float(snr_scale), seed=int(seed), noise_model=nm, quant=q, noisy=nz,
                      result=result, drop_axis=0, new_axis=2, dtype=dtype)
        if groups is None:
            return da.map_blocks(_render_block, a, E_s=E_s, gain=gain, **common,
                                 chunks=(a.chunks[1], a.chunks[2], (nb,)), token=token)
        parts, order = [], []
        for g, idx in groups:
            sub_nm = nm.subset(idx) if nm is not None else None
            gk = dict(common, E_s=E_s[idx], gain=gain[idx], noise_model=sub_nm)
            if g not in group_maps:  # the finest grid: the sensor-grid maps, the default noise stream
                parts.append(da.map_blocks(_render_block, a, **gk, chunks=(a.chunks[1], a.chunks[2], (idx.size,)),
                                           token=f"{token}-{g:g}"))
            else:
                ak, k = group_maps[g]
                ck = da.map_blocks(_render_block, ak, **gk, stream=int(round(g * 1000)),
                                   chunks=(ak.chunks[1], ak.chunks[2], (idx.size,)), token=f"{token}-{g:g}")
                up = da.repeat(da.repeat(ck, k, axis=0), k, axis=1)[:H, :W]
                parts.append(up.rechunk((a.chunks[1], a.chunks[2], idx.size)))
            order.append(idx)
        full = da.concatenate(parts, axis=2)[:, :, np.argsort(np.concatenate(order))]
        return full.rechunk((a.chunks[1], a.chunks[2], nb))

    cube = build("float", noise_model, quant, noisy, "simhsi-render")
    if quant is not None and quant.scalar and not has_nan:
        # the same chunks as the sensor's integer DN, for writers storing DN (NetCDF export): see dn_twin()
        _register_dn_twin(cube, build("dn", noise_model, quant, noisy, "simhsi-render-dn"))
    var = "radiance" if lv == "L1" else "reflectance"
    units = UNITS_RADIANCE if lv == "L1" else UNITS_REFLECTANCE
    band_coords = {
        WAVELENGTH: (BAND, wl, {"units": "nm", "long_name": "band centre wavelength"}),
        FWHM: (BAND, fw, {"units": "nm", "long_name": "band full width at half maximum"}),
    }
    bad = getattr(sen, "bad_band", None)
    if groups is not None:
        band_coords["gsd_m"] = (BAND, np.asarray(sen.band_table["gsd_m"], dtype=np.float64),
                                {"units": "m", "long_name": "ground sampling distance of the band"})
    if bad is not None and np.shape(bad) == (nb,):
        band_coords["bad_band"] = (BAND, np.asarray(bad, dtype=bool),
                                   {"long_name": "band usually dropped (see the sensor definition)"})
    band_names = getattr(sen, "band_names", None)
    if band_names is not None and len(band_names) == nb:
        band_coords["band_name"] = (BAND, np.asarray([str(b) for b in band_names]))

    noise_desc = "off"
    if noise:
        noise_desc = f"{getattr(sen.noise, 'kind', type(sen.noise).__name__)}; sigma/{float(snr_scale):g}"
        if getattr(sen.noise, "placeholder", False):
            noise_desc += "; PLACEHOLDER coefficients (see the sensor definition)"
        if lv == "L2":
            noise_desc += "; propagated from radiance to reflectance"
    var_attrs: dict[str, Any] = {
        "units": units,
        "long_name": "at-sensor radiance" if lv == "L1" else "surface reflectance",
        "quantized": int(bool(quantize)),
    }
    if quant is not None:
        var_attrs["dn_convention"] = f"{sen.name} {lv}: value = DN * dn_scale + dn_offset"
        if quant.scalar:
            var_attrs["dn_scale"] = quant.scale
            var_attrs["dn_offset"] = quant.offset
            var_attrs["dn_dtype"] = str(quant.dtype)
    data_vars: dict[str, Any] = {var: ((Y, X, BAND), cube, var_attrs)}
    data_vars["abundances"] = (ABUNDANCE_DIMS, a, {"units": "1", "long_name": "fractional abundance at the sensor grid"})
    data_vars["endmembers"] = ((ENDMEMBER, BAND), E_s.T.astype(np.float32),
                               {"units": "1", "long_name": "endmember reflectance at the sensor bands"})
    if keep_clean:
        clean = build("float", None, None, False, "simhsi-render-clean")
        data_vars["clean"] = ((Y, X, BAND), clean, {"units": units, "long_name": f"noise-free {var}"})
    d = earth_sun_distance_au(day_of_year)
    attrs = provenance_attrs(
        sensor=str(sen.name),
        processing_level=lv,
        **{"title": f"simhsi synthetic {sen.name} {lv} scene"},
        noise_model=noise_desc,
        seed=int(seed),
        snr_scale=float(snr_scale),
        noise_block_px=NOISE_BLOCK,
        quantization="sensor DN convention, stored dequantised" if quantize else "off",
        atmosphere=ATMOSPHERE_NOTE,
        sun_zenith_deg=float(sun_zenith_deg),
        day_of_year=int(day_of_year),
        earth_sun_distance_au=d,
        spatial_stage=spatial,
        spectral_stage="identity (library at the sensor bands)" if R.shape[0] == R.shape[1] and np.array_equal(
            R, np.eye(nb)) else "sensor SRF resampling of the library (E_s = R E)",
        gsd_m=float(sen.gsd_m),
        library_source=str(library.attrs.get("source", library.attrs.get("source_file", library.name or "library"))),
        abundance_source=str(abundances.attrs.get("source_file", abundances.attrs.get("generator", "user"))),
        has_nodata=int(has_nan),
        metric_units=units,
    )
    coords = dict(band_coords)
    coords[ENDMEMBER] = em_names
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    log.info("scene %dx%d px, %d bands, %d endmembers, level %s", H, W, nb, len(names), lv)
    return ds
