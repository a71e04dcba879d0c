"""The forward model: render abundances + endmember spectra through a sensor (see docs/render.md).

:func:`render_scene` builds a lazy (dask) scene Dataset; :func:`write_scene` writes it (NetCDF, ENVI,
PRISMA HE5); :func:`write_quicklook` draws a PNG.
"""

from __future__ import annotations

from simhsi.render.export import write_scene
from simhsi.render.forward import (
    NOISE_BLOCK,
    block_normal,
    earth_sun_distance_au,
    reflectance_to_radiance_gain,
    render_scene,
    resolve_sensor,
)
from simhsi.render.quicklook import write_quicklook

__all__ = [
    "NOISE_BLOCK",
    "block_normal",
    "earth_sun_distance_au",
    "reflectance_to_radiance_gain",
    "render_scene",
    "resolve_sensor",
    "write_quicklook",
    "write_scene",
]
