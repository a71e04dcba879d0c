"""Sensor definitions: a YAML file + a band table CSV (+ optional tabulated SRF CSV).

Shipped definitions live in the top-level ``sensors/`` folder (package ``simhsi._sensor_defs``);
a user's own YAML file can be given by path wherever a sensor name is accepted. YAML keys::

    name, description, platform            # text
    band_table: bands.csv                  # path relative to the YAML; or inline `bands:` mapping of lists
    srf_table: srf.csv                     # optional tabulated responses: wavelength_nm + one column per band name
    gsd_m, swath_km, bit_depth, psf_sigma_gsd
    radiance_units                         # unit of the L1 product radiance
    noise: {kind, params: {name: column-or-number}, provenance, placeholder, poly_units}
    noise_alternatives: {label: <noise mapping>}   # optional other published models
    quantization: {L1: {...}, L2: {...}}   # see simhsi.sensors.quantize
    provenance: {field: source}

Band table columns: ``center_nm`` (required), ``fwhm_nm`` (required unless ``srf_table``), ``name``,
``bad_band`` (0/1), ``bad_band_reason`` and any extra per-band column (noise coefficients, detector, ...).
Bands are sorted by centre wavelength on load; extra columns follow (``Sensor.band_table``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simhsi.errors import SensorError
from simhsi.sensors.noise import KINDS, NoiseModel
from simhsi.sensors.quantize import Quantization, level_from_dict

_PKG = "simhsi._sensor_defs"

_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "parametric": {"a": "nedl_a", "b": "nedl_b", "c": "nedl_c"},
    "snr_reference": {"snr": "snr_ref", "lref": "lref_uW_cm2_sr_nm", "read_fraction": 0.0},
    "constant_snr": {"snr": "snr_ref"},
    "snr_polynomial": {"p0": "snrpoly_p0", "p1": "snrpoly_p1", "p2": "snrpoly_p2"},
}
_REQUIRED_PARAMS = {
    "parametric": ("a", "b", "c"),
    "snr_reference": ("snr", "lref", "read_fraction"),
    "constant_snr": ("snr",),
    "snr_polynomial": ("p0", "p1", "p2"),
}


def band_gsd_multiples_ok(band_gsd_m: Any, gsd_m: float) -> bool:
    """True when every band GSD (m) is finite and an integer multiple (>= 1) of the sensor's ``gsd_m``."""
    g = np.asarray(band_gsd_m, dtype=np.float64)
    k = g / float(gsd_m)
    return bool(np.all(np.isfinite(g)) and np.all(k >= 1 - 1e-9) and np.all(np.abs(k - np.round(k)) <= 1e-6))


@dataclass(eq=False, repr=False)
class Sensor:
    """A sensor model: bands, spatial sampling, PSF, noise and DN conventions.

    Wavelengths and FWHM in nm (ascending centres), GSD in m, swath in km. ``fwhm`` is NaN where a
    tabulated SRF is used (then ``srf_wavelength``/``srf_values`` hold the curves). ``band_table``
    holds every per-band column of the definition (sorted like ``wavelength``).
    """

    name: str
    description: str
    wavelength: np.ndarray
    fwhm: np.ndarray
    band_names: list[str]
    bad_band: np.ndarray
    bad_band_reason: list[str]
    gsd_m: float
    swath_km: float
    bit_depth: int
    psf_sigma_gsd: float
    noise: NoiseModel
    quantization: Quantization
    provenance: dict[str, str] = field(default_factory=dict)
    platform: str = ""
    radiance_units: str = "W m-2 sr-1 um-1"
    noise_alternatives: dict[str, NoiseModel] = field(default_factory=dict)
    band_table: dict[str, np.ndarray] = field(default_factory=dict)
    srf_wavelength: np.ndarray | None = None
    srf_values: np.ndarray | None = None
    source: str = ""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"Sensor({self.name!r}: {self.n_bands} bands {self.wavelength.min():.1f}-{self.wavelength.max():.1f} nm, "
                f"GSD {self.gsd_m:g} m, noise {self.noise.kind})")

    @property
    def n_bands(self) -> int:
        return int(self.wavelength.size)

    @property
    def has_tabulated_srf(self) -> bool:
        return self.srf_values is not None

    def srf_matrix(self, src_wavelength_nm, src_fwhm_nm=None, *, out_of_range: str = "error") -> np.ndarray:
        """(n_bands, n_src) matrix R with rows summing to 1: sensor spectrum = R @ source spectrum.

        Gaussian bands from centre/FWHM, or the tabulated curves; integration assumes the source is
        piecewise linear between its samples (``src_wavelength_nm``, nm, any order). ``src_fwhm_nm``:
        the source's own band widths (nm), removed in quadrature from Gaussian bands. A band reaching
        outside the source range (±1.5 FWHM, or its SRF support above 1 % of peak) raises
        :class:`SensorError`, or warns/truncates with ``out_of_range="warn"``/``"ignore"``.
        """
        from simhsi.sensors.srf import gaussian_srf_matrix, tabulated_srf_matrix

        if self.srf_values is not None:
            return tabulated_srf_matrix(
                self.srf_wavelength, self.srf_values, src_wavelength_nm, out_of_range=out_of_range,
                names=self.band_names,
            )
        return gaussian_srf_matrix(
            self.wavelength, self.fwhm, src_wavelength_nm, src_fwhm_nm, out_of_range=out_of_range,
            names=self.band_names,
        )

    def psf_kernel(self, scene_pixel_m: float) -> np.ndarray:
        """The sensor's Gaussian PSF sampled at ``scene_pixel_m`` (m) pixels; 2-D, sums to 1."""
        from simhsi.sensors.psf import psf_kernel

        return psf_kernel(scene_pixel_m, self.gsd_m, self.psf_sigma_gsd)

    def solar_irradiance(self) -> np.ndarray:
        """Band-averaged TOA solar irradiance E0 (W m⁻² µm⁻¹, 1 AU) through this sensor's SRFs.

        The table covers 350-2499.9 nm; responses reaching past it are truncated (renormalised).
        """
        from simhsi.sensors.solar import solar_table

        key = (self.wavelength.tobytes(), self.fwhm.tobytes())
        cached = self._cache.get("e0")
        if cached is None or cached[0] != key:
            tw, te = solar_table()
            cached = (key, self.srf_matrix(tw, out_of_range="ignore") @ te)
            self._cache["e0"] = cached
        return cached[1].copy()

    def select_bands(self, index) -> Sensor:
        """A copy keeping some bands (boolean mask or integer indices), e.g. ``s.select_bands(~s.bad_band)``."""
        idx = np.arange(self.n_bands)[index]
        import copy

        out = copy.copy(self)
        out._cache = {}
        out.wavelength = self.wavelength[idx]
        out.fwhm = self.fwhm[idx]
        out.band_names = [self.band_names[i] for i in idx]
        out.bad_band = self.bad_band[idx]
        out.bad_band_reason = [self.bad_band_reason[i] for i in idx]
        out.noise = self.noise.subset(idx)
        out.noise_alternatives = {k: v.subset(idx) for k, v in self.noise_alternatives.items()}
        out.band_table = {k: v[idx] for k, v in self.band_table.items()}
        if self.srf_values is not None:
            out.srf_values = self.srf_values[idx]
        return out

    def summary(self) -> dict[str, Any]:
        """Scalar facts for ``simhsi sensors list/show``."""
        return {
            "name": self.name,
            "description": self.description,
            "platform": self.platform,
            "n_bands": self.n_bands,
            "n_bad_bands": int(self.bad_band.sum()),
            "wavelength_range_nm": [float(self.wavelength.min()), float(self.wavelength.max())],
            "fwhm_range_nm": (
                [float(np.nanmin(self.fwhm)), float(np.nanmax(self.fwhm))] if np.isfinite(self.fwhm).any()
                else None
            ),
            "srf": "tabulated" if self.has_tabulated_srf else "gaussian",
            "gsd_m": self.gsd_m,
            "swath_km": self.swath_km,
            "bit_depth": self.bit_depth,
            "psf_sigma_gsd": self.psf_sigma_gsd,
            "radiance_units": self.radiance_units,
            "noise": self.noise.describe(),
            "noise_alternatives": {k: v.describe() for k, v in self.noise_alternatives.items()},
            "quantization": {k: v.describe() for k, v in self.quantization.levels.items()},
            "provenance": dict(self.provenance),
            "source": self.source,
        }

    def to_dict(self) -> dict[str, Any]:
        """:meth:`summary` plus the per-band table (JSON-ready)."""
        d = self.summary()
        bands = []
        for i in range(self.n_bands):
            row: dict[str, Any] = {
                "name": self.band_names[i],
                "wavelength_nm": float(self.wavelength[i]),
                "fwhm_nm": None if not np.isfinite(self.fwhm[i]) else float(self.fwhm[i]),
                "bad_band": bool(self.bad_band[i]),
                "bad_band_reason": self.bad_band_reason[i],
            }
            bands.append(row)
        d["bands"] = bands
        return d


# --------------------------------------------------------------------------------------------- loading


def list_sensors() -> list[str]:
    """Names of the sensor definitions shipped with simhsi."""
    from importlib.resources import files

    return sorted(p.name[:-5] for p in files(_PKG).iterdir() if p.name.endswith(".yaml"))


def load_sensor(name_or_path: str | os.PathLike[str]) -> Sensor:
    """Load a shipped sensor by name (``"prisma"``) or a user's definition by YAML path.

    Raises :class:`SensorError` for an unknown name (listing the known ones) or an invalid definition
    (naming every bad field in one message).
    """
    from importlib.resources import files

    import yaml

    if isinstance(name_or_path, Sensor):
        return name_or_path
    text_key = os.fspath(name_or_path)
    p = Path(text_key)
    if p.suffix.lower() in (".yaml", ".yml") or os.sep in text_key or "/" in text_key:
        if not p.is_file():
            raise SensorError(f"sensor definition file not found: {text_key}; give an existing YAML path "
                              f"or one of the shipped names {list_sensors()}")
        try:
            doc = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SensorError(f"cannot read the sensor YAML ({exc})".replace("\n", " "), path=p) from exc

        def opener(rel: str) -> str:
            q = Path(rel)
            q = q if q.is_absolute() else p.parent / q
            return q.read_text()

        return _build(doc, opener, source=str(p))
    key = text_key.lower().replace("-", "_")
    aliases = {"s2a": "sentinel2a", "s2b": "sentinel2b", "sentinel_2a": "sentinel2a", "sentinel_2b": "sentinel2b",
               "avirisng": "aviris_ng", "avirisc": "aviris_c", "aviris_classic": "aviris_c"}
    key = aliases.get(key, key)
    names = list_sensors()
    if key not in names:
        raise SensorError(f"unknown sensor {text_key!r}; shipped sensors are {', '.join(names)} "
                          f"(or give the path of your own YAML definition)")
    root = files(_PKG)
    doc = yaml.safe_load(root.joinpath(key + ".yaml").read_text())
    return _build(doc, lambda rel: root.joinpath(rel).read_text(), source=f"{_PKG}/{key}.yaml")


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _read_table(text: str) -> dict[str, list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and not r[0].lstrip().startswith("#")]
    if not rows:
        return {}
    head = [h.strip() for h in rows[0]]
    cols: dict[str, list[str]] = {h: [] for h in head}
    for r in rows[1:]:
        for h, v in zip(head, r + [""] * (len(head) - len(r)), strict=False):
            cols[h].append(v.strip())
    return cols


def _to_float(values: list[Any]) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, str) and v == ""):
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            out[i] = np.nan
    return out


def _build(doc: Any, opener, source: str) -> Sensor:
    errors: list[str] = []
    where = source
    if not isinstance(doc, dict):
        raise SensorError("a sensor definition must be a YAML mapping (name, band_table, gsd_m, ...)", path=where)

    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append("name: must be a non-empty string")
        name = "?"
    description = doc.get("description", "")
    if not isinstance(description, str):
        errors.append("description: must be a string")
        description = str(description)

    scal: dict[str, float] = {}
    for key, cond, expect in (
        ("gsd_m", lambda v: _num(v) and v > 0, "a positive number of metres"),
        ("swath_km", lambda v: _num(v) and v > 0, "a positive number of kilometres"),
        ("psf_sigma_gsd", lambda v: _num(v) and v >= 0, "a number >= 0 (PSF sigma in GSD units)"),
    ):
        v = doc.get(key)
        if v is None:
            errors.append(f"{key}: missing; must be {expect}")
        elif not cond(v):
            errors.append(f"{key}: must be {expect}, got {v!r}")
        else:
            scal[key] = float(v)
    bit_depth = doc.get("bit_depth")
    if not (isinstance(bit_depth, int) and not isinstance(bit_depth, bool) and 1 <= bit_depth <= 32):
        errors.append(f"bit_depth: must be an int in [1, 32], got {bit_depth!r}")
        bit_depth = 0

    # ---- band table
    cols: dict[str, list[Any]] = {}
    if "band_table" in doc and "bands" in doc:
        errors.append("band_table/bands: give one of them, not both")
    if "band_table" in doc:
        bt = doc["band_table"]
        if not isinstance(bt, str):
            errors.append(f"band_table: must be a CSV file name, got {bt!r}")
        else:
            try:
                cols = _read_table(opener(bt))
            except OSError as exc:
                errors.append(f"band_table: cannot read {bt!r} ({exc.__class__.__name__})")
    elif "bands" in doc:
        b = doc["bands"]
        if not isinstance(b, dict) or not all(isinstance(v, list) for v in b.values()):
            errors.append("bands: must be a mapping of column name -> list of values")
        else:
            cols = {str(k): list(v) for k, v in b.items()}
    else:
        errors.append("band_table: missing; give a band table CSV (or an inline `bands:` mapping)")

    n = 0
    wl = fw = np.zeros(0)
    if cols:
        lens = {k: len(v) for k, v in cols.items()}
        if len(set(lens.values())) > 1:
            errors.append(f"bands: columns have different lengths {lens}")
        n = max(lens.values()) if lens else 0
        if "center_nm" not in cols:
            errors.append("band_table.center_nm: column missing (band centre wavelengths in nm)")
        else:
            wl = _to_float(cols["center_nm"])
            if n == 0 or not np.all(np.isfinite(wl)) or np.any(wl <= 0):
                errors.append("band_table.center_nm: every band needs a positive finite centre (nm)")
        fw = _to_float(cols["fwhm_nm"]) if "fwhm_nm" in cols else np.full(n, np.nan)

    # ---- tabulated SRF
    srf_wl = srf_vals = None
    srf_table = doc.get("srf_table")
    if srf_table is not None:
        if not isinstance(srf_table, str):
            errors.append(f"srf_table: must be a CSV file name, got {srf_table!r}")
        else:
            try:
                scol = _read_table(opener(srf_table))
            except OSError as exc:
                scol = {}
                errors.append(f"srf_table: cannot read {srf_table!r} ({exc.__class__.__name__})")
            if scol:
                if "wavelength_nm" not in scol:
                    errors.append("srf_table.wavelength_nm: column missing")
                else:
                    srf_wl = _to_float(scol["wavelength_nm"])
                    names_for_srf = cols.get("name", [])
                    missing = [b for b in names_for_srf if b not in scol]
                    if not names_for_srf:
                        errors.append("band_table.name: needed to match bands to srf_table columns")
                    elif missing:
                        errors.append(f"srf_table: no column for band(s) {missing}")
                    else:
                        srf_vals = np.stack([_to_float(scol[b]) for b in names_for_srf])
                        if not np.all(np.isfinite(srf_wl)) or np.any(np.diff(srf_wl) <= 0):
                            errors.append("srf_table.wavelength_nm: must be finite and strictly increasing")
                        if np.any(np.nan_to_num(srf_vals) < 0) or np.any(np.nanmax(srf_vals, axis=1) <= 0):
                            errors.append("srf_table: responses must be >= 0 with a positive peak per band")
    elif n and (not np.all(np.isfinite(fw)) or np.any(fw <= 0)):
        bad = np.flatnonzero(~(np.isfinite(fw) & (fw > 0)))
        errors.append(
            f"band_table.fwhm_nm: must be positive for every band (bad rows {[int(i) + 1 for i in bad[:5]]}) "
            f"unless an srf_table is given"
        )
    if srf_vals is not None:
        fw = np.full(n, np.nan)

    band_names = [str(v) for v in cols.get("name", [])] or [f"B{i + 1}" for i in range(n)]
    if len(set(band_names)) != len(band_names):
        errors.append("band_table.name: band names must be unique")
    bad = np.zeros(n, dtype=bool)
    if "bad_band" in cols:
        bb = _to_float(cols["bad_band"])
        if not np.all(np.isin(np.nan_to_num(bb, nan=0), (0, 1))):
            errors.append("band_table.bad_band: must be 0 or 1")
        bad = np.nan_to_num(bb, nan=0).astype(bool)
    reasons = [str(v) if v is not None else "" for v in cols.get("bad_band_reason", [""] * n)]
    if "gsd_m" in cols and "gsd_m" in scal and not band_gsd_multiples_ok(_to_float(cols["gsd_m"]), scal["gsd_m"]):
        errors.append(f"band_table.gsd_m: every band's GSD must be an integer multiple of gsd_m "
                      f"({scal['gsd_m']:g} m), the grid of a rendered cube")

    # ---- noise
    def parse_noise(nd: Any, key: str) -> NoiseModel | None:
        if not isinstance(nd, dict):
            errors.append(f"{key}: must be a mapping with 'kind' (one of {KINDS}) and 'params'")
            return None
        kind = nd.get("kind")
        if kind not in KINDS:
            errors.append(f"{key}.kind: must be one of {KINDS}, got {kind!r}")
            return None
        params_spec = dict(_DEFAULT_PARAMS[kind])
        extra = nd.get("params", {})
        if not isinstance(extra, dict):
            errors.append(f"{key}.params: must be a mapping name -> column name or number")
            extra = {}
        params_spec.update(extra)
        out: dict[str, np.ndarray] = {}
        for pname, spec in params_spec.items():
            if _num(spec):
                out[pname] = np.full(n, float(spec))
            elif isinstance(spec, str):
                if spec not in cols:
                    if pname in _REQUIRED_PARAMS[kind]:
                        errors.append(f"{key}.params.{pname}: band table has no column {spec!r}")
                    continue
                v = _to_float(cols[spec])
                if pname in _REQUIRED_PARAMS[kind] and not np.all(np.isfinite(v)):
                    errors.append(f"{key}.params.{pname}: column {spec!r} has empty/non-numeric values")
                out[pname] = v
            else:
                errors.append(f"{key}.params.{pname}: must be a column name or a number, got {spec!r}")
        if kind in ("constant_snr", "snr_reference") and "snr" in out and np.any(out["snr"] <= 0):
            errors.append(f"{key}.params.snr: SNR must be > 0")
        if kind == "snr_reference" and "lref" in out and np.any(out["lref"] <= 0):
            errors.append(f"{key}.params.lref: reference radiance must be > 0")
        if not all(p in out for p in _REQUIRED_PARAMS[kind]) or not n:
            return None
        units = str(nd.get("units", "uW cm-2 sr-1 nm-1"))
        from simhsi.errors import ParameterError
        from simhsi.sensors.units import radiance_factor

        try:
            f = radiance_factor(units, "uW cm-2 sr-1 nm-1")
        except ParameterError:
            errors.append(f"{key}.units: unknown radiance unit {units!r}")
            return None
        if kind == "snr_polynomial":
            try:
                radiance_factor(str(nd.get("poly_units", "uW cm-2 sr-1 nm-1")), "uW cm-2 sr-1 nm-1")
            except ParameterError:
                errors.append(f"{key}.poly_units: unknown radiance unit {nd.get('poly_units')!r}")
                return None
        if f != 1.0 and kind == "parametric":  # sigma and L scale together: a*sqrt(b+L)+c
            out["a"] = out["a"] * np.sqrt(f)
            out["b"] = out["b"] * f
            out["c"] = out["c"] * f
        elif f != 1.0 and kind == "snr_reference":
            out["lref"] = out["lref"] * f
        return NoiseModel(kind, out, provenance=" ".join(str(nd.get("provenance", "")).split()),
                          placeholder=bool(nd.get("placeholder", False)),
                          poly_units=str(nd.get("poly_units", "uW cm-2 sr-1 nm-1")))

    noise = parse_noise(doc.get("noise"), "noise") if "noise" in doc else None
    if "noise" not in doc:
        errors.append(f"noise: missing; a mapping with 'kind' (one of {KINDS})")
    alts: dict[str, NoiseModel] = {}
    na = doc.get("noise_alternatives", {}) or {}
    if not isinstance(na, dict):
        errors.append("noise_alternatives: must be a mapping label -> noise mapping")
    else:
        for label, nd in na.items():
            m = parse_noise(nd, f"noise_alternatives.{label}")
            if m is not None:
                alts[str(label)] = m

    # ---- quantisation
    q = Quantization()
    qd = doc.get("quantization")
    if not isinstance(qd, dict) or not qd:
        errors.append("quantization: missing; a mapping of level (L1, L2) -> DN convention")
    else:
        for lvl, d in qd.items():
            if str(lvl).upper() not in ("L1", "L2"):
                errors.append(f"quantization.{lvl}: level must be L1 or L2")
                continue
            lq = level_from_dict(str(lvl), d, errors, f"quantization.{lvl}")
            if lq is not None:
                q.levels[lq.level] = lq

    prov = doc.get("provenance", {}) or {}
    if not isinstance(prov, dict):
        errors.append("provenance: must be a mapping field -> source")
        prov = {}

    known = {"name", "description", "platform", "band_table", "bands", "srf_table", "gsd_m", "swath_km",
             "bit_depth", "psf_sigma_gsd", "radiance_units", "noise", "noise_alternatives", "quantization",
             "provenance"}
    unknown = sorted(set(doc) - known)
    if unknown:
        errors.append(f"unknown key(s) {unknown}; allowed: {sorted(known)}")

    if errors:
        raise SensorError(
            f"invalid sensor definition ({len(errors)} problem(s)): " + "; ".join(errors), path=where
        )
    assert noise is not None

    order = np.argsort(wl, kind="stable")
    table = {}
    for k, v in cols.items():
        fv = _to_float(v)
        arr = fv if np.isfinite(fv).sum() == sum(1 for x in v if str(x) != "") else np.asarray(v, dtype=object)
        table[k] = arr[order]
    return Sensor(
        name=name,
        description=" ".join(description.split()),
        platform=str(doc.get("platform", "")),
        wavelength=wl[order],
        fwhm=fw[order],
        band_names=[band_names[i] for i in order],
        bad_band=bad[order],
        bad_band_reason=[reasons[i] if i < len(reasons) else "" for i in order],
        gsd_m=scal["gsd_m"],
        swath_km=scal["swath_km"],
        bit_depth=int(bit_depth),
        psf_sigma_gsd=scal["psf_sigma_gsd"],
        noise=noise.subset(order),
        noise_alternatives={k: v.subset(order) for k, v in alts.items()},
        quantization=q,
        provenance={str(k): " ".join(str(v).split()) for k, v in prov.items()},
        radiance_units=str(doc.get("radiance_units", "W m-2 sr-1 um-1")),
        band_table=table,
        srf_wavelength=srf_wl,
        srf_values=None if srf_vals is None else srf_vals[order],
        source=source,
    )
