"""simhsi.sensors"""
