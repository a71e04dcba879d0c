"""Sensor definition files (YAML + band tables): data shipped as simhsi._sensor_defs."""
