"""Per-band radiometric noise models.

All models give the noise standard deviation σ_b(L) for the at-sensor spectral radiance L of each band,
both in **µW cm⁻² sr⁻¹ nm⁻¹** (isofit's unit; 1 µW cm⁻² sr⁻¹ nm⁻¹ = 10 W m⁻² sr⁻¹ µm⁻¹):

* ``parametric`` (isofit): σ = |a·sqrt(max(b + L, 1e-5)) + c|  (shot noise k = a², read noise σ_r² = a²·b);
* ``snr_polynomial`` (EnMAP L1B, EnPT): SNR(L) = p0 + p1·L' + p2·L'², L' = L in the polynomial's own unit,
  optional second (low-gain) polynomial above a per-band gain threshold; σ = L / SNR(L);
* ``snr_reference``: SNR_ref given at a reference radiance L_ref; σ² = σ_ref²·(f_r + (1 − f_r)·L/L_ref) with
  σ_ref = L_ref/SNR_ref and f_r the read-noise variance share at L_ref (f_r = 0: shot-noise limited);
* ``constant_snr``: σ = L / SNR.

Averaging n pixels divides σ by √n (:meth:`NoiseModel.sigma` ``n_average``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simhsi.errors import ParameterError
from simhsi.sensors.units import UW_CM2_SR_NM, radiance_factor

KINDS = ("parametric", "snr_polynomial", "snr_reference", "constant_snr")


@dataclass
class NoiseModel:
    """Noise of one sensor, per band. Arrays have shape (n_bands,).

    Attributes
    ----------
    kind: one of :data:`KINDS`.
    params: per-band coefficient arrays; keys depend on ``kind``: ``a``, ``b``, ``c`` (parametric);
        ``p0``, ``p1``, ``p2`` and optionally ``lowgain_p0/p1/p2``, ``gain_threshold`` (snr_polynomial);
        ``snr``, ``lref`` and ``read_fraction`` (snr_reference); ``snr`` (constant_snr).
    poly_units: radiance unit of L' and of ``gain_threshold`` for ``snr_polynomial``.
    provenance: where the numbers come from.
    placeholder: True when the coefficients are not published values.
    """

    kind: str
    params: dict[str, np.ndarray]
    provenance: str = ""
    placeholder: bool = False
    poly_units: str = UW_CM2_SR_NM
    units: str = field(default=UW_CM2_SR_NM, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"noise kind must be one of {KINDS}; got {self.kind!r}")
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in self.params.items()}

    @property
    def n_bands(self) -> int:
        return int(next(iter(self.params.values())).size)

    def _p(self, key: str, band_axis: int, ndim: int) -> np.ndarray:
        v = self.params[key]
        shape = [1] * ndim
        if ndim:
            shape[band_axis] = v.size
        return v.reshape(shape) if ndim else v

    def sigma(self, radiance, band_axis: int = -1, n_average: float = 1.0):
        """Noise std (µW cm⁻² sr⁻¹ nm⁻¹) for radiance ``L`` (same unit), bands along ``band_axis``.

        Works on numpy and dask arrays (elementwise). ``n_average`` pixels averaged divide σ by √n.
        """
        L = radiance
        ndim = getattr(L, "ndim", 0)
        if ndim == 0:
            L = np.asarray(L, dtype=np.float64)
            if self.n_bands != 1:
                L = np.full(self.n_bands, float(L))
                ndim = 1
        nb = L.shape[band_axis] if ndim else 1
        if nb != self.n_bands:
            raise ParameterError(
                f"radiance has {nb} bands along axis {band_axis} but the noise model has {self.n_bands}"
            )

        dt = getattr(L, "dtype", np.dtype(np.float64))
        dt = dt if dt in (np.float32, np.float64) else np.dtype(np.float64)  # keep float32 inputs float32

        def p(k: str) -> np.ndarray:
            return self._p(k, band_axis, ndim).astype(dt)

        if self.kind == "parametric":
            s = abs(p("a") * np.sqrt(np.maximum(p("b") + L, 1e-5)) + p("c"))
        elif self.kind == "constant_snr":
            s = abs(L) / p("snr")
        elif self.kind == "snr_reference":
            sref = p("lref") / p("snr")
            fr = p("read_fraction")
            s = sref * np.sqrt(np.maximum(fr + (1.0 - fr) * L / p("lref"), 0.0))
        else:  # snr_polynomial, L' in the polynomial's own unit
            Lp = L * radiance_factor(UW_CM2_SR_NM, self.poly_units)
            snr = p("p0") + p("p1") * Lp + p("p2") * Lp**2
            if "gain_threshold" in self.params:  # low-gain polynomial at and above the threshold
                thr = self._p("gain_threshold", band_axis, ndim)
                low = p("lowgain_p0") + p("lowgain_p1") * Lp + p("lowgain_p2") * Lp**2
                snr = np.where(Lp >= np.nan_to_num(thr, nan=np.inf), low, snr)
            # fits over little signal can give SNR <= 0 far from their radiance range: floor at 1 (sigma = L)
            s = abs(L) / np.maximum(snr, 1.0)
        if n_average != 1.0:
            s = s / np.sqrt(float(n_average))
        return s

    def snr(self, radiance, band_axis: int = -1):
        """Signal-to-noise ratio L / σ(L) for radiance in µW cm⁻² sr⁻¹ nm⁻¹."""
        return radiance / self.sigma(radiance, band_axis=band_axis)

    def scaled(self, snr_scale: float) -> NoiseModel:
        """A copy whose σ is divided by ``snr_scale`` (SNR multiplied), for exploring noise levels."""
        if not (np.isfinite(snr_scale) and snr_scale > 0):
            raise ParameterError(f"snr_scale must be a positive number; got {snr_scale!r}")
        prm = {k: v.copy() for k, v in self.params.items()}
        if self.kind == "parametric":
            prm["a"] = prm["a"] / snr_scale
            prm["c"] = prm["c"] / snr_scale
        elif self.kind in ("constant_snr", "snr_reference"):
            prm["snr"] = prm["snr"] * snr_scale
        else:
            for k in ("p0", "p1", "p2", "lowgain_p0", "lowgain_p1", "lowgain_p2"):
                if k in prm:
                    prm[k] = prm[k] * snr_scale
        out = NoiseModel(self.kind, prm, self.provenance + f" (SNR scaled x{snr_scale:g})",
                         self.placeholder, self.poly_units)
        return out

    def subset(self, index) -> NoiseModel:
        """The model restricted to some bands (boolean mask or integer indices)."""
        prm = {k: np.asarray(v)[index] for k, v in self.params.items()}
        return NoiseModel(self.kind, prm, self.provenance, self.placeholder, self.poly_units)

    def describe(self) -> dict[str, object]:
        """Summary for display (kind, units, provenance, placeholder flag)."""
        return {"kind": self.kind, "units": self.units, "placeholder": self.placeholder,
                "provenance": self.provenance}
