"""Sensor models: definitions (bands, SRF, PSF, noise, quantisation) shipped as data in ``sensors/``.

>>> from simhsi.sensors import load_sensor, list_sensors
>>> s = load_sensor("prisma")
>>> R = s.srf_matrix(library_wavelength_nm)   # (n_bands, n_library) resampling matrix  # doctest: +SKIP
"""

from simhsi.sensors.definition import Sensor, list_sensors, load_sensor
from simhsi.sensors.noise import NoiseModel
from simhsi.sensors.quantize import LevelQuantization, Quantization

__all__ = ["LevelQuantization", "NoiseModel", "Quantization", "Sensor", "list_sensors", "load_sensor"]
