"""Top-of-atmosphere solar spectral irradiance E0(λ) at 1 AU, in W m⁻² µm⁻¹.

Table: Fontenla et al. solar spectrum, 350-2500 nm at 0.1 nm, as converted and shipped by EnPT 1.5.0
(``enpt/resources/solar_irradiance/SUNp1fontenla__350-2500nm_@0.1nm_converted.txt``), stored in
``sensors/solar_fontenla.csv`` (values rounded to 5 significant digits). See sensors/README.md.

At-sensor radiance of a Lambertian surface without atmosphere: L = ρ · E0 · cos(SZA) / (π d²)
(:func:`toa_radiance`), d the Earth-Sun distance in AU.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from simhsi.errors import ParameterError

SOLAR_TABLE = "solar_fontenla.csv"
SOLAR_PROVENANCE = (
    "Fontenla et al. solar irradiance, 350-2500 nm @ 0.1 nm, W m-2 um-1 at 1 AU, as shipped in EnPT 1.5.0 "
    "(enpt/resources/solar_irradiance/SUNp1fontenla__350-2500nm_@0.1nm_converted.txt)"
)


@lru_cache(maxsize=1)
def solar_table() -> tuple[np.ndarray, np.ndarray]:
    """(wavelength nm, E0 W m⁻² µm⁻¹) of the shipped high-resolution table."""
    from importlib.resources import files

    text = files("simhsi._sensor_defs").joinpath(SOLAR_TABLE).read_text()
    arr = np.loadtxt(text.splitlines(), delimiter=",", skiprows=1)
    arr.setflags(write=False)
    return arr[:, 0], arr[:, 1]


def solar_irradiance(wavelength_nm, fwhm_nm=None) -> np.ndarray:
    """Solar irradiance (W m⁻² µm⁻¹, TOA, 1 AU) averaged over Gaussian bands at ``wavelength_nm``.

    ``fwhm_nm`` (nm, scalar or per band) is each band's width. When omitted (or NaN for a band), each
    wavelength is taken as the centre of a band as wide as the local spacing of ``wavelength_nm`` (at least
    1 nm), which avoids picking single Fraunhofer lines from the 0.1 nm table. For sensors with tabulated
    SRFs (Sentinel-2) prefer :meth:`simhsi.sensors.Sensor.solar_irradiance`, which uses the real curves. Table range 350-2499.9 nm: bands reaching past it
    are averaged over the part inside; centres more than one FWHM outside raise ParameterError.
    """
    wl = np.atleast_1d(np.asarray(wavelength_nm, dtype=np.float64))
    if wl.ndim != 1 or not np.all(np.isfinite(wl)):
        raise ParameterError("wavelength_nm must be a 1-D array of finite values (nm)")
    tw, te = solar_table()
    if wl.size > 1:
        srt = np.sort(wl)
        default = np.maximum(np.interp(wl, srt, np.gradient(srt)), 1.0)
    else:
        default = np.ones(1)
    if fwhm_nm is None:
        fw = default
    else:
        fw = np.broadcast_to(np.asarray(fwhm_nm, dtype=np.float64), wl.shape).copy()
        unknown = ~(np.isfinite(fw) & (fw > 0))  # e.g. NaN for tabulated SRFs: use the default width
        fw[unknown] = default[unknown]
    # bands reaching past the table ends are averaged over the part inside (the spectrum is smooth
    # there); a centre more than one FWHM outside the table is an error
    out = (wl < tw[0] - fw) | (wl > tw[-1] + fw)
    if out.any():
        raise ParameterError(
            f"solar irradiance table covers {tw[0]:g}-{tw[-1]:g} nm; got band centres "
            f"{wl.min():g}-{wl.max():g} nm (more than one FWHM outside)"
        )
    from simhsi.sensors.srf import gaussian_srf_matrix

    R = gaussian_srf_matrix(wl, fw, tw, out_of_range="ignore")
    return R @ te


def toa_radiance(reflectance, e0_w_m2_um, sun_zenith_deg: float = 30.0, earth_sun_au: float = 1.0):
    """At-sensor radiance W m⁻² sr⁻¹ µm⁻¹ = ρ · E0 · cos(SZA) / (π d²), no atmosphere (bands on last axis)."""
    if not 0 <= sun_zenith_deg < 90:
        raise ParameterError(f"sun_zenith_deg must be in [0, 90); got {sun_zenith_deg!r}")
    if not earth_sun_au > 0:
        raise ParameterError(f"earth_sun_au must be > 0; got {earth_sun_au!r}")
    k = np.asarray(e0_w_m2_um) * np.cos(np.radians(sun_zenith_deg)) / (np.pi * earth_sun_au**2)
    return reflectance * k
