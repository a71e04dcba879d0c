"""Load order of the native libraries bundled in wheels.

rasterio's wheels ship their own HDF5 and netCDF-C; when rasterio is loaded before netCDF4, netCDF4
can fail with "HDF error" or crash (rasterio/rasterio#1574, Unidata/netcdf4-python#860). xarray loads
rasterio as soon as it lists its backends (rioxarray's entry point), so every simhsi module that does
I/O imports this module first: netCDF4 is loaded before anything can load rasterio.
"""

import netCDF4  # noqa: F401  (import order matters, see above)
