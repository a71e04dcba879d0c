"""simhsi.metrics"""
